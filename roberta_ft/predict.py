"""`roberta_ft.predict.predict(config)`: label a text file, one text per line, or a split of a task's dataset.

A text file streams: read, tokenized, predicted and written a chunk of lines at a time (length-sorted
batches inside a chunk), rows in input order, so memory stays flat on any file size. An empty line
gives an empty output row, so line numbers still match. A pair model reads FIRST<TAB>SECOND lines.

`predict MODEL glue/sst2 --split test` predicts a split of the task's own dataset (unlabelled test
splits included): rows keyed by the split's ``idx``, labels in the task's order by name whatever order
the model uses, and with ``--submission DIR`` the task's leaderboard file (``Task.write_submission``).

Both inputs take every prediction option (--top-k, --threshold, --long-text/--stride, the output
formats); the rows are the model's problem's (problems.py), written by predictions.RowWriter.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from roberta_ft import artifacts, inference
from roberta_ft.config import PredictConfig
from roberta_ft.data.files import iter_lines
from roberta_ft.data.sources import dataset_task
from roberta_ft.errors import ConfigError, DataError
from roberta_ft.predictions import PredictResult, RowWriter, output_format, output_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Item:
    """One input row: its key (file line or split idx), its text(s); text None: an empty line, not predicted."""

    key: int
    text: str | None
    pair: str | None = None
    raw: str | None = None  # the line as read (a text file's rows show it)


def predict(config: PredictConfig, stdout: TextIO | None = None, *, stdout_format: str = "plain") -> PredictResult:
    """Without --output, rows go to `stdout`: `label<TAB>probability` lines, or every field as JSON lines."""
    config.validate()
    task = dataset_task(config.input)  # INPUT names a task dataset, e.g. glue/sst2
    model_dir = artifacts.check_model_dir(config.model_dir, weights=config.backend == "torch")
    run = artifacts.read_run_config(model_dir)
    if task is None:
        if config.submission is not None:
            raise ConfigError(
                f"--submission needs a task dataset as INPUT, not the file {config.input}",
                "pass e.g. glue/sst2 --split test",
            )
        if not Path(config.input).exists():
            raise DataError(f"file not found: {config.input}", "check the path of the text file")
    elif config.submission is not None and task.write_submission is None:
        raise ConfigError(f"task {task.name!r} has no leaderboard file format", "drop --submission; use --output")
    out_path = output_path(config.output, overwrite=config.overwrite)
    dataset = _split_dataset(task, config, run) if task is not None else None

    model = inference.load(model_dir, **inference.load_options(config))
    tabbed = _Tabbed()
    if task is None:
        problem, permutation, key = model.problem, None, "line"
        items: Iterable[_Item] = _file_items(config.input, config.encoding, pair=model.pair, tabbed=tabbed)
        pair = model.pair
    else:
        problem, permutation = inference.align(model.problem, task)
        key, pair = "idx", "text_pair" in dataset.column_names
        items = _split_items(dataset)
    problem.check_top_k(config.top_k)
    if config.submission is not None and not problem.one_decision_per_text:
        raise ConfigError("--submission needs one label or score per text, but this model is multi-label", "drop it")

    outputs = problem.output_fields(config.top_k)
    fields = [key, "text", *(["text_pair"] if pair else []), *outputs]
    plain = outputs if task is None else [key, *outputs]  # stdout: the output fields (and a split's idx)
    decisions: list[Any] = []  # label ids (task order) or scores, for the leaderboard file
    decided_keys: list[int] = []

    def run_into(handle: TextIO, fmt: str, *, live: bool = False) -> PredictResult:
        writer = RowWriter(handle, fmt, plain if fmt == "plain" else fields, separator=model.reading.separator)
        total = predicted = 0
        seconds = 0.0
        # A pipe or a terminal reads the rows as they come: the first chunks are small, so the first rows show
        # within a batch's time, and grow to --chunk-lines (length-sorted batches waste less padding there).
        for chunk in _chunks(items, config.chunk_lines, first=config.batch_size if live else None):
            started = time.perf_counter()
            rows, decided = _predict_chunk(model, problem, permutation, chunk, config, key=key, pair=pair)
            seconds += time.perf_counter() - started
            for row in rows:
                writer.write(row)
            handle.flush()
            decisions.extend(decided)
            decided_keys.extend(item.key for item in chunk if item.text is not None)
            total += len(chunk)
            predicted += sum(item.text is not None for item in chunk)
        return PredictResult(total, predicted, seconds, str(out_path) if out_path else None)

    if out_path is not None:
        holder: list[PredictResult] = []
        with artifacts.writing(out_path):
            artifacts.atomic_write(out_path, lambda handle: holder.append(run_into(handle, output_format(out_path))))
        result = holder[0]
        logger.info("Wrote %d predictions to %s", result.num_lines, out_path)
    elif task is not None and config.submission is not None:
        result = run_into(_Discard(), "plain")  # the leaderboard file is the output
    else:
        handle = stdout or sys.stdout
        result = run_into(handle, stdout_format, live=_is_live(handle))
    if tabbed.count:
        logger.warning(
            "%d line(s) of %s hold a tab (first: line %d), but the model classifies single texts: each tab was "
            "read as part of its text (if the tab separates two texts, train a pair model with "
            "--text-pair-column; else replace the tabs with spaces)",
            tabbed.count,
            config.input,
            tabbed.first,
        )
    if task is None and result.num_lines == 0:
        logger.warning("%s is empty: 0 texts predicted (write one text per line)", config.input)
    if config.submission is not None:
        result.submission = str(task.write_submission(task, decided_keys, decisions, config.submission))
        logger.info("Wrote %d predictions to %s", len(decided_keys), result.submission)
    return result


def _predict_chunk(
    model: inference.TrainedModel, problem, permutation, chunk: list[_Item], config: PredictConfig, *, key, pair
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The output rows of a chunk of items, in order, and the decisions (label ids or scores) of its texts."""
    texts = [item for item in chunk if item.text is not None]
    results: list[dict[str, Any]] = []
    decided: list[Any] = []
    if texts:
        encoded = model.encode([item.text for item in texts], [item.pair for item in texts] if pair else None)
        logits = inference.to_task_order(model.logits(encoded, config.batch_size), permutation)
        results = problem.rows(logits, config.top_k)
        if problem.one_decision_per_text:
            decided = problem.decide(logits).tolist()
    found = iter(results)
    rows = []
    for item in chunk:
        row: dict[str, Any] = {key: item.key}
        if item.text is None:
            row["text"] = item.raw
        else:
            row["text"] = item.text
            if pair:
                row["text_pair"] = item.pair
            row.update(next(found))
        rows.append(row)
    return rows, decided


