"""A trained model for eval, predict (files and task splits) and glue-report: the one seam for inference.

`load(model_dir, ...)` reads a model directory once: its weights and tokenizer, the problem it solves
(`problems.for_model`, from config.json), how it reads texts (`Reading`: the training's max length,
long-text strategy, stride, multi-label threshold and separator from run_config.json, each overridden
by a flag given now), the decision thresholds chosen on validation rows (run_config.json's "thresholds":
per label for multi-label, a binary model's with --optimize-threshold; an explicit --threshold wins), and the
device and precision it runs on. The `TrainedModel` it returns encodes
texts and turns them into logits, one row per text, through a `Backend`.

A backend is what runs the network: `TorchBackend` (transformers on Accelerate's device) is the one
here; another (an exported graph, a remote service) implements `Backend.logits` and plugs in at
`load(..., backend=...)` without the commands changing. A model not trained by roberta-ft is read as
a Hugging Face model: truncated texts, multi-label when its config.json says
``multi_label_classification``.

`align` maps a model's labels onto a task's label order (by name), for metrics and leaderboard files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from roberta_ft import artifacts, problems
from roberta_ft.data.labels import LabelMap
from roberta_ft.data.tokens import Encoded, check_options, encode_dataset, encode_texts
from roberta_ft.errors import ConfigError
from roberta_ft.runtime import BACKENDS

if TYPE_CHECKING:
    import datasets

    from roberta_ft.problems import Problem
    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)

# The options of eval, predict and serve that decide how a model is loaded and reads texts (load_options()).
LOAD_OPTIONS = ("backend", "device", "precision", "trust_remote_code", "max_length", "long_text", "stride", "threshold")
# predict and serve only: rows under this probability abstain.
ABSTAIN_OPTION = "min_confidence"
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


@dataclass(frozen=True)
class Reading:
    """How a model reads texts: as trained, unless a flag says otherwise now."""

    max_length: int
    long_text: str = "truncate"
    stride: int | None = None
    threshold: float = 0.5
    separator: str = "|"


def reading(
    run: dict[str, Any],
    *,
    fallback_max_length: int,
    max_length: int | None = None,
    long_text: str | None = None,
    stride: int | None = None,
    threshold: float | None = None,
) -> Reading:
    trained = run.get("config", {}) if run else {}
    max_length = max_length or trained.get("max_length") or fallback_max_length
    strategy = long_text or trained.get("long_text") or "truncate"
    # The training stride belongs to the training strategy: a strategy chosen now starts from its own default.
    stride = stride if stride is not None or long_text else trained.get("stride")
    check_options(strategy, stride, max_length)
    return Reading(
        max_length=max_length,
        long_text=strategy,
        stride=stride,
        threshold=float(threshold if threshold is not None else trained.get("threshold", 0.5)),
        separator=trained.get("label_separator") or "|",
    )


class Backend(Protocol):
    """What runs the network: logits for every model input of `encoded`, in its order, model label order."""

    name: str

    def logits(self, encoded: Encoded, batch_size: int) -> np.ndarray: ...

    def describe(self) -> str: ...


class TorchBackend:
    """The transformers model on the device and precision `runtime.resolve_runtime` picked."""

    name = "torch"

    def __init__(self, model, runtime, *, pad_id: int) -> None:
        from roberta_ft.runtime import make_accelerator

        self.runtime = runtime
        self.accelerator = make_accelerator(runtime)
        self.model = model.to(self.accelerator.device).eval()
        self.pad_id = pad_id

    def logits(self, encoded: Encoded, batch_size: int) -> np.ndarray:
        from roberta_ft.forward import predict_logits

        return predict_logits(self.model, encoded, batch_size, accelerator=self.accelerator, pad_id=self.pad_id)

    def describe(self) -> str:
        runtime = self.runtime
        return f"Device {runtime.device}, precision {runtime.precision} ({runtime.reason})"


@dataclass
class TrainedModel:
    model_dir: Path
    run: dict[str, Any]  # run_config.json ({} for a model not trained by roberta-ft)
    problem: Problem  # in the model's own label order
    tokenizer: Any
    reading: Reading
    backend: Backend

    @property
    def trained_settings(self) -> dict[str, Any]:
        return self.run.get("config", {}) if self.run else {}

    @property
    def pair(self) -> bool:
        """Whether the model was trained on text pairs."""
        return bool(self.run.get("text_pair"))

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Encoded:
        """Model inputs for texts to predict (streamed input: tokenized once, not cached)."""
        reading = self.reading
        return encode_texts(
            self.tokenizer,
            texts,
            pairs,
            reading.max_length,
            strategy=reading.long_text,
            stride=reading.stride,
            cache=False,
        )

    def encode_dataset(self, dataset: datasets.Dataset, labels: LabelMap | None, *, source: str) -> Encoded:
        """Model inputs and targets (by `labels`) of a labelled table, through the token cache."""
        reading = self.reading
        return encode_dataset(
            dataset,
            self.tokenizer,
            reading.max_length,
            labels,
            source=source,
            strategy=reading.long_text,
            stride=reading.stride,
        )

    def logits(self, encoded: Encoded, batch_size: int) -> np.ndarray:
        """One row per text (a long text's windows averaged), in the model's label order."""
        return encoded.per_text(self.backend.logits(encoded, batch_size))


def load(
    model_dir: str | Path,
    *,
    backend: str = "torch",
    device: str = "auto",
    precision: str = "auto",
    trust_remote_code: bool = False,
    max_length: int | None = None,
    long_text: str | None = None,
    stride: int | None = None,
    threshold: float | None = None,
    min_confidence: float | None = None,
) -> TrainedModel:
    """Load a model directory for inference (see the module docstring); the flags override the training's."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not valid", f"use one of {', '.join(BACKENDS)}")
    model_dir = artifacts.check_model_dir(model_dir, weights=backend == "torch")
    run = artifacts.read_run_config(model_dir)
    if backend == "onnx":
        runner, model_config, tokenizer = _onnx(model_dir, device, precision)
    else:
        runner, model_config, tokenizer = _torch(model_dir, device, precision, trust_remote_code)
    how = reading(
        run,
        fallback_max_length=min(512, tokenizer.model_max_length),
        max_length=max_length,
        long_text=long_text,
        stride=stride,
        threshold=threshold,
    )
    problem = problems.for_model(model_config, threshold=how.threshold, separator=how.separator)
    problem = chosen_thresholds(problem, run, explicit=threshold).abstaining(min_confidence)
    logger.info(runner.describe())
    return TrainedModel(model_dir, run, problem, tokenizer, how, runner)


def _torch(model_dir: Path, device: str, precision: str, trust_remote_code: bool):
    from roberta_ft.modeling import load_trained
    from roberta_ft.runtime import resolve_runtime

    model, tokenizer = load_trained(model_dir, trust_remote_code=trust_remote_code)
    runtime = resolve_runtime(device, precision, width=getattr(model.config, "hidden_size", None))
    return TorchBackend(model, runtime, pad_id=tokenizer.pad_token_id), model.config, tokenizer


def _onnx(model_dir: Path, device: str, precision: str):
    """The exported graph on ONNX Runtime, config.json and tokenizer.json read without torch or transformers."""
    from roberta_ft import onnx_model
    from roberta_ft.data.light_tokenizer import LightTokenizer

    onnx_model.require("onnxruntime")
    path, chosen = onnx_model.pick_file(model_dir, precision)
    model_config = onnx_model.model_config(model_dir)
    artifacts.check_label_names(model_config.id2label, model_dir)
    runner = onnx_model.OnnxBackend(path, chosen, pad_id=0, device=device)
    tokenizer = LightTokenizer(model_dir, model_input_names=runner.inputs)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else getattr(model_config, "pad_token_id", 0)
    runner.pad_id = pad_id if pad_id is not None else 0
    return runner, model_config, tokenizer


def load_options(settings) -> dict[str, Any]:
    """The `load` options of an EvalConfig, PredictConfig or ServeConfig."""
    options = {name: getattr(settings, name) for name in LOAD_OPTIONS}
    if hasattr(settings, ABSTAIN_OPTION):
        options[ABSTAIN_OPTION] = getattr(settings, ABSTAIN_OPTION)
    return options


def chosen_thresholds(problem: Problem, run: dict[str, Any], *, explicit: float | None = None) -> Problem:
    """The problem with the thresholds its training chose on validation rows (run_config.json "thresholds"):
    one per label (multi-label), or a binary model's decision threshold. An explicit --threshold wins."""
    return problem.with_chosen_thresholds((run or {}).get("thresholds") or {}, explicit)


def align(problem: Problem, task: Task) -> tuple[Problem, np.ndarray | None]:
    """The problem in the task's label order, and how to map model output ids into it (None: same order).

    A task with fixed labels (e.g. MNLI's entailment, neutral, contradiction) is scored in the task's
    order whatever order the model uses; names are matched case-insensitively. Generic names
    (LABEL_0, LABEL_1, ...) can only be taken in index order, which is logged.
    """
    regression = not problem.has_labels
    task_regression = problems.predicts_scores(task)
    if regression != task_regression:
        outputs = 1 if regression else len(problem.labels)
        raise ConfigError(
            f"task {task.name!r} is {'a regression' if task_regression else 'a classification'} task but the "
            f"model has {outputs} output(s)",
            "use a model trained for this task, or pass the right --task",
        )
    if regression or not task.label_names:
        return problem, None
    model_names = list(problem.labels.names)
    if len(model_names) != len(task.label_names):
        raise ConfigError(
            f"the model has {len(model_names)} labels ({', '.join(model_names)}) but task {task.name!r} has "
            f"{len(task.label_names)} ({', '.join(task.label_names)})",
            "evaluate with a model trained for this task, or pass the right --task",
        )
    in_task_order = problem.reordered(task.label_names)
    if all(_GENERIC_LABEL.match(name) for name in model_names):
        logger.warning(
            "The model's labels are generic (%s): assuming they are in the task's order (%s)",
            ", ".join(model_names),
            ", ".join(task.label_names),
        )
        return in_task_order, None
    lookup = {name.lower(): i for i, name in enumerate(task.label_names)}
    missing = [name for name in model_names if name.lower() not in lookup]
    if missing:
        raise ConfigError(
            f"model labels {', '.join(map(repr, missing))} are not labels of task {task.name!r}",
            f"the task's labels are {', '.join(task.label_names)}",
        )
    permutation = np.array([lookup[name.lower()] for name in model_names])
    if not np.array_equal(permutation, np.arange(len(model_names))):
        logger.info("Mapping the model's label order (%s) to the task's by name", ", ".join(model_names))
    return in_task_order, permutation


def to_task_order(logits: np.ndarray, permutation: np.ndarray | None) -> np.ndarray:
    """Logit columns moved from the model's label order into the task's (see align)."""
    if permutation is None:
        return logits
    reordered = np.empty_like(logits)
    reordered[:, permutation] = logits
    return reordered
