"""Labels are names: normalised from raw cells, kept in a fixed order, encoded as ids (or multi-hot rows).

A multi-label cell holds its labels joined by ``--label-separator`` (default ``|``), or a JSON list
(``["sports", "politics"]``, also the natural form in JSONL); ``[]`` is a row with no label at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft.errors import DataError

if TYPE_CHECKING:
    from roberta_ft.registry import Task


def normalize_label(value: Any) -> str | None:
    """Labels are names: ints and integral floats become their decimal string; blanks become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    text = str(value).strip()
    if not text or text.lower() in ("nan", "null", "none", "na", "n/a"):
        return None
    return text


def sort_label_names(names: set[str] | Sequence[str]) -> list[str]:
    """Deterministic order: numerically when every label is an integer, else alphabetically."""
    names = set(names)
    try:
        return sorted(names, key=lambda n: (int(n), n))
    except ValueError:
        return sorted(names)


def _label_index(label: str, count: int) -> int | None:
    """The index an integer-coded label stands for ("2" -> 2), or None (ASCII digits only: int("²") fails)."""
    if label.isascii() and label.isdigit() and len(label) <= len(str(count)):
        return int(label) if int(label) < count else None
    return None


@dataclass(frozen=True)
class LabelMap:
    names: tuple[str, ...]

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def infer(cls, labels: Sequence[str], task: Task | None = None) -> LabelMap:
        seen = set(labels)
        if task is not None and task.label_names:
            known = {n.lower(): n for n in task.label_names}
            unknown = sorted(n for n in seen if n.lower() not in known)
            if not unknown:
                return cls(tuple(task.label_names))
            if all(_label_index(n, len(task.label_names)) is not None for n in seen):
                return cls(tuple(task.label_names))  # integer-coded labels in the task's order
            raise DataError(
                f"labels {', '.join(map(repr, unknown[:5]))} are not labels of task {task.name!r}",
                f"the task's labels are {', '.join(task.label_names)}; pick another --task or fix the data",
            )
        return cls(tuple(sort_label_names(seen)))

    def encode(self, labels: Sequence[str], *, source: str, lines: Sequence[int] | None = None) -> np.ndarray:
        lookup = self.label2id
        lower = {name.lower(): i for name, i in lookup.items()}
        ids = np.empty(len(labels), dtype=np.int64)
        unknown: dict[str, int] = {}
        for i, label in enumerate(labels):
            found = lookup.get(label)
            if found is None:
                found = lower.get(label.lower())
            if found is None and not any(n.isdigit() for n in self.names):
                found = _label_index(label, len(self.names))  # integer-coded task labels
            if found is None:
                unknown.setdefault(label, lines[i] if lines is not None else i + 1)
                found = -1
            ids[i] = found
        if unknown:
            first = ", ".join(f"{name!r} (line {line})" for name, line in list(unknown.items())[:3])
            raise DataError(
                f"{source}: label {first} not among the model's labels",
                f"the model knows {', '.join(map(repr, self.names))}; fix the data or retrain with those labels",
            )
        return ids


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


def label_codes(dataset) -> tuple[np.ndarray, list[Any]]:
    """The label column as (a code per row, the distinct values sorted), read from Arrow without a Python
    object per row; ``values[codes]`` is the column. Codes follow the sorted values, as `np.unique` numbers
    them, so a stratified split over codes is the split over the labels themselves."""
    import pyarrow as pa

    column = dataset.with_format("arrow")["label"]
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = column.dictionary_encode()
    found = encoded.dictionary.to_pylist()
    order = sorted(range(len(found)), key=lambda i: found[i])
    rank = np.empty(len(found), dtype=np.int64)
    rank[order] = np.arange(len(found))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)] if len(found) else np.zeros(0, dtype=np.int64)
    return codes, [found[i] for i in order]


def encode_column(label_map: LabelMap, dataset, *, source: str) -> np.ndarray:
    """`label_map.encode` of a table's whole label column, each distinct value encoded once."""
    codes, values = label_codes(dataset)
    try:
        encoded = label_map.encode(values, source=source)
    except DataError:  # say which line: encode the rows themselves, which names the first bad one
        lines = dataset["line"] if "line" in dataset.column_names else None
        label_map.encode(list(dataset["label"]), source=source, lines=lines)
        raise
    return encoded[codes]