class _Tabbed:
    """The lines given to a single-text model that hold a tab: how many, and the first."""

    count: int = 0
    first: int = 0

    def add(self, line: int) -> None:
        self.count += 1
        self.first = self.first or line


def _file_items(path: str, encoding: str, *, pair: bool, tabbed: _Tabbed | None = None) -> Iterator[_Item]:
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            yield _Item(number, None, raw=line)  # an empty output row, so line numbers still match
        elif pair:
            fields = line.count("\t") + 1
            if fields != 2:
                raise DataError(
                    f"{path}: line {number} has "
                    + ("no tab" if fields == 1 else f"{fields} tab-separated fields")
                    + ", but the model classifies text pairs",
                    "write each pair as FIRST<TAB>SECOND on one line, with no other tab",
                )
            first, second = line.split("\t")
            yield _Item(number, first, second, raw=line)
        else:
            if tabbed is not None and "\t" in line:
                tabbed.add(number)
            yield _Item(number, line, raw=line)


def _is_live(handle: TextIO) -> bool:
    """Whether `handle` is read as it is written: a terminal, a pipe or a socket (not a regular file)."""
    import os
    import stat

    try:
        if handle.isatty():
            return True
        mode = os.fstat(handle.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _split_dataset(task, config: PredictConfig, run: dict[str, Any]):
    from roberta_ft.data.sources import load_source

    trained = run.get("config", {})
    dataset = load_source(
        config.input, config.split, task, data_dir=config.data_dir or trained.get("data_dir"), need_label=False
    )
    if "label" in dataset.column_names:  # a labelled split (e.g. validation): predicted like a test split
        dataset = dataset.remove_columns("label")
    pair = "text_pair" in dataset.column_names
    if run and bool(run.get("text_pair")) != pair:
        raise ConfigError(
            f"the model was trained on {'text pairs' if run.get('text_pair') else 'single texts'} but "
            f"{task.name} gives {'text pairs' if pair else 'single texts'}",
            "predict with a model trained for this task",
        )
    return dataset


def _split_items(dataset) -> Iterator[_Item]:
    keys = dataset["idx"] if "idx" in dataset.column_names else [line - 1 for line in dataset["line"]]
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    for i, text in enumerate(dataset["text"]):
        yield _Item(int(keys[i]), text, pairs[i] if pairs is not None else None)


def _chunks(items: Iterable[_Item], size: int, *, first: int | None = None) -> Iterator[list[_Item]]:
    """Lists of `size` items; with `first`, the first list holds `first` items and each next one twice as many,
    up to `size`."""
    limit = min(first, size) if first else size
    chunk: list[_Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == limit:
            yield chunk
            chunk = []
            limit = min(limit * 2, size)
    if chunk:
        yield chunk


class _Discard:
    """A text handle that keeps nothing (rows of a run whose output is its leaderboard file)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
