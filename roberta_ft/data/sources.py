"""Where rows come from: a data file with any columns, or a task's own dataset; as the standard columns.

The standard columns every later stage sees: ``text``, optionally ``text_pair``, ``label`` (a label
name as a string, or a float for regression; absent for unlabelled data) and ``line`` (the file line
of each row, for messages).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roberta_ft.data.columns import Columns, resolve_columns
from roberta_ft.data.files import Table, is_file_source, read_table
from roberta_ft.data.labels import normalize_label
from roberta_ft.errors import DataError

if TYPE_CHECKING:
    import datasets

    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)


def _format_lines(lines: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def standardize(
    table: Table,
    columns: Columns,
    *,
    regression: bool = False,
    drop_invalid: bool = False,
) -> datasets.Dataset:
    """Turn a raw table into the standard columns, refusing (or with drop_invalid, dropping) bad rows."""
    import datasets

    texts, pairs, labels, bad_text, bad_label, bad_value = [], [], [], [], [], []
    keep: list[int] = []
    for i, (row, line) in enumerate(zip(table.rows, table.line_numbers, strict=True)):
        text = row.get(columns.text)
        pair = row.get(columns.text_pair) if columns.text_pair else None
        ok = True
        if text is None or not str(text).strip() or (columns.text_pair and (pair is None or not str(pair).strip())):
            bad_text.append(line)
            ok = False
        label_value = None
        if columns.label is not None:
            label_value = normalize_label(row.get(columns.label))
            if label_value is None:
                bad_label.append(line)
                ok = False
            elif regression:
                try:
                    label_value = float(label_value)
                    if not math.isfinite(label_value):
                        raise ValueError
                except ValueError:
                    bad_value.append(line)
                    ok = False
        if ok:
            keep.append(i)
            texts.append(str(text))
            if columns.text_pair:
                pairs.append(str(pair))
            if columns.label is not None:
                labels.append(label_value)
    problems = []
    if bad_text:
        problems.append(f"{len(bad_text)} row(s) with an empty text (lines {_format_lines(bad_text)})")
    if bad_label:
        problems.append(f"{len(bad_label)} row(s) with no label (lines {_format_lines(bad_label)})")
    if bad_value:
        problems.append(f"{len(bad_value)} row(s) with a non-numeric score (lines {_format_lines(bad_value)})")
    if problems:
        if not drop_invalid:
            raise DataError(
                f"{table.path}: {'; '.join(problems)}", "fix those rows or pass --drop-invalid to skip them"
            )
        logger.warning("%s: skipped %s (--drop-invalid)", table.path, "; ".join(problems))
    if not keep:
        raise DataError(f"{table.path}: no usable rows left", "check the text and label columns")
    data: dict[str, list] = {"text": texts}
    if columns.text_pair:
        data["text_pair"] = pairs
    if columns.label is not None:
        data["label"] = labels
    data["line"] = [table.line_numbers[i] for i in keep]
    return datasets.Dataset.from_dict(data)


def load_file(
    path: str | Path,
    *,
    task: Task | None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    encoding: str = "utf-8",
    need_label: bool = True,
    drop_invalid: bool = False,
) -> tuple[datasets.Dataset, Columns]:
    table = read_table(path, format=format, encoding=encoding)
    columns = resolve_columns(
        table.columns,
        text=text_column,
        text_pair=text_pair_column,
        label=label_column,
        task=task,
        need_label=need_label,
        source=str(path),
    )
    if need_label and columns.label is None:
        raise DataError(f"{path} has no label column", "pass --label-column naming the column with the labels")
    regression = task is not None and task.is_regression
    return standardize(table, columns, regression=regression, drop_invalid=drop_invalid), columns


# The options of `load_file` that come from the user's settings (TrainConfig / EvalConfig fields).
FILE_OPTIONS = ("text_column", "text_pair_column", "label_column", "format", "encoding", "drop_invalid")


def load_source(
    source: str | None,
    role: str,
    task: Task,
    *,
    data_dir: str | None = None,
    need_label: bool = True,
    **file_options,
) -> datasets.Dataset:
    """A file (any columns, picked by the rules above) or the task's own dataset, as standard columns.

    `role` is "train", "validation" or "test" (or a split name the task's loader knows). A file is
    read by `load_file` with `file_options` (FILE_OPTIONS); a task's dataset comes from `data_dir` or the task's default source.
    """
    if source is not None and is_file_source(source):
        dataset, _ = load_file(Path(source).expanduser(), task=task, need_label=need_label, **file_options)
        return dataset
    if task.load is None:
        raise DataError(
            f"file not found: {source}",
            f"check the path; task {task.name!r} has no built-in datasets to load by name",
        )
    split = task.splits.get(role, role)
    dataset = task.load(data_dir if source in (None, task.name) else source, split)
    if need_label and "label" not in dataset.column_names:
        raise DataError(f"the {split} split of {task.name} has no labels", "evaluate on a labelled split")
    if "line" not in dataset.column_names:
        dataset = dataset.add_column("line", list(range(1, len(dataset) + 1)))
    return dataset


def stratified_split(
    dataset: datasets.Dataset, fraction: float, seed: int, *, stratify: bool = True
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out `fraction` of the rows, stratified by label, reproducibly for a given seed."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(dataset))
    labels = np.asarray(dataset["label"]) if stratify and "label" in dataset.column_names else None
    if labels is not None and min(Counter(labels.tolist()).values()) < 2:
        logger.warning("Some label has fewer than 2 rows: the validation split is not stratified")
        labels = None
    n_valid = max(1, round(len(indices) * fraction))
    if labels is not None:
        n_valid = max(n_valid, len(set(labels.tolist())))
    if n_valid >= len(indices):
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(indices)} rows for validation",
            "add rows or pass --validation FILE",
        )
    train_idx, valid_idx = train_test_split(indices, test_size=n_valid, random_state=seed, stratify=labels)
    return dataset.select(np.sort(train_idx)), dataset.select(np.sort(valid_idx))
