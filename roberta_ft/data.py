"""Read labelled files into a standard table, check them, map labels, tokenize and batch.

The standard columns every later stage sees: ``text``, optionally ``text_pair``, and ``label``
(a label name as a string, or a float for regression; absent for unlabelled data).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft.errors import DataError

if TYPE_CHECKING:
    import datasets

    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

TEXT_CANDIDATES = (
    "text", "sentence", "review", "content", "document", "body", "comment", "tweet", "utterance",
    "message", "input", "abstract", "description", "question",
)  # fmt: skip
PAIR_CANDIDATES = (
    ("text", "text_pair"), ("text_a", "text_b"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
    ("question1", "question2"), ("question", "sentence"), ("query", "passage"),
)  # fmt: skip
LABEL_CANDIDATES = ("label", "labels", "class", "category", "target", "gold_label", "sentiment", "y", "score")


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise DataError(f"unknown format {explicit!r}", f"use one of {', '.join(FORMATS)}")
        return explicit
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path.name!r} from its extension",
            f"rename it to .csv/.tsv/.jsonl or pass --format {'|'.join(FORMATS)}",
        )
    return found


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not valid {encoding} (byte {raw[exc.start]:#04x})",
            "re-save the file as UTF-8 or pass --encoding (e.g. --encoding latin-1)",
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}", "pass a Python codec name, e.g. utf-8 or latin-1") from None


@dataclass
class Table:
    """A file read into columns of raw values, with the file line number of each row."""

    path: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    line_numbers: list[int]


def read_table(path: str | Path, format: str | None = None, encoding: str = "utf-8") -> Table:
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file", "pass a .csv, .tsv or .jsonl file")
    fmt = detect_format(path, format)
    raw = path.read_bytes()
    text = _decode(raw, path, encoding)
    if not text.strip():
        raise DataError(f"{path} is empty", "add a header line and at least one row")
    table = _read_jsonl(path, text) if fmt == "jsonl" else _read_delimited(path, text, fmt)
    if not table.rows:
        raise DataError(f"{path} has a header but no rows", "add data rows below the header")
    return table


def _read_delimited(path: Path, text: str, fmt: str) -> Table:
    delimiter = "," if fmt == "csv" else "\t"
    # The csv module refuses fields over 128 KiB; a long text is truncated at tokenization instead.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: line 1 cannot be parsed: {exc}", "check the file's quoting") from None
    header = [name.strip() for name in header]
    if len(header) == 1:
        other = "\t" if delimiter == "," else ","
        guess = " (it looks " + ("tab" if other == "\t" else "comma") + "-separated)" if other in header[0] else ""
        raise DataError(
            f"{path}: found only one column {header[0][:60]!r}{guess}",
            f"a {fmt.upper()} file needs a header with a text and a label column; "
            f"pass --format {'tsv' if other == chr(9) else 'csv'} if the delimiter is wrong",
        )
    duplicates = [name for name, count in Counter(header).items() if count > 1]
    if duplicates:
        raise DataError(f"{path}: duplicate column name {duplicates[0]!r} in the header", "rename one of them")
    if any(not name for name in header):
        raise DataError(f"{path}: the header has an empty column name", "name every column in the first line")
    rows, lines = [], []
    line_number = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num} cannot be parsed: {exc}", "check its quoting") from None
        start, line_number = line_number + 1, reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        if len(record) > len(header):
            raise DataError(
                f"{path}: line {start} has {len(record)} fields but the header has {len(header)}",
                f"quote fields that contain the delimiter {delimiter!r}",
            )
        record = record + [None] * (len(header) - len(record))
        rows.append(dict(zip(header, record, strict=True)))
        lines.append(start)
    return Table(path, header, rows, lines)


def _read_jsonl(path: Path, text: str) -> Table:
    columns: dict[str, None] = {}
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {number} is not valid JSON ({exc.msg})", "write one JSON object per line"
            ) from None
        except RecursionError:
            raise DataError(
                f"{path}: line {number} is nested too deeply", "write one flat JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path}: line {number} is not a JSON object", 'write one {"text": ..., "label": ...} per line'
            )
        columns.update(dict.fromkeys(record))
        rows.append(record)
        lines.append(number)
    return Table(path, list(columns), rows, lines)


@dataclass(frozen=True)
class Columns:
    text: str
    label: str | None
    text_pair: str | None = None


def _closest(name: str, columns: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), [c.lower() for c in columns], n=1, cutoff=0.5
    )
    return f"did you mean {close[0]!r}? " if close else ""


def resolve_columns(
    columns: Sequence[str],
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    task: Task | None = None,
    need_label: bool = True,
    source: str = "the file",
) -> Columns:
    """Pick the text, pair and label columns: the user's names first, then clear naming rules."""
    by_lower = {c.lower(): c for c in columns}
    listing = ", ".join(repr(c) for c in columns)

    def check(name: str, option: str) -> str:
        if name in columns:
            return name
        if name.lower() in by_lower:
            return by_lower[name.lower()]
        raise DataError(
            f"column {name!r} (from {option}) is not in {source}",
            f"{_closest(name, columns)}columns are: {listing}",
        )

    picked: list[str] = []
    if label is None and need_label:
        label = next((by_lower[c] for c in LABEL_CANDIDATES if c in by_lower), None)
        if label is None:
            raise DataError(
                f"cannot tell which column of {source} holds the labels",
                f"pass --label-column; columns are: {listing}",
            )
        picked.append(f"label column {label!r}")
    elif label is not None:
        label = check(label, "--label-column")

    if text is None:
        text, auto_pair = _auto_text_columns(by_lower, columns, label, task, single=text_pair is None)
        if text_pair is None and auto_pair is not None:
            text_pair = auto_pair
            picked.append(f"text pair columns {text!r} + {text_pair!r}")
        else:
            picked.append(f"text column {text!r}")
    else:
        text = check(text, "--text-column")
    if text_pair is not None:
        text_pair = check(text_pair, "--text-pair-column")
    elif task is not None and task.is_pair:
        raise DataError(
            f"task {task.name!r} takes text pairs but {source} has no second text column",
            f"pass --text-pair-column; columns are: {listing}",
        )
    if label is not None and label in (text, text_pair):
        raise DataError(f"column {label!r} is used as both text and label", "pass --text-column and --label-column")
    if picked:
        logger.info("Columns of %s: picked %s (override with --text-column/--label-column)", source, ", ".join(picked))
    return Columns(text=text, label=label, text_pair=text_pair)


