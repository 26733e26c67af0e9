"""Where rows come from: a data file with any columns, or a task's own dataset; as the standard columns.

The standard columns every later stage sees: ``text``, optionally ``text_pair``, ``label`` (a label
name as a string, or a float for regression; absent for unlabelled data) and ``line`` (the file line
of each row, for messages).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft import registry
from roberta_ft.data.columns import Columns, resolve_columns
from roberta_ft.data.columns import logger as logger_for_columns
from roberta_ft.data.files import Table, detect_format, file_sha256, is_file_source, open_rows
from roberta_ft.data.labels import label_codes, normalize_label
from roberta_ft.data.progress import Rate
from roberta_ft.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)


def _format_lines(lines: Sequence[int], limit: int = 5, total: int | None = None) -> str:
    total = len(lines) if total is None else total
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {total - limit} more" if total > limit else "")


class _BadRows:
    """How many rows had one problem, and the first lines where it was seen (all a message shows)."""

    def __init__(self, what: str) -> None:
        self.what, self.count, self.lines = what, 0, []

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < 5:
            self.lines.append(line)

    def describe(self) -> str:
        return f"{self.count} row(s) {self.what} (lines {_format_lines(self.lines, total=self.count)})"


class _Standardizer:
    """Raw rows to the standard columns, a chunk at a time; bad rows are counted, and refused (or with
    drop_invalid, dropped and reported) once every row has been seen."""

    def __init__(self, path: Path, columns: Columns, *, regression: bool, drop_invalid: bool) -> None:
        self.path, self.columns, self.regression, self.drop_invalid = path, columns, regression, drop_invalid
        self.bad_text = _BadRows("with an empty text")
        self.bad_label = _BadRows("with no label")
        self.bad_value = _BadRows("with a non-numeric score")
        self.kept = 0
        self.numbers = 0  # kept texts that are a number and nothing else
        self.number_example: str | None = None

    def chunk(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, list]:
        columns = self.columns
        texts, pairs, labels, lines = [], [], [], []
        for line, row in rows:
            text = row.get(columns.text)
            pair = row.get(columns.text_pair) if columns.text_pair else None
            ok = True
            if text is None or not str(text).strip() or (columns.text_pair and (pair is None or not str(pair).strip())):
                self.bad_text.add(line)
                ok = False
            label_value = None
            if columns.label is not None:
                label_value = normalize_label(row.get(columns.label))
                if label_value is None:
                    self.bad_label.add(line)
                    ok = False
                elif self.regression:
                    try:
                        label_value = float(label_value)
                        if not math.isfinite(label_value):
                            raise ValueError
                    except ValueError:
                        self.bad_value.add(line)
                        ok = False
            if ok:
                if _is_number(text):
                    self.numbers += 1
                    self.number_example = self.number_example or str(text).strip()
                texts.append(str(text))
                if columns.text_pair:
                    pairs.append(str(pair))
                if columns.label is not None:
                    labels.append(label_value)
                lines.append(line)
        self.kept += len(texts)
        data: dict[str, list] = {"text": texts}
        if columns.text_pair:
            data["text_pair"] = pairs
        if columns.label is not None:
            data["label"] = labels
        data["line"] = lines
        return data

    def finish(self) -> str | None:
        """Raise for bad rows (unless drop_invalid) or no rows; returns the warnings (the --drop-invalid one, a
        text column of numbers), one a line, if any."""
        problems = [bad.describe() for bad in (self.bad_text, self.bad_label, self.bad_value) if bad.count]
        warnings = []
        if problems:
            if not self.drop_invalid:
                raise DataError(
                    f"{self.path}: {'; '.join(problems)}", "fix those rows or pass --drop-invalid to skip them"
                )
            warnings.append(f"{self.path}: skipped {'; '.join(problems)} (--drop-invalid)")
        if not self.kept:
            raise DataError(f"{self.path}: no usable rows left", "check the text and label columns")
        if self.numbers == self.kept:
            warnings.append(
                f"{self.path}: every text in column {self.columns.text!r} is a number (e.g. {self.number_example!r}), "
                "which has no words to learn from (pass --text-column naming the column that holds the text)"
            )
        for warning in warnings:
            logger.warning("%s", warning)
        return "\n".join(warnings) or None

    def schema(self):
        import pyarrow as pa

        fields = [pa.field("text", pa.string())]
        if self.columns.text_pair:
            fields.append(pa.field("text_pair", pa.string()))
        if self.columns.label is not None:
            fields.append(pa.field("label", pa.float64() if self.regression else pa.string()))
        fields.append(pa.field("line", pa.int64()))
        return pa.schema(fields)


def _is_number(value: Any) -> bool:
    """Whether a text cell is a number and nothing else ("42", "-3.5", "1e3"; not "nan" or "inf")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    try:
        return math.isfinite(float(str(value).strip().replace(",", "")))
    except ValueError:
        return False


