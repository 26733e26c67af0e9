"""`roberta_ft.serve.serve(config)`: an HTTP prediction service over one trained model, with micro-batching.

`roberta-ft serve MODEL_DIR` runs a FastAPI app on uvicorn (the optional ``[serve]`` extra):

- ``POST /predict`` takes ``{"texts": [...]}`` (or ``{"pairs": [[first, second], ...]}`` for a pair
  model) with an optional ``top_k`` and, for a multi-label model, ``threshold``; it answers
  ``{"predictions": [...]}``, one row per input in input order: the row ``roberta-ft predict --json``
  gives for that text, without its ``line`` key.
- ``GET /health``: 200 once the model is loaded and the service takes requests, else 503 with the
  state (``loading``, ``stopping``, ``failed``). ``GET /info``: the model (task, labels, max length,
  backend), the limits, the version and the batching counters. ``/docs``: the OpenAPI page.

Micro-batching: each request's texts join one queue; the model's own thread gathers them into
batches of up to ``--max-batch-size`` texts, waiting at most ``--max-wait-ms`` after the oldest
waiting text arrived (or after the last batch ended, if later), and runs one batch at a time (torch
and ONNX Runtime use every core already), off the event loop. A request's texts may be split over
several batches and a batch may hold several requests; each request gets its own rows back through a
future. ``--max-batch-size 1`` turns batching off.

Every client mistake is a 4xx JSON answer ``{"error": "one line naming the problem"}``: malformed
JSON (400), a wrong field or type, an empty list, a pair to a single-text model and the like (422),
too many texts or too large a body (413). A failure of the model itself is a 500 for the requests of
that batch; the batcher goes on.

Shutdown (SIGTERM, SIGINT): from the signal on, new requests get a 503 and the batcher stops waiting
to fill batches; the requests in flight are answered (uvicorn waits for them), the queue is drained,
and the process exits 0. A second SIGINT stops at once.

The model is loaded through `inference.load` (the one seam), so every backend it knows works here.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request) at run time.
import asyncio
import contextlib
import dataclasses
import difflib
import json
import logging
import math
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft import __version__, artifacts, inference
from roberta_ft.config import ServeConfig
from roberta_ft.errors import ConfigError, RobertaFtError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from roberta_ft.inference import TrainedModel
    from roberta_ft.problems import Problem

logger = logging.getLogger(__name__)

EXTRA = 'pip install "roberta-ft[serve]"'
# How long a shutdown waits for the requests in flight before it cancels them.
SHUTDOWN_TIMEOUT_SECONDS = 30
_REQUEST_FIELDS = ("texts", "pairs", "top_k", "threshold", "min_confidence")


# ------------------------------------------------------------------------------------------ requests


class RequestError(Exception):
    """A client's mistake: an HTTP status and one line naming the problem and the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    pairs: list[str] | None  # the second texts, for a pair model
    top_k: int | None = None
    threshold: float | None = None
    min_confidence: float | None = None  # rows under it abstain (single-label models)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({_clip(value)!r})" if value.strip() else "an empty string"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "an object"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_request(body: bytes, *, pair_model: bool, max_texts: int) -> PredictRequest:
    """The body of ``POST /predict``, checked; a RequestError names the first problem found."""
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RequestError(
            422, f'the body must be a JSON object such as {{"texts": ["a text"]}}, got {_json_kind(document)}'
        )
    for key in document:
        if key not in _REQUEST_FIELDS:
            close = difflib.get_close_matches(str(key), _REQUEST_FIELDS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RequestError(422, f"unknown field {key!r} ({hint}the fields are {', '.join(_REQUEST_FIELDS)})")
    example = '{"pairs": [["first", "second"]]}' if pair_model else '{"texts": ["a text"]}'
    if ("texts" in document) == ("pairs" in document):
        which = 'both "texts" and' if "texts" in document else 'neither "texts" nor'
        raise RequestError(422, f'the body has {which} "pairs": send one of them, e.g. {example}')
    key = "pairs" if "pairs" in document else "texts"
    if pair_model and key == "texts":
        raise RequestError(422, f'this model classifies text pairs: send "pairs", e.g. {example}')
    if not pair_model and key == "pairs":
        raise RequestError(422, f'this model classifies single texts, not pairs: send "texts", e.g. {example}')
    items = document[key]
    if not isinstance(items, list):
        raise RequestError(422, f'"{key}" must be a list, got {_json_kind(items)}: send e.g. {example}')
    if not items:
        raise RequestError(422, f'"{key}" is empty: send at least one, e.g. {example}')
    if len(items) > max_texts:
        raise RequestError(
            413, f'"{key}" has {len(items)} items, more than this service takes in one request ({max_texts}): split it'
        )
    firsts: list[str] = []
    seconds: list[str] | None = [] if key == "pairs" else None
    for i, item in enumerate(items):
        if key == "texts":
            firsts.append(_text(item, f"texts[{i}]"))
            continue
        if not isinstance(item, list) or len(item) != 2:
            raise RequestError(422, f"pairs[{i}] must be [first, second] (two strings), got {_json_kind(item)}")
        firsts.append(_text(item[0], f"pairs[{i}][0]"))
        seconds.append(_text(item[1], f"pairs[{i}][1]"))  # type: ignore[union-attr]
    top_k = document.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(422, f'"top_k" must be a positive integer, got {_json_kind(top_k)}')
    threshold = document.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or not 0 < threshold < 1
    ):
        raise RequestError(422, f'"threshold" must be a number between 0 and 1, got {_json_kind(threshold)}')
    min_confidence = document.get("min_confidence")
    if min_confidence is not None and (
        isinstance(min_confidence, bool)
        or not isinstance(min_confidence, (int, float))
        or not math.isfinite(min_confidence)
        or not 0 < min_confidence <= 1
    ):
        raise RequestError(422, f'"min_confidence" must be a probability in (0, 1], got {_json_kind(min_confidence)}')
    return PredictRequest(
        firsts,
        seconds,
        top_k,
        None if threshold is None else float(threshold),
        None if min_confidence is None else float(min_confidence),
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RequestError(422, f"{where} must be a string, got {_json_kind(value)}")
    if not value.strip():
        raise RequestError(422, f"{where} is empty: send a text with at least one non-space character")
    return value


def request_problem(problem: "Problem", request: PredictRequest) -> "Problem":
    """The problem that builds this request's rows: `top_k` checked, its own `threshold` and `min_confidence`
    if it has them."""
    try:
        problem.check_top_k(request.top_k)
    except ConfigError as exc:  # the check speaks of the CLI flag; here it is a field
        raise RequestError(422, exc.one_line().replace("--top-k ", "top_k=")) from None
    if request.threshold is not None:
        changed = problem.with_threshold(request.threshold)
        if changed is None:
            raise RequestError(
                422,
                '"threshold" applies to multi-label models only (and binary ones trained with --optimize-threshold), '
                "and this one is not: drop it",
            )
        problem = changed
    if request.min_confidence is not None:
        try:
            problem = problem.abstaining(request.min_confidence)
        except ConfigError:
            raise RequestError(
                422, f'"min_confidence" needs a single-label model, and this one is {problem.kind}: drop it'
            ) from None
    return problem


# ------------------------------------------------------------------------------------------ batching


@dataclass(eq=False)
class _Job:
    """One request's texts in the queue: how many went into batches, and the logits come back."""

    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future
    queued_at: float  # time.monotonic()
    taken: int = 0  # texts put into batches (the model thread, under the lock)
    failed: bool = False  # a batch with some of its texts failed: its other texts are not run
    received: int = 0  # rows delivered (the event loop)
    parts: list[np.ndarray] = field(default_factory=list)


@dataclass
class BatchCounters:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0
    failed_batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        mean = self.texts / self.batches if self.batches else None
        return {**dataclasses.asdict(self), "mean_batch_size": round(mean, 3) if mean else None}


class Batcher:
    """Gathers the queued texts of concurrent requests into batches and runs them, one at a time, in its thread.

    `forward(texts, pairs)` returns one logits row per text. A batch is run when it holds
    `max_batch_size` texts, or when the oldest waiting text has waited `max_wait` seconds, counted
    from its arrival or from the end of the last batch, whichever is later, or at once while the
    service shuts down.

    The model's own thread cuts and runs the batches and takes the next one the moment the last is
    done; the event loop only queues texts and hands each request its rows. Counting the wait from
    the end of the last batch keeps a wave of requests together: without it, the few texts that
    arrived while a batch ran went alone, a batch of 2 after each of 62 under 64 clients
    (docs/performance.md, "Serving").
    """

    def __init__(
        self,
        forward: Callable[[list[str], list[str] | None], np.ndarray],
        *,
        max_batch_size: int,
        max_wait: float,
    ) -> None:
        self.forward = forward
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.counters = BatchCounters()
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # texts not yet in a batch
        self._changed = threading.Condition()  # guards the queue, _hurry and _closing
        self._hurry = False  # shutting down: run what is queued without waiting for more
        self._closing = False  # the last request is in: stop once the queue is empty
        self._free_since = 0.0  # when the last batch ended (time.monotonic())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name="roberta-ft-batches", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], pairs: list[str] | None) -> asyncio.Future:
        """A future of the logits of `texts` (one row each, in order)."""
        job = _Job(texts, pairs, asyncio.get_running_loop().create_future(), time.monotonic())
        with self._changed:
            self._jobs.append(job)
            self._queued += len(texts)
            self.counters.requests += 1
            self._changed.notify()
        return job.future

    def hurry(self) -> None:
        """Stop waiting to fill batches (shutdown began); the queue is still served."""
        with self._changed:
            self._hurry = True
            self._changed.notify()

    async def close(self) -> None:
        """Serve what is queued, then stop the model thread."""
        with self._changed:
            self._hurry = self._closing = True
            self._changed.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _work(self) -> None:
        while True:
            with self._changed:
                batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)
            self._free_since = time.monotonic()

    def _next_batch(self) -> list[tuple[_Job, int, int]] | None:
        """Under the lock: wait for a full batch, the oldest text's deadline or a shutdown; None: stop."""
        while True:
            self._drop_finished()
            if not self._jobs:
                if self._closing:
                    return None
                self._changed.wait()
                continue
            # The wait counts from the oldest text's arrival or the end of the last batch, whichever is later:
            # texts that came in while a batch ran wait (at most max_wait) for the rest of their wave.
            remaining = max(self._jobs[0].queued_at, self._free_since) + self.max_wait - time.monotonic()
            if self._queued >= self.max_batch_size or self._hurry or remaining <= 0:
                batch = self._take()
                if batch:
                    return batch
                continue
            self._changed.wait(remaining)

    def _drop_finished(self) -> None:
        """Jobs that failed or whose future is done already (cancelled) leave the queue."""
        while self._jobs and (self._jobs[0].failed or self._jobs[0].future.done()):
            job = self._jobs.popleft()
            self._queued -= len(job.texts) - job.taken

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Up to max_batch_size texts from the head of the queue, as (job, start, end) slices."""
        batch = []
        room = self.max_batch_size
        while self._jobs and room:
            self._drop_finished()
            if not self._jobs:
                break
            job = self._jobs[0]
            count = min(room, len(job.texts) - job.taken)
            batch.append((job, job.taken, job.taken + count))
            job.taken += count
            self._queued -= count
            room -= count
            if job.taken == len(job.texts):
                self._jobs.popleft()
        return batch

    def _run_batch(self, batch: list[tuple[_Job, int, int]]) -> None:
        """In the model thread: run one batch, then hand its rows (or its failure) to the event loop."""
        texts = [text for job, start, end in batch for text in job.texts[start:end]]
        pairs = None
        if batch[0][0].pairs is not None:
            pairs = [text for job, start, end in batch for text in job.pairs[start:end]]  # type: ignore[index]
        started = time.monotonic()
        counters = self.counters
        try:
            logits = self.forward(texts, pairs)
        except Exception as exc:
            counters.failed_batches += 1
            logger.error("A batch of %d texts failed: %s", len(texts), exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            with self._changed:
                for job, _, _ in batch:
                    job.failed = True
            self._call_soon(self._fail, batch, exc)
            return
        counters.batches += 1
        counters.texts += len(texts)
        counters.largest_batch = max(counters.largest_batch, len(texts))
        logger.debug(
            "Batch %d: %d texts from %d requests in %.1f ms (%d texts still queued)",
            counters.batches,
            len(texts),
            len(batch),
            (time.monotonic() - started) * 1000,
            self._queued,
        )
        self._call_soon(self._deliver, batch, logits)

    def _call_soon(self, callback, *args) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for these rows any more
            self._loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _fail(batch: list[tuple[_Job, int, int]], exc: Exception) -> None:
        for job, _, _ in batch:
            if not job.future.done():
                job.future.set_exception(exc)

    @staticmethod
    def _deliver(batch: list[tuple[_Job, int, int]], logits: np.ndarray) -> None:
        """On the event loop: each request's rows of this batch; a request is answered once all are in."""
        offset = 0
        for job, start, end in batch:
            job.parts.append(logits[offset : offset + end - start])
            offset += end - start
            job.received += end - start
            if job.received == len(job.texts) and not job.future.done():
                job.future.set_result(job.parts[0] if len(job.parts) == 1 else np.concatenate(job.parts))