def _auto_text_columns(
    by_lower: dict[str, str], columns: Sequence[str], label: str | None, task: Task | None, *, single: bool
) -> tuple[str, str | None]:
    """The naming rules: the task's own field names, then well-known pair names, then one text-like column."""
    listing = ", ".join(repr(c) for c in columns)
    own = [tuple(task.text_fields)] if task is not None else []
    # Pairs first, so a pair file is never read as single texts; then the task's own single field.
    candidates = [f for f in own if len(f) == 2] + list(PAIR_CANDIDATES) + [f for f in own if len(f) == 1]
    for fields in candidates:
        if all(f.lower() in by_lower for f in fields):
            names = [by_lower[f.lower()] for f in fields]
            return names[0], (names[1] if len(names) == 2 and single else None)
    if task is not None and task.is_pair and single:
        raise DataError(
            f"task {task.name!r} takes text pairs but no pair of text columns was recognised",
            f"pass --text-column and --text-pair-column; columns are: {listing}",
        )
    found = [by_lower[c] for c in TEXT_CANDIDATES if c in by_lower and by_lower[c] != label]
    others = [c for c in columns if c != label]
    if len(found) == 1:
        return found[0], None
    if not found and len(others) == 1:
        return others[0], None
    clash = f" ({', '.join(repr(f) for f in found)} all could)" if found else ""
    raise DataError(
        f"cannot tell which column holds the text{clash}",
        f"pass --text-column (and --text-pair-column for pairs); columns are: {listing}",
    )


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


# ---------------------------------------------------------------------------------------------- labels


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


# ---------------------------------------------------------------------------------------------- tokens


@dataclass
class Encoded:
    """Tokenized rows: variable-length id lists plus targets (label ids, floats, or None)."""

    input_ids: list[list[int]]
    targets: np.ndarray | None
    token_type_ids: list[list[int]] | None = None
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenize(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    *,
    chunk_size: int = 2048,
) -> tuple[list[list[int]], list[list[int]] | None, int]:
    """Tokenize with truncation; returns ids, token type ids (if the model uses them) and the truncated count."""
    keep_types = "token_type_ids" in tokenizer.model_input_names
    ids: list[list[int]] = []
    types: list[list[int]] | None = [] if keep_types else None
    truncated = 0
    for start in range(0, len(texts), chunk_size):
        batch_texts = list(texts[start : start + chunk_size])
        batch_pairs = list(pairs[start : start + chunk_size]) if pairs is not None else None
        encoded = tokenizer(
            batch_texts,
            batch_pairs,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=False,
            return_length=False,
            return_attention_mask=False,
            return_token_type_ids=keep_types,
        )
        ids.extend(encoded["input_ids"])
        if types is not None:
            types.extend(encoded["token_type_ids"])
        # A row that fills max_length exactly was very likely cut; counting is cheap and honest enough.
        truncated += sum(1 for row in encoded["input_ids"] if len(row) >= max_length)
    return ids, types, truncated


