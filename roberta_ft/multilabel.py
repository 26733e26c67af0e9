"""Multi-label classification: several labels per row ("sports|politics"), one sigmoid per label.

A row's label cell holds its labels joined by ``--label-separator`` (default ``|``), or a JSON list
(``["sports", "politics"]``, also the natural form in JSONL); ``[]`` is a row with no label at all.
Targets are multi-hot rows; the model's ``config.json`` says ``problem_type: multi_label_classification``,
so ``transformers.pipeline`` applies a sigmoid too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft.data import LabelMap, sort_label_names
from roberta_ft.errors import ConfigError, DataError

if TYPE_CHECKING:
    from roberta_ft.registry import Task

PROBLEM_TYPE = "multi_label_classification"
PRIMARY_METRIC = "micro_f1"


def split_labels(value: Any, separator: str) -> list[str]:
    """The labels of one cell, in order, each once: "a|b", a JSON list '["a", "b"]', or a list."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, (list, tuple)):
        parts = [str(part).strip() for part in value]
    else:
        parts = [part.strip() for part in str(value).split(separator)]
    return list(dict.fromkeys(part for part in parts if part))


@dataclass(frozen=True)
class MultiLabelMap(LabelMap):
    """Label names in a fixed order (LabelMap's id mapping); encodes label cells into multi-hot rows."""

    separator: str = "|"

    @classmethod
    def infer(cls, labels: Sequence[Any], separator: str, task: Task | None = None) -> MultiLabelMap:
        seen = {name for value in labels for name in split_labels(value, separator)}
        if task is not None and task.label_names and seen <= set(task.label_names):
            return cls(tuple(task.label_names), separator)
        if len(seen) < 2:
            raise DataError(
                f"the training data has {len(seen)} distinct label(s) with --label-separator {separator!r}",
                "a multi-label classifier needs at least two labels; check --label-column and --label-separator",
            )
        return cls(tuple(sort_label_names(seen)), separator)

    def encode(self, labels: Sequence[Any], *, source: str, lines: Sequence[int] | None = None) -> np.ndarray:
        lookup = self.label2id
        lower = {name.lower(): i for name, i in lookup.items()}
        targets = np.zeros((len(labels), len(self.names)), dtype=np.float32)
        for row, value in enumerate(labels):
            for name in split_labels(value, self.separator):
                found = lookup.get(name, lower.get(name.lower()))
                if found is None:
                    line = lines[row] if lines is not None else row + 1
                    raise DataError(
                        f"{source}: label {name!r} (line {line}) is not among the model's labels",
                        f"the model knows {', '.join(map(repr, self.names))}; fix the data or retrain with those labels",
                    )
                targets[row, found] = 1.0
        return targets

    def decode(self, row: np.ndarray) -> list[str]:
        return [self.names[i] for i in np.flatnonzero(row)]


def check_settings(task: Task, *, metric: str | None, class_weights: Any) -> None:
    if task.is_regression:
        raise ConfigError(f"--multi-label does not apply to regression task {task.name!r}", "drop --multi-label")
    if metric is not None:
        raise ConfigError("--metric (an evaluate metric) does not take multi-label predictions", "drop --metric")
    if class_weights is not None:
        raise ConfigError(
            "--class-weights weighs the classes of a single-label classifier, not the labels of --multi-label",
            "drop --class-weights",
        )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


def predict(logits: np.ndarray, threshold: float) -> np.ndarray:
    """Multi-hot predictions: every label whose probability reaches the threshold."""
    return (sigmoid(logits) >= threshold).astype(np.int64)


def metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Micro- and macro-averaged F1 over labels, and subset accuracy (every label of the row right)."""
    from sklearn.metrics import f1_score

    references = references.astype(np.int64)
    return {
        "micro_f1": float(f1_score(references, predictions, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
        "subset_accuracy": float((predictions == references).all(axis=1).mean()) if len(references) else float("nan"),
    }


def metric_function(threshold: float):
    def compute(logits: np.ndarray, references: np.ndarray) -> dict[str, float]:
        return metrics(predict(logits, threshold), references)

    return compute


def report(predictions: np.ndarray, references: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Per-label precision/recall/F1/support (no confusion matrix: a row may have any number of labels)."""
    from sklearn.metrics import precision_recall_fscore_support

    from roberta_ft.evaluate import per_class_table

    scores = precision_recall_fscore_support(
        references.astype(np.int64), predictions, average=None, labels=list(range(len(names))), zero_division=0
    )
    return {"per_class": per_class_table(scores, names), "labels": list(names)}


def label_map_for_training(
    train_set, validation_set, separator: str, task: Task, source: str, validation_source: str
) -> MultiLabelMap:
    """The label set of the training rows; every validation label must be among them."""
    import logging

    label_map = MultiLabelMap.infer(train_set["label"], separator, task)
    counts = label_map.encode(train_set["label"], source=source).sum(axis=0)
    logging.getLogger(__name__).info(
        "Labels (%d, multi-label): %s",
        len(label_map),
        ", ".join(f"{n} ({int(c)})" for n, c in zip(label_map.names, counts, strict=True)),
    )
    lines = validation_set["line"] if "line" in validation_set.column_names else None
    label_map.encode(validation_set["label"], source=validation_source, lines=lines)
    return label_map
