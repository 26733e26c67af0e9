"""Reading data files: the format from the extension, the encoding, CSV/TSV/JSONL into a table of raw rows.

Every problem is one `DataError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft.errors import DataError

FORMATS = ("csv", "tsv", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise DataError(f"unknown format {explicit!r}", f"use one of {', '.join(FORMATS)}")
        return explicit
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"cannot tell the format of {path.name!r} from its extension",
            f"rename it to .csv/.tsv/.jsonl or pass --format {'|'.join(FORMATS)}",
        )
    return found


def is_file_source(source: str) -> bool:
    """Whether a DATA argument names a file (it exists, or has a data file's extension) rather than a task."""
    return Path(source).expanduser().exists() or Path(source).suffix.lower() in EXTENSIONS


def _codec(encoding: str) -> str:
    """UTF-8 is read as utf-8-sig, so a byte-order mark is dropped rather than glued to the first column name."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _not_encoded_as(path: Path, line: int, encoding: str, detail: str = "") -> DataError:
    return DataError(
        f"{path}: line {line} is not valid {encoding}{detail}",
        "re-save the file as UTF-8 or pass --encoding (e.g. --encoding latin-1)",
    )


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    try:
        return raw.decode(_codec(encoding))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _not_encoded_as(path, line, encoding, f" (byte {raw[exc.start]:#04x})") from None
    except LookupError:
        raise _unknown_encoding(encoding) from None


def _unknown_encoding(encoding: str) -> DataError:
    return DataError(f"unknown encoding {encoding!r}", "pass a Python codec name, e.g. utf-8 or latin-1")


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


def iter_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Stream a text file's lines (1-based numbers), without the line ending; constant memory."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    codec = _codec(encoding)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and codec == "utf-8-sig" and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8" if codec == "utf-8-sig" else codec)
            except UnicodeDecodeError:
                raise _not_encoded_as(path, number, encoding) from None
            except LookupError:
                raise _unknown_encoding(encoding) from None
            yield number, line.rstrip("\r\n")