def standardize(
    table: Table,
    columns: Columns,
    *,
    regression: bool = False,
    drop_invalid: bool = False,
) -> datasets.Dataset:
    """Turn a raw table into the standard columns, refusing (or with drop_invalid, dropping) bad rows."""
    import datasets

    standardizer = _Standardizer(table.path, columns, regression=regression, drop_invalid=drop_invalid)
    data = standardizer.chunk(list(zip(table.line_numbers, table.rows, strict=True)))
    standardizer.finish()
    return datasets.Dataset.from_dict(data)


CHUNK_ROWS = 50_000  # rows standardized and written to the data cache at a time


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
    scores: bool = False,
) -> tuple[datasets.Dataset, Columns]:
    """A data file as the standard columns, memory-mapped from the data cache (row_cache.py).

    The file is streamed once: its rows are checked, standardized and written to the cache a chunk at a
    time, so memory stays flat in the file's size; a second run with the same file and options reads
    the cached rows and nothing else.
    """
    import datasets

    from roberta_ft.data import row_cache

    path = Path(path)
    regression = scores  # the labels are numbers (a regression task), else label names
    picked = {"text": text_column, "text_pair": text_pair_column, "label": label_column}
    column_rules = {
        "task_fields": list(task.text_fields) if task is not None else None,
        "pair": bool(task and task.is_pair),
    }
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file", "pass a .csv, .tsv or .jsonl file")
    fmt = detect_format(path, format)
    options = {"format": fmt, "encoding": encoding, "columns": picked, "rules": column_rules, "need_label": need_label}
    options |= {"drop_invalid": drop_invalid, "regression": regression}
    entry = row_cache.key(file_sha256(path), options)
    found = row_cache.find(entry)
    if found is not None:
        columns = _resolve(found["header"], picked, task, need_label, path)
        for warning in (found.get("warning") or "").splitlines():
            logger.warning("%s", warning)
        logger.info("Read %s: %d rows from the data cache", path, found["rows"])
        return datasets.Dataset.from_file(found["arrow"]), columns

    reading = Rate(f"Reading {path.name}", total_bytes=path.stat().st_size)
    stream = open_rows(path, format=fmt, encoding=encoding, progress=reading.bytes_done)
    rows = iter(stream.rows)
    first = list(itertools.islice(rows, CHUNK_ROWS))
    if not first:
        raise DataError(f"{path} has a header but no rows", "add data rows below the header")
    columns = _resolve(stream.columns, picked, task, need_label, path)
    header = list(stream.columns)
    standardizer = _Standardizer(path, columns, regression=regression, drop_invalid=drop_invalid)
    writer = row_cache.Writer(entry, standardizer.schema())
    try:
        chunk = first
        while chunk:
            writer.write(standardizer.chunk(chunk))
            reading.rows_done(len(chunk))
            chunk = list(itertools.islice(rows, CHUNK_ROWS))
        if stream.columns != header:  # JSONL: later rows brought new keys; the columns picked must not change
            header = list(stream.columns)
            if _resolve(header, picked, task, need_label, path, quiet=True) != columns:
                raise DataError(
                    f"{path}: rows after line {first[-1][0]} have other keys, which changes the columns picked",
                    "pass --text-column and --label-column",
                )
        warning = standardizer.finish()
    except BaseException:
        writer.abort()
        raise
    arrow = writer.commit({"header": header, "warning": warning, "source": str(path)})
    reading.finish()
    return datasets.Dataset.from_file(str(arrow)), columns


def _resolve(header, picked, task, need_label: bool, path: Path, *, quiet: bool = False) -> Columns:
    resolve = resolve_columns
    if quiet:
        previous = logger_for_columns.level
        logger_for_columns.setLevel(logging.WARNING)
    try:
        columns = resolve(
            header,
            text=picked["text"],
            text_pair=picked["text_pair"],
            label=picked["label"],
            task=task,
            need_label=need_label,
            source=str(path),
        )
    finally:
        if quiet:
            logger_for_columns.setLevel(previous)
    if need_label and columns.label is None:
        raise DataError(f"{path} has no label column", "pass --label-column naming the column with the labels")
    return columns