# ------------------------------------------------------------------------------------------ the service


class Service:
    """The model (loaded in the background), its batcher, and the state /health reports.

    States: ``loading`` -> ``ready`` -> ``stopping``; ``failed`` when the model cannot be loaded.
    """

    def __init__(
        self,
        load: Callable[[], "TrainedModel"],
        config: ServeConfig,
        *,
        address: str | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.address = address
        self.on_failure = on_failure
        self.model: TrainedModel | None = None
        self.batcher: Batcher | None = None
        self.state = "loading"
        self.failure: BaseException | None = None
        self._load = load
        self._loading: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roberta-ft-model")

    async def start(self) -> None:
        """Start loading the model in the worker thread; the service answers /health meanwhile."""
        self._loop = asyncio.get_running_loop()
        self._loading = self._loop.run_in_executor(self._executor, self._load)
        self._loading.add_done_callback(self._loaded)

    def _loaded(self, loading: asyncio.Future) -> None:
        if loading.cancelled():
            return
        failure = loading.exception()
        if failure is not None:
            self.failure, self.state = failure, "failed"
            message = (
                failure.one_line() if isinstance(failure, RobertaFtError) else f"{type(failure).__name__}: {failure}"
            )
            logger.error("Cannot load the model: %s", message)
            if self.on_failure is not None:
                self.on_failure()
            return
        self.model = model = loading.result()
        config = self.config
        self.batcher = Batcher(self._forward, max_batch_size=config.max_batch_size, max_wait=config.max_wait_ms / 1000)
        self.batcher.start()
        if self.state == "stopping":  # a signal came while the model was loading
            self.batcher.hurry()
            return
        self.state = "ready"
        labels = model.problem.labels
        logger.info(
            "Serving %s (%s%s) with backend %s: %s, at %s; batches of up to %d texts, %g ms wait",
            model.model_dir,
            model.run.get("task", "a Hugging Face model") if model.run else "a Hugging Face model",
            f": {', '.join(labels.names)}" if labels is not None else ": a score per text",
            model.backend.name,
            model.backend.describe(),
            self.address or "an in-process app",
            config.max_batch_size,
            config.max_wait_ms,
        )

    def _forward(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        """One batch, in the batcher's thread: tokenize, run the backend, average long texts' windows."""
        model = self.model
        assert model is not None
        return model.logits(model.encode(texts, pairs), self.config.max_batch_size)

    def begin_shutdown(self) -> None:
        """From a signal handler: refuse new requests from now on; in-flight ones go on."""
        if self.state in ("loading", "ready"):
            self.state = "stopping"
            logger.info("Shutting down: answering the requests in flight, refusing new ones")
        if self._loop is not None and self.batcher is not None:
            self._loop.call_soon_threadsafe(self.batcher.hurry)

    async def stop(self) -> None:
        """After the last request in flight: drain the queue, stop the batcher and the loading thread."""
        if self.state != "failed":
            self.state = "stopping"
        if self._loading is not None and not self._loading.done():
            with contextlib.suppress(Exception):
                await self._loading  # a load cannot be interrupted; let it finish
        if self.batcher is not None:
            await self.batcher.close()
        self._executor.shutdown(wait=True)

    def refuse_unless_ready(self) -> None:
        if self.state == "ready":
            return
        messages = {
            "loading": "the model is still loading: retry when GET /health answers 200",
            "stopping": "the service is shutting down: retry on another instance",
            "failed": "the model could not be loaded: see the server's log",
        }
        raise RequestError(503, messages[self.state])

    async def predict(self, request: PredictRequest) -> list[dict[str, Any]]:
        model, batcher = self.model, self.batcher
        assert model is not None and batcher is not None
        problem = request_problem(model.problem, request)
        logits = await batcher.submit(request.texts, request.pairs)
        rows = []
        for i, row in enumerate(problem.rows(logits, request.top_k)):
            given: dict[str, Any] = {"text": request.texts[i]}
            if request.pairs is not None:
                given["text_pair"] = request.pairs[i]
            rows.append({**given, **row})
        return rows

    def info(self) -> dict[str, Any]:
        model = self.model
        assert model is not None
        problem, reading, config = model.problem, model.reading, self.config
        labels = problem.labels
        return {
            "model": str(model.model_dir),
            "task": model.run.get("task") if model.run else None,
            "problem": problem.kind,
            "labels": list(labels.names) if labels is not None else None,
            "pair": model.pair,
            "fields": problem.output_fields(None),
            "max_length": reading.max_length,
            "long_text": reading.long_text,
            "stride": reading.stride,
            "threshold": getattr(problem, "threshold", getattr(problem, "decision_threshold", None)),
            "thresholds": _thresholds(problem),
            "min_confidence": getattr(problem, "min_confidence", None),
            "backend": model.backend.name,
            "runtime": model.backend.describe(),
            "version": __version__,
            "limits": {
                "max_batch_size": config.max_batch_size,
                "max_wait_ms": config.max_wait_ms,
                "max_texts": config.max_texts,
                "max_body_kb": config.max_body_kb,
            },
            "batching": self.batcher.counters.to_dict() if self.batcher is not None else None,
        }


def _thresholds(problem: "Problem") -> dict[str, float] | None:
    """A multi-label model's per-label thresholds (chosen on validation rows), by label name."""
    cutoffs = getattr(problem, "thresholds", None)
    if cutoffs is None or problem.labels is None:
        return None
    return dict(zip(problem.labels.names, cutoffs, strict=True))


# ------------------------------------------------------------------------------------------ the app


def _text_schema(description: str) -> dict[str, Any]:
    # What `_text` accepts: a string with at least one non-space character.
    return {"type": "string", "pattern": r"\S", "description": description}


def predict_body(
    *, pair: bool, labels: bool, threshold: bool, num_labels: int | None, max_texts: int, min_confidence: bool = False
) -> dict[str, Any]:
    """The OpenAPI request body of ``POST /predict`` for the model served: "texts" for a single-text model or
    "pairs" for a pair model (exactly one, required), "top_k" where the model has `labels`, "threshold" where
    its problem has one (multi-label), and the limits `parse_request` enforces, so a schema-valid request is
    one it takes."""
    key = "pairs" if pair else "texts"
    if pair:
        item = {
            "type": "array",
            "items": _text_schema("a text"),
            "minItems": 2,
            "maxItems": 2,
            "description": "[first, second]",
        }
        example = {"pairs": [["A man plays a guitar.", "A person makes music."]]}
    else:
        item = _text_schema("a text")
        example = {"texts": ["I loved it", "a dull film"]}
    properties: dict[str, Any] = {
        key: {
            "type": "array",
            "items": item,
            "minItems": 1,
            "maxItems": max_texts,
            "description": "text pairs, [first, second] each" if pair else "the texts to label",
        }
    }
    examples = {key: {"value": example}}
    if labels:
        top_k: dict[str, Any] = {"type": "integer", "minimum": 1, "description": "the K best labels"}
        if num_labels:
            top_k["maximum"] = num_labels
        properties["top_k"] = top_k
        examples["top_k"] = {"value": {key: example[key][:1], "top_k": min(2, num_labels or 2)}}
    if threshold:
        properties["threshold"] = {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "description": "this request's threshold (multi-label models, and binary ones with a decision threshold)",
        }
    if min_confidence:
        properties["min_confidence"] = {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "rows whose label's probability is under it abstain (no label; probabilities stay)",
        }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [key],
                    "properties": properties,
                },
                "examples": examples,
            }
        },
    }