def encode_targets(dataset: datasets.Dataset, label_map: LabelMap | None, *, source: str) -> np.ndarray | None:
    """Label ids (or float scores when there is no label map); None for unlabelled data."""
    if "label" not in dataset.column_names:
        return None
    labels = dataset["label"]
    if label_map is None:
        return np.asarray(labels, dtype=np.float32)
    lines = dataset["line"] if "line" in dataset.column_names else None
    return label_map.encode(labels, source=source, lines=lines)


def encode_dataset(
    dataset: datasets.Dataset, tokenizer, max_length: int, label_map: LabelMap | None, *, source: str
) -> Encoded:
    texts = dataset["text"]
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    from roberta_ft.token_cache import cached_tokenize  # tokenized once, then read back on later runs

    ids, types, truncated = cached_tokenize(tokenizer, texts, pairs, max_length)
    targets = encode_targets(dataset, label_map, source=source)
    if truncated:
        logger.warning(
            "%s: %d of %d rows reach --max-length %d and are truncated", source, truncated, len(ids), max_length
        )
    return Encoded(ids, targets, types, truncated)


# ---------------------------------------------------------------------------------------------- batches


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, bucket_batches: int = 64
) -> list[np.ndarray]:
    """Shuffled batches of similar-length rows: every row exactly once, `batch_size` rows per batch.

    Rows are shuffled, cut into pools of `bucket_batches` batches, sorted by length inside each pool
    and chunked; the batch order is then shuffled. Padding drops to a few tokens per row while the
    data order stays random from epoch to epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    pool = batch_size * bucket_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    full = [b for b in batches if len(b) == batch_size]
    partial = [b for b in batches if len(b) != batch_size]
    # Merge the short tail batches of each pool so that at most one batch is smaller than batch_size.
    if len(partial) > 1:
        rest = np.concatenate(partial)
        rest = rest[np.argsort(lengths[rest], kind="stable")]
        partial = [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
    batches = full + partial
    permutation = rng.permutation(len(batches))
    return [batches[i] for i in permutation]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches for inference: longest first (a memory problem shows up at once), minimal padding."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padding_multiple(device_type: str) -> int:
    """What to round batch widths up to: 8 on CUDA (tensor-core tiles); 1 elsewhere.

    On the CPU the extra tokens are pure cost: padding SST-2-length batches to multiples of 8 made
    MiniLM training ~25% slower here (docs/performance.md).
    """
    return 8 if device_type == "cuda" else 1


def collate(
    input_ids: Sequence[Sequence[int]],
    indices: Sequence[int],
    pad_id: int,
    *,
    token_type_ids: Sequence[Sequence[int]] | None = None,
    pad_to_multiple_of: int = 8,
) -> dict[str, np.ndarray]:
    """Pad one batch to its longest row, rounded up to a multiple of 8 (tensor-core and SIMD friendly)."""
    rows = [input_ids[i] for i in indices]
    longest = max(len(r) for r in rows)
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of if pad_to_multiple_of > 1 else longest
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = row
        mask[r, : len(row)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if token_type_ids is not None:
        types = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(indices):
            types[r, : len(token_type_ids[i])] = token_type_ids[i]
        batch["token_type_ids"] = types
    return batch


def iter_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Stream a text file's lines (1-based numbers), without the line ending; constant memory."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and codec == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8" if codec == "utf-8-sig" else codec)
            except UnicodeDecodeError:
                raise DataError(
                    f"{path}: line {number} is not valid {encoding}",
                    "re-save the file as UTF-8 or pass --encoding (e.g. --encoding latin-1)",
                ) from None
            yield number, line.rstrip("\r\n")


# ---------------------------------------------------------------------------------------------- sources


def is_file_source(source: str) -> bool:
    return Path(source).expanduser().exists() or Path(source).suffix.lower() in _EXTENSIONS


def load_source(
    source: str | None,
    role: str,
    task: Task,
    *,
    data_dir: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    format: str | None = None,
    encoding: str = "utf-8",
    need_label: bool = True,
    drop_invalid: bool = False,
) -> datasets.Dataset:
    """A file (any columns, picked by the rules above) or the task's own dataset, as standard columns.

    `role` is "train", "validation" or "test" (or a split name the task's loader knows).
    """
    if source is not None and is_file_source(source):
        dataset, _ = load_file(
            Path(source).expanduser(),
            task=task,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
            format=format,
            encoding=encoding,
            need_label=need_label,
            drop_invalid=drop_invalid,
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