# The options of `load_file` that come from the user's settings (TrainConfig / EvalConfig fields).
FILE_OPTIONS = ("text_column", "text_pair_column", "label_column", "format", "encoding", "drop_invalid")


def load_source(
    source: str | None,
    role: str,
    task: Task,
    *,
    data_dir: str | None = None,
    need_label: bool = True,
    scores: bool = False,
    **file_options,
) -> datasets.Dataset:
    """A file (any columns, picked by the rules above) or the task's own dataset, as standard columns.

    `role` is "train", "validation" or "test" (or a split name the task's loader knows). A file is
    read by `load_file` with `file_options` (FILE_OPTIONS); a task's dataset comes from `data_dir` or the
    task's default source. `scores`: the labels are numbers (the problem kind predicts scores).
    """
    if source is not None and is_file_source(source):
        dataset, _ = load_file(
            Path(source).expanduser(), task=task, need_label=need_label, scores=scores, **file_options
        )
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


# ---------------------------------------------------------------------------- what DATA names: a file or a task


def resolve_task(task_name: str | None, data: str | None) -> Task:
    """The task named by --task, or by DATA itself when DATA is a task name such as glue/rte."""
    if data is not None and not is_file_source(data) and data in registry.available_tasks():
        if task_name not in (None, "classification", data):
            raise ConfigError(f"DATA names task {data!r} but --task is {task_name!r}", "drop --task")
        return registry.get_task(data)
    return registry.get_task(task_name or "classification")


def dataset_task(source: str) -> Task | None:
    """The task whose own dataset `source` names (``glue/sst2``), or None for a file."""
    if is_file_source(source):
        return None
    task = registry.available_tasks().get(source)
    return task if task is not None and task.load is not None else None


