"""`roberta_ft.predict.predict(config)`: label a text file, one text per line, streaming in input order."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from roberta_ft import artifacts, inference, long_text, predictions
from roberta_ft.config import PredictConfig
from roberta_ft.data import Encoded, iter_lines
from roberta_ft.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass
class PredictResult:
    num_lines: int
    num_predicted: int
    seconds: float
    output: str | None
    submission: str | None = None  # the leaderboard file written (task datasets with --submission)

    @property
    def texts_per_second(self) -> float:
        return self.num_predicted / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_lines": self.num_lines,
            "num_predicted": self.num_predicted,
            "seconds": self.seconds,
            "texts_per_second": self.texts_per_second,
            "output": self.output,
            **({"submission": self.submission} if self.submission else {}),
        }


class RowWriter:
    """Writes one output row per input line; stdout gets `label<TAB>score`, files get every field."""

    def __init__(self, handle: TextIO, fmt: str, fields: list[str], separator: str = "|") -> None:
        self.handle, self.fmt, self.fields, self.separator = handle, fmt, fields, separator
        if fmt in ("csv", "tsv"):
            self.csv = csv.writer(handle, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
            self.csv.writerow(fields)

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "plain":
            self.handle.write("\t".join(self._cell(row.get(f)) for f in self.fields) + "\n")
        else:
            self.csv.writerow([self._cell(row.get(f)) for f in self.fields])

    def _cell(self, value: Any) -> str:
        """A field as text; a list (top-k or multi-label labels) joined by the label separator."""
        if value is None:
            return ""
        if isinstance(value, list):
            return self.separator.join(map(str, value))
        return str(value)


def _chunks(lines: Iterator[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict(config: PredictConfig, stdout: TextIO | None = None, *, stdout_format: str = "plain") -> PredictResult:
    """Without --output, rows go to `stdout`: `label<TAB>probability` lines, or every field as JSON lines."""
    from roberta_ft.loop import predict_logits
    from roberta_ft.modeling import load_trained
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    config.validate()
    from roberta_ft.predict_split import input_task, predict_split

    if input_task(config.input) is not None:  # INPUT names a task dataset, e.g. glue/sst2
        file_only = {"top_k": config.top_k, "threshold": config.threshold, "long_text": config.long_text}
        for name, value in file_only.items():
            if value is not None:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} applies to a text file INPUT, not task dataset {config.input}", f"drop {flag}"
                )
        return predict_split(config, stdout=stdout)
    if config.submission is not None:
        raise ConfigError(
            f"--submission needs a task dataset as INPUT, not the file {config.input}",
            "pass e.g. glue/sst2 --split test",
        )
    model_dir = artifacts.check_model_dir(config.model_dir)
    run = artifacts.read_run_config(model_dir)
    if not Path(config.input).exists():
        raise DataError(f"file not found: {config.input}", "check the path of the text file")
    out_path = output_path(config)
    runtime = resolve_runtime(config.device, config.precision)
    model, tokenizer = load_trained(model_dir, trust_remote_code=config.trust_remote_code)
    regression = model.config.problem_type == "regression" or model.config.num_labels == 1
    pair = bool(run.get("text_pair"))
    max_length = config.max_length or run.get("config", {}).get("max_length") or min(512, tokenizer.model_max_length)
    names = None if regression else [model.config.id2label[i] for i in range(model.config.num_labels)]
    reading = inference.reading(config, run, model.config, max_length)
    if regression and config.top_k is not None:
        raise ConfigError("--top-k needs a classifier, but this model predicts a score (regression)", "drop --top-k")
    if not regression:
        predictions.check_top_k(config.top_k, len(names))
    accelerator = make_accelerator(runtime)
    model = model.to(accelerator.device).eval()
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)

    output_fields = (
        ["score"] if regression else predictions.output_fields(multi_label=reading.multi_label, top_k=config.top_k)
    )
    fields = ["line", "text"] + (["text_pair"] if pair else []) + output_fields

    def run_into(handle: TextIO, fmt: str) -> PredictResult:
        writer = RowWriter(handle, fmt, output_fields if fmt == "plain" else fields, separator=reading.separator)
        total = predicted = 0
        seconds = 0.0
        for chunk in _chunks(iter_lines(config.input, config.encoding), config.chunk_lines):
            texts, pairs, keep = [], [], []
            for position, (number, line) in enumerate(chunk):
                if not line.strip():
                    continue  # an empty line gives an empty output row, so line numbers still match
                if pair:
                    if "\t" not in line:
                        raise DataError(
                            f"{config.input}: line {number} has no tab, but the model classifies text pairs",
                            "write each pair as FIRST<TAB>SECOND on one line",
                        )
                    first, second = line.split("\t", 1)
                    texts.append(first)
                    pairs.append(second)
                else:
                    texts.append(line)
                keep.append(position)
            started = time.perf_counter()
            results: dict[int, dict[str, Any]] = {}
            if texts:
                ids, types, owners, _ = long_text.tokenize(
                    tokenizer, texts, pairs if pair else None, max_length, reading.long_text, reading.stride
                )
                logits = predict_logits(
                    model,
                    Encoded(ids, None, types),
                    config.batch_size,
                    accelerator=accelerator,
                    pad_id=tokenizer.pad_token_id,
                )
                logits = long_text.per_text(logits, owners, len(texts))
                if regression:
                    for position, value in zip(keep, logits[:, 0], strict=True):
                        results[position] = {"score": round(float(value), 6)}
                else:
                    rows = predictions.label_rows(
                        logits, names, multi_label=reading.multi_label, threshold=reading.threshold, top_k=config.top_k
                    )
                    results.update(zip(keep, rows, strict=True))
            seconds += time.perf_counter() - started
            for position, (number, line) in enumerate(chunk):
                row: dict[str, Any] = {"line": number}
                if pair and position in results:
                    row["text"], row["text_pair"] = line.split("\t", 1)
                else:
                    row["text"] = line
                row.update(results.get(position, {}))
                writer.write(row)
            handle.flush()
            total += len(chunk)
            predicted += len(keep)
        return PredictResult(total, predicted, seconds, str(out_path) if out_path else None)

    if out_path is None:
        return run_into(stdout or sys.stdout, stdout_format)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            result = run_into(handle, OUTPUT_FORMATS[out_path.suffix.lower()])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("Wrote %d predictions to %s", result.num_lines, out_path)
    return result


def output_path(config: PredictConfig) -> Path | None:
    """--output as a Path after checking its format is known and that it may be written (None: stdout)."""
    out_path = Path(config.output) if config.output else None
    if out_path is not None:
        if out_path.suffix.lower() not in OUTPUT_FORMATS:
            raise ConfigError(f"cannot tell the output format of {out_path}", "use a .csv, .tsv or .jsonl file name")
        if out_path.exists() and not config.overwrite:
            raise ConfigError(f"--output {out_path} already exists", "pass --overwrite to replace it")
    return out_path


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)