_ERROR = {"content": {"application/json": {"example": {"error": "one line naming the problem"}}}}
_PREDICT_RESPONSES = {
    "200": {
        "description": "One row per input, in order: the rows of `roberta-ft predict --json` without `line`",
        "content": {
            "application/json": {
                "example": {"predictions": [{"text": "I loved it", "label": "positive", "probability": 0.982}]}
            }
        },
    },
    "400": {"description": "The body is not valid JSON", **_ERROR},
    "413": {"description": "Too many texts, or too large a body", **_ERROR},
    "422": {"description": "A wrong field, type or value", **_ERROR},
    "503": {"description": "The model is loading, or the service is shutting down", **_ERROR},
}


def predict_operation(service: "Service") -> dict[str, Any]:
    """The OpenAPI operation of ``POST /predict`` for the model `service` serves (read from its run_config.json
    while it loads)."""
    from roberta_ft import problems

    model = service.model
    if model is not None:
        pair, problem, names = model.pair, type(model.problem), model.problem.labels
        num_labels = len(names) if names is not None else None
        decision = getattr(model.problem, "decision_threshold", None) is not None
    else:
        try:
            run = artifacts.read_run_config(service.config.model_dir)
        except RobertaFtError:
            run = {}
        pair, num_labels = bool(run.get("text_pair")), len(run.get("label_names") or []) or None
        problem = problems.KINDS.get(run.get("problem_type"), problems.SingleLabel)
        decision = "positive_label" in (run.get("thresholds") or {})
    fields = {field.name for field in dataclasses.fields(problem)}
    body = predict_body(
        pair=pair,
        labels=problem.has_labels,
        threshold="threshold" in fields or decision,
        num_labels=num_labels,
        max_texts=service.config.max_texts,
        min_confidence="min_confidence" in fields,
    )
    return {
        "summary": "Predict",
        "description": f"Label {'text pairs' if pair else 'texts'}: one row per input, in order.",
        "operationId": "predict",
        "requestBody": body,
        "responses": _PREDICT_RESPONSES,
    }