def stratified_split(
    dataset: datasets.Dataset, fraction: float, seed: int, *, stratify: bool = True
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out `fraction` of the rows, stratified by label, reproducibly for a given seed."""
    labels = label_codes(dataset)[0] if stratify and "label" in dataset.column_names else None
    if labels is not None and _smallest_class(labels) < 2:
        logger.warning("Some label has fewer than 2 rows: the validation split is not stratified")
        labels = None
    n_valid = max(1, round(len(dataset) * fraction))
    if labels is not None:
        n_valid = max(n_valid, int(labels.max(initial=-1)) + 1)
    if n_valid >= len(dataset):
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(dataset)} rows for validation",
            "add rows or pass --validation FILE",
        )
    train_idx, valid_idx = split_indices(len(dataset), len(dataset) - n_valid, n_valid, seed, labels)
    return _select(dataset, train_idx), _select(dataset, valid_idx)


def subsample(dataset: datasets.Dataset, size: int, seed: int, *, stratify: bool = True) -> datasets.Dataset:
    """`size` rows of `dataset` (stratified by label when it can be), reproducibly for a given seed."""
    if size >= len(dataset):
        return dataset
    labels = label_codes(dataset)[0] if stratify and "label" in dataset.column_names else None
    if labels is not None and (_smallest_class(labels) < 2 or size < int(labels.max(initial=-1)) + 1):
        labels = None
    kept, _ = split_indices(len(dataset), size, len(dataset) - size, seed, labels)
    return _select(dataset, kept)


def split_indices(
    rows: int, n_train: int, n_test: int, seed: int, codes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The row indices (sorted) of scikit-learn's ``train_test_split(range(rows), train_size=n_train,
    test_size=n_test, random_state=seed, stratify=codes)``: the same rows for the same seed, drawn as
    its (Stratified)ShuffleSplit draws them, with numpy arrays where it builds Python lists (a few
    bytes a row instead of some 160, which for millions of rows is most of a run's peak memory).

    `codes`: a label code per row, 0..k-1 (every code present), or None for a plain random split.
    """
    rng = np.random.RandomState(seed)
    if codes is None:
        permutation = rng.permutation(rows)
        return np.sort(permutation[n_test : n_test + n_train]), np.sort(permutation[:n_test])
    counts = np.bincount(codes)
    by_class = np.argsort(codes, kind="stable")  # each class's rows, in row order, one class after the other
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train, test = [], []
    for label, count in enumerate(counts):
        rows_of_class = by_class[starts[label] : starts[label] + count]
        drawn = rows_of_class[rng.permutation(count)]
        train.append(drawn[: n_i[label]])
        test.append(drawn[n_i[label] : n_i[label] + t_i[label]])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many rows of each class `n_draws` draws take: scikit-learn's approximate mode of the
    multivariate hypergeometric, ties broken by `rng` exactly as it breaks them."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def _smallest_class(codes: np.ndarray) -> int:
    return int(np.bincount(codes).min()) if len(codes) else 0


def take_rows(dataset: datasets.Dataset, indices: np.ndarray) -> datasets.Dataset:
    """The rows at `indices` (in file order) as a table of their own: an audit's fold, its held-out rows."""
    return _select(dataset, np.asarray(indices))


SELECT_IN_MEMORY_ROWS = 100_000  # a selection up to this size is gathered into memory, a larger one onto disk


def _select(dataset: datasets.Dataset, indices: np.ndarray) -> datasets.Dataset:
    """The rows at `indices`, in file order, as a table of their own (never an indices mapping).

    A `datasets` indices mapping would make every later read of a column (the label codes, the tiny
    tokenizer's training texts, the cache keys, the tokenizer's chunks) go through a Python object per
    row: seconds and hundreds of MB for a million rows. A small selection is gathered into memory; a
    large one from a memory-mapped file is streamed, a record batch at a time, into an Arrow file in the
    data cache (keyed by the source file and the indices), so it costs disk, not RAM, and a second run
    maps it again.
    """
    import datasets
    from datasets.table import InMemoryTable

    indices = np.sort(np.asarray(indices, dtype=np.int64))
    if dataset._indices is not None:  # already a selection (a task's own dataset): its rows as a table
        dataset = dataset.flatten_indices(keep_in_memory=True)
    files = [entry["filename"] for entry in dataset.cache_files]
    if len(indices) > SELECT_IN_MEMORY_ROWS and len(files) == 1:
        selected = _select_to_file(Path(files[0]), indices, len(dataset))
        if selected is not None:
            return datasets.Dataset.from_file(str(selected), info=dataset.info.copy(), split=dataset.split)
    table = _take(dataset.data.table, indices)
    return datasets.Dataset(InMemoryTable(table), info=dataset.info.copy(), split=dataset.split)


def _take(table, indices: np.ndarray):
    """``table.take(indices)`` (sorted indices) a record batch at a time: Arrow's take on a chunked table
    first joins its chunks, a copy of every column, which for a memory-mapped file is all of it."""
    import pyarrow as pa

    pieces, offset = [], 0
    for batch in table.to_batches():
        low, high = np.searchsorted(indices, [offset, offset + batch.num_rows])
        if high > low:
            pieces.append(batch.take(pa.array(indices[low:high] - offset)))
        offset += batch.num_rows
    return pa.Table.from_batches(pieces, schema=table.schema)


def _select_to_file(source: Path, indices: np.ndarray, rows: int) -> Path | None:
    """Rows `indices` (sorted) of the Arrow stream file `source` written to a data-cache entry; None if the
    file cannot be streamed (another Arrow layout), when the caller gathers the rows in memory instead."""
    import hashlib

    import pyarrow as pa

    from roberta_ft.data import row_cache

    digest = hashlib.sha256(indices.astype("<i8").tobytes()).hexdigest()
    stat = source.stat()
    entry = row_cache.key(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", {"select": digest})
    found = row_cache.find(entry)
    if found is not None and found["rows"] == len(indices):
        return Path(found["arrow"])
    keep = np.zeros(rows, dtype=bool)
    keep[indices] = True
    try:
        # A plain file, not a memory map: this pass leaves no mapped pages behind in this process.
        with pa.OSFile(str(source), "rb") as handle:
            reader = pa.ipc.open_stream(handle)
            writer = row_cache.Writer(entry, reader.schema)
            try:
                offset = 0
                for batch in reader:
                    writer.write_batch(batch.filter(pa.array(keep[offset : offset + batch.num_rows])))
                    offset += batch.num_rows
                if offset != rows:
                    raise ValueError(f"{source} has {offset} rows, the table {rows}")
            except BaseException:
                writer.abort()
                raise
    except (pa.ArrowInvalid, ValueError) as error:
        logger.debug("Selecting rows in memory: %s", error)
        return None
    return writer.commit({"source": str(source), "selected": len(indices)})
