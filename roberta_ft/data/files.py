"""Reading data files: the format from the extension, the encoding, CSV/TSV/JSONL into a table of raw rows.

Every problem is one `DataError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
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


_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, computed once per process for a file that has not changed since."""
    import hashlib

    path = Path(path)
    info = path.stat()
    known = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if known not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hashes[known] = digest.hexdigest()
    return _hashes[known]


def _codec(encoding: str) -> str:
    """UTF-8 is read as utf-8-sig, so a byte-order mark is dropped rather than glued to the first column name."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _not_encoded_as(path: Path, line: int, encoding: str, detail: str = "") -> DataError:
    return DataError(
        f"{path}: line {line} is not valid {encoding}{detail}",
        "re-save the file as UTF-8 or pass --encoding (e.g. --encoding latin-1)",
    )


def _decode(raw: bytes, path: Path, encoding: str, *, lines_before: int = 0, codec: str | None = None) -> str:
    try:
        return raw.decode(codec or _codec(encoding))
    except UnicodeDecodeError as exc:
        line = lines_before + raw[: exc.start].count(b"\n") + 1
        raise _not_encoded_as(path, line, encoding, f" (byte {raw[exc.start]:#04x})") from None
    except LookupError:
        raise _unknown_encoding(encoding) from None


def _unknown_encoding(encoding: str) -> DataError:
    return DataError(f"unknown encoding {encoding!r}", "pass a Python codec name, e.g. utf-8 or latin-1")


BLOCK_BYTES = 1 << 20  # bytes decoded at a time when a file is streamed


def _text_lines(path: Path, encoding: str, progress: Callable[[int], None] | None = None) -> Iterator[str]:
    """The file's lines with their endings, split as ``io.StringIO(text, newline="")`` splits them (at \\n,
    \\r\\n and \\r), decoded a block at a time: constant memory, and a decoding error names its line.

    `progress(bytes_read)` is called after each block.
    """
    codec = _codec(encoding)
    try:
        newline_is_one_byte = "\n".encode(codec if codec != "utf-8-sig" else "utf-8") == b"\n"
    except LookupError:
        raise _unknown_encoding(encoding) from None
    with open(path, "rb") as handle:
        if not newline_is_one_byte:  # UTF-16 and the like: a line is not split at byte 0x0A, so read it whole
            yield from io.StringIO(_decode(handle.read(), path, encoding), newline="")
            return
        lines_before, carry, first, done = 0, b"", True, 0
        while True:
            block = handle.read(BLOCK_BYTES)
            done += len(block)
            if block:
                block = carry + block
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # no line end yet: read on
                    carry = block
                    continue
                block, carry = block[:cut], block[cut:]
            else:
                block, carry = carry, b""
                if not block:
                    break
            # The BOM is dropped from the first block only; later blocks are plain UTF-8.
            text = _decode(block, path, encoding, lines_before=lines_before, codec=codec if first else None)
            first = False
            lines_before += block.count(b"\n")
            yield from io.StringIO(text, newline="")
            if progress is not None:
                progress(done)


@dataclass
class Table:
    """A file read into columns of raw values, with the file line number of each row."""

    path: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    line_numbers: list[int]


@dataclass
class RowStream:
    """A data file opened for reading row by row: its columns (for JSONL, those of the rows read so far) and
    an iterator of (line number, row) pairs. The checks of the file as a whole come first (``open_rows``);
    a row's own problem is raised when the row is reached."""

    path: Path
    format: str
    columns: list[str]
    rows: Iterator[tuple[int, dict[str, Any]]]
    size: int  # bytes, for progress


def open_rows(
    path: str | Path,
    format: str | None = None,
    encoding: str = "utf-8",
    progress: Callable[[int], None] | None = None,
) -> RowStream:
    """Open a CSV/TSV/JSONL file for streaming: every check `read_table` makes, in file order, in constant memory."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file", "pass a .csv, .tsv or .jsonl file")
    fmt = detect_format(path, format)
    lines = _text_lines(path, encoding, progress)
    # Lines before the first non-blank one: an all-blank file is empty.
    leading: list[str] = []
    for line in lines:
        leading.append(line)
        if line.strip():
            break
    else:
        raise DataError(f"{path} is empty", "add a header line and at least one row")
    lines = itertools.chain(leading, lines)
    if fmt == "jsonl":
        stream = RowStream(path, fmt, [], iter(()), path.stat().st_size)
        stream.rows = _jsonl_rows(path, lines, stream.columns)
        return stream
    header, rows = _delimited_rows(path, lines, fmt)
    return RowStream(path, fmt, header, rows, path.stat().st_size)


def read_table(path: str | Path, format: str | None = None, encoding: str = "utf-8") -> Table:
    """A whole file in memory (small files, tests); large files go through `open_rows` row by row."""
    stream = open_rows(path, format=format, encoding=encoding)
    rows, lines = [], []
    for line, row in stream.rows:
        rows.append(row)
        lines.append(line)
    if not rows:
        raise DataError(f"{stream.path} has a header but no rows", "add data rows below the header")
    return Table(stream.path, list(stream.columns), rows, lines)


def _delimited_rows(path: Path, lines: Iterator[str], fmt: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    delimiter = "," if fmt == "csv" else "\t"
    # The csv module refuses fields over 128 KiB; a long text is truncated at tokenization instead.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(lines, delimiter=delimiter)
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

    def rows() -> Iterator[tuple[int, dict]]:
        line_number = reader.line_num
        width = len(header)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(
                    f"{path}: line {reader.line_num} cannot be parsed: {exc}", "check its quoting"
                ) from None
            start, line_number = line_number + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if len(record) > width:
                raise DataError(
                    f"{path}: line {start} has {len(record)} fields but the header has {width}",
                    f"quote fields that contain the delimiter {delimiter!r}",
                )
            if len(record) < width:
                record = record + [None] * (width - len(record))
            yield start, dict(zip(header, record, strict=True))

    return header, rows()


def _jsonl_rows(path: Path, lines: Iterator[str], columns: list[str]) -> Iterator[tuple[int, dict]]:
    """Rows of a JSONL file; `columns` grows with every key seen, in first-seen order."""
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
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
        for key in record:
            if key not in seen:
                seen.add(key)
                columns.append(key)
        yield number, record


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