def _require_extra() -> None:
    for package in ("fastapi", "uvicorn"):
        try:
            __import__(package)
        except ImportError:
            raise ConfigError(
                f"roberta-ft serve needs the {package!r} package, which is not installed", EXTRA
            ) from None


def build_app(service: "Service") -> "FastAPI":
    """The FastAPI app over `service`; its lifespan loads the model and drains the queue at shutdown."""
    _require_extra()
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="roberta-ft",
        version=__version__,
        description="Predictions of one roberta-ft model directory. See docs/deployment.md.",
        lifespan=lifespan,
    )
    body_limit = service.config.max_body_kb * 1024

    def error(status: int, message: str, **headers: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        # A 413 may leave part of the body unread: close the connection rather than read it.
        return error(exc.status, exc.message, **({"Connection": "close"} if exc.status in (413, 503) else {}))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):  # 404, 405 ...: the same error shape
        return error(exc.status_code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        logger.error("Request failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        return error(500, f"internal error ({type(exc).__name__}: {exc}); see the server's log")

    async def predict(request: Request):
        service.refuse_unless_ready()
        body = await _read_body(request, body_limit)
        model = service.model
        assert model is not None
        parsed = parse_request(body, pair_model=model.pair, max_texts=service.config.max_texts)
        return JSONResponse({"predictions": await service.predict(parsed)})

    # A plain Starlette route: it reads and checks its body itself, so FastAPI's per-request work
    # (dependencies, validation) would buy nothing; its OpenAPI entry is added to the schema below.
    app.router.routes.append(Route("/predict", predict, methods=["POST"]))
    openapi = app.openapi

    def openapi_with_predict() -> dict[str, Any]:
        schema = openapi()
        schema["paths"].setdefault("/predict", {"post": predict_operation(service)})
        return schema

    app.openapi = openapi_with_predict  # type: ignore[method-assign]

    @app.get("/health", responses={503: {"description": "loading, stopping or failed"}})
    async def health():
        """200 {"status": "ready"} once the model is loaded and requests are taken; else 503 and the state."""
        return JSONResponse({"status": service.state}, status_code=200 if service.state == "ready" else 503)

    @app.get("/info", responses={503: {"description": "The model is still loading", **_ERROR}})
    async def info():
        """The model (task, labels, max length, backend), the limits, the version and the batching counters."""
        if service.model is None:
            service.refuse_unless_ready()
        return JSONResponse(service.info())

    return app


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = f"the body is larger than this service takes ({limit // 1024} KiB): send fewer or shorter texts"
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------ the command


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: ServeConfig) -> None:
    """Run the service until SIGTERM or SIGINT; raises a RobertaFtError when it cannot start."""
    config.validate()
    _require_extra()
    import uvicorn

    model_dir = artifacts.check_model_dir(config.model_dir, weights=config.backend == "torch")
    address = url(config.host, config.port)
    if not config.is_local:
        logger.warning(
            "Listening on %s: other machines can reach this service, and it has no authentication "
            "(the default --host 127.0.0.1 keeps it on this machine)",
            address,
        )
    listener = _listen(config.host, config.port)
    service = Service(lambda: _load(model_dir, config), config, address=address)
    server = _uvicorn_server(
        uvicorn.Config(
            build_app(service),
            log_config=None,  # the CLI's logging set-up holds
            access_log=config.access_log,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS,
            server_header=False,
        ),
        service,
    )

    def stop_server() -> None:
        server.should_exit = True

    service.on_failure = stop_server
    logger.info("Loading %s; listening on %s (GET /health answers 200 once the model is loaded)", model_dir, address)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    if service.failure is not None:
        raise service.failure  # what `predict` would have raised on this model directory
    logger.info("Stopped")


def _load(model_dir: Path, config: ServeConfig) -> "TrainedModel":
    return inference.load(model_dir, **inference.load_options(config))


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: a taken port is one error line at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, where = infos[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(where)
        except OSError:
            listener.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot listen on {url(host, port)}: {reason}", "pass another --port or --host, or stop what holds it"
        ) from None
    listener.set_inheritable(True)
    return listener


def _uvicorn_server(uvicorn_config, service: "Service"):
    """uvicorn's server, telling the service when a shutdown begins, and exiting 0 after a graceful one."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            service.begin_shutdown()
            # uvicorn's own handler also re-raises the signal once it has stopped (exit status 128+N);
            # a stop on request that answered every request in flight is a success here.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server(uvicorn_config)
