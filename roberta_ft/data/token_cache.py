"""Tokenized texts kept on disk across runs, under a key that covers everything deciding the tokens.

The key (``data.tokens.encode_texts`` computes it with ``key``) covers the texts themselves (so
the data file's bytes, the columns picked from it and any rows dropped by ``--drop-invalid`` all
count), the tokenizer (its full ``tokenizer.json`` minus the per-call truncation/padding state, its
class and the library versions), ``max_length``, the long-text strategy with its stride, and whether
token type ids are kept. Any change is a miss, never a stale hit.

Location: ``$ROBERTA_FT_CACHE``, else ``$XDG_CACHE_HOME/roberta_ft``, else ``~/.cache/roberta_ft``;
``ROBERTA_FT_CACHE=off`` turns the cache off. Entries are written atomically (temporary file, then
``os.replace``), so concurrent runs and interrupted writes never leave a half-written entry; the
least recently used entries are removed once the folder passes ``ROBERTA_FT_CACHE_MAX_MB`` (2048).
Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft.data.ragged import Ragged

logger = logging.getLogger(__name__)

CACHE_ENV = "ROBERTA_FT_CACHE"
MAX_MB_ENV = "ROBERTA_FT_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
FORMAT_VERSION = 3  # 3: one memory-mappable file per entry, texts hashed through Arrow
_OFF = ("", "0", "off", "false", "no", "none")
_PREFIX = "tokens-"

# What tokenizing gives: token ids and token type ids per model input (lists of rows, or Ragged rows read
# from an entry), the text of each input (None when each text is one input), the strategy's count of long texts.
Tokens = tuple[Any, Any, np.ndarray | None, int]


def cache_dir() -> Path | None:
    """Where tokenized texts are kept, or None when the cache is turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "roberta_ft"


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides a tokenizer's output (its serialized pipeline, class and library versions)."""
    import tokenizers
    import transformers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} has no tokenizers backend to fingerprint")
    spec = json.loads(backend.to_str())
    # Truncation and padding are set per call by transformers; the call's max_length is part of the key.
    spec.pop("truncation", None)
    spec.pop("padding", None)
    digest = hashlib.sha256()
    digest.update(json.dumps(spec, sort_keys=True).encode())
    extra = [
        type(tokenizer).__name__,
        list(tokenizer.model_input_names),
        tokenizers.__version__,
        transformers.__version__,
    ]
    digest.update(json.dumps(extra).encode())
    return digest.hexdigest()


def key(tokenizer, texts, pairs, method: Mapping[str, Any]) -> str | None:
    """The entry key for these texts tokenized by `method` (max length, strategy ...); None: the cache is off.

    `texts` and `pairs` are sequences of strings or Arrow string columns; they are hashed through Arrow
    (the bytes of every text and every text's length), a few seconds for millions of rows.
    """
    if cache_dir() is None:
        return None
    try:
        tokenizer_key = tokenizer_fingerprint(tokenizer)
    except (TypeError, ValueError, AttributeError) as error:  # an unusual tokenizer: just tokenize
        logger.debug("Token cache skipped: %s", error)
        return None
    digest = hashlib.sha256()
    keep_types = "token_type_ids" in tokenizer.model_input_names
    header = {"version": FORMAT_VERSION, "types": keep_types, "pairs": pairs is not None, **method}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(tokenizer_key.encode())
    for column in (texts, pairs) if pairs is not None else (texts,):
        digest.update(text_digest(column))
    return digest.hexdigest()


DIGEST_ROWS = 20_000  # texts hashed at a time


def text_digest(column) -> bytes:
    """A hash of a column of texts: every text's UTF-8 bytes and length, whatever the column's chunking."""
    import pyarrow as pa

    column = _arrow_column(column)
    if isinstance(column, pa.ChunkedArray):
        chunks = column.chunks
    elif isinstance(column, pa.Array):
        chunks = [column]
    else:  # a list, or a datasets Column of a selection: to Arrow a slice at a time
        chunks = (
            pa.array(column[start : start + DIGEST_ROWS], type=pa.large_string())
            for start in range(0, len(column), DIGEST_ROWS)
        )
    lengths, data, count = hashlib.sha256(), hashlib.sha256(), 0
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string())
        if chunk.null_count:
            raise ValueError("a text column with missing values")
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
        lengths.update(np.diff(offsets).astype("<i8").tobytes())
        data.update(memoryview(chunk.buffers()[2])[offsets[0] : offsets[-1]])
        count += len(chunk)
    return count.to_bytes(8, "little") + lengths.digest() + data.digest()


def _arrow_column(column):
    """A datasets Column of a plain table as its Arrow column (hashed from its buffers, no Python strings)."""
    source = getattr(column, "source", None)
    name = getattr(column, "column_name", None)
    if name is None or getattr(source, "_indices", True) is not None or not hasattr(source, "data"):
        return column
    return source.data.column(name)


def entry_path(entry_key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{_PREFIX}{entry_key[:40]}{SUFFIX}"


# An entry is one file: the arrays one after the other (each 64-byte aligned), then a JSON header saying
# where each is, the header's length (8 bytes) and the magic. Arrays are read back memory-mapped.
SUFFIX = ".tok"
MAP_BYTES = 64 << 20  # entries from this size on are memory-mapped, smaller ones read into memory
MAGIC = b"RFTTOK02"
_ALIGN = 64


def read(entry_key: str, num_texts: int):
    """The entry as memory-mapped arrays (ids, types, owners, count), or None when absent, damaged or for
    another number of texts. ids and types are `Ragged` rows."""
    path = entry_path(entry_key)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(-16, os.SEEK_END)
            size, magic = int.from_bytes(handle.read(8), "little"), handle.read(8)
            if magic != MAGIC:
                raise ValueError("not a token cache entry")
            handle.seek(-16 - size, os.SEEK_END)
            header = json.loads(handle.read(size))
        if header["key"] != entry_key or header["texts"] != num_texts:
            return None
        # Large entries are mapped (read from the page cache as batches need them); small ones are read in.
        mapped = path.stat().st_size >= MAP_BYTES
        arrays = {}
        for name, (dtype, offset, length) in header["arrays"].items():
            if not length:
                arrays[name] = np.zeros(0, dtype)
            elif mapped:
                arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(length,))
            else:
                arrays[name] = np.fromfile(path, dtype=dtype, count=length, offset=offset)
    except (OSError, KeyError, ValueError, EOFError, TypeError) as error:  # absent, or damaged: tokenize again
        if path.exists():
            logger.debug("Token cache entry %s unreadable (%s): tokenizing again", path, error)
        return None
    try:
        os.utime(path)  # recently used: kept longest when the folder is trimmed
    except OSError:
        pass
    ids = Ragged(arrays["ids"], arrays["offsets"])
    types = Ragged(arrays["types"], arrays["offsets"]) if "types" in arrays else None
    owners = np.asarray(arrays["owners"], dtype=np.int64) if "owners" in arrays else None
    return ids, types, owners, int(header["count"])


class EntryWriter:
    """Tokens appended a chunk at a time into temporary files, assembled into one entry by `commit`."""

    def __init__(self, entry_key: str, num_texts: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.key, self.num_texts, self.folder = entry_key, num_texts, folder
        self.scratch = Path(tempfile.mkdtemp(prefix=".tokens-", dir=folder))
        self.files: dict[str, Any] = {}
        self.dtypes: dict[str, str] = {}
        self.lengths: dict[str, int] = {}
        self.tokens = 0
        self.count = 0
        self._append("offsets", np.zeros(1, dtype=np.int64))

    def _append(self, name: str, values: np.ndarray) -> None:
        if name not in self.files:
            self.files[name] = open(self.scratch / name, "wb")  # noqa: SIM115 (closed in commit/abort)
            self.dtypes[name] = values.dtype.str
            self.lengths[name] = 0
        self.files[name].write(np.ascontiguousarray(values).tobytes())
        self.lengths[name] += len(values)

    def add(self, flat_ids: np.ndarray, lengths: np.ndarray, flat_types: np.ndarray | None, owners, count: int) -> None:
        """One chunk: its ids flattened, the length of each of its rows, (types), the text of each row, its count."""
        self._append("ids", flat_ids.astype(np.int32, copy=False))
        self._append("offsets", self.tokens + np.cumsum(lengths, dtype=np.int64))
        self.tokens += int(np.sum(lengths, dtype=np.int64))
        if flat_types is not None:
            self._append("types", flat_types.astype(np.int8, copy=False))
        if owners is not None:
            self._append("owners", np.asarray(owners, dtype=np.int64))
        self.count += count

    def commit(self) -> Path | None:
        """The entry written atomically; None (and a warning) when the disk refuses."""
        target = entry_path(self.key)
        try:
            for handle in self.files.values():
                handle.close()
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.folder)
            arrays, position = {}, 0
            with os.fdopen(handle, "wb") as out:
                for name in self.files:
                    padding = -position % _ALIGN
                    out.write(b"\0" * padding)
                    position += padding
                    arrays[name] = [self.dtypes[name], position, self.lengths[name]]
                    with open(self.scratch / name, "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 22)
                    position += self.lengths[name] * np.dtype(self.dtypes[name]).itemsize
                header = json.dumps({"key": self.key, "texts": self.num_texts, "count": self.count, "arrays": arrays})
                out.write(header.encode())
                out.write(len(header.encode()).to_bytes(8, "little") + MAGIC)
            os.replace(temporary, target)
            trim(self.folder)
            return target
        except OSError as error:  # a read-only or full disk costs the cache, never the run
            logger.warning(
                "Could not write the token cache in %s: %s (set %s=off to skip it)", self.folder, error, CACHE_ENV
            )
            return None
        finally:
            self.abort()

    def abort(self) -> None:
        for handle in self.files.values():
            handle.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


ENTRY_PATTERNS = (f"{_PREFIX}*", "rows-*")  # token entries, and the data cache's (row_cache.py)


def trim(folder: Path) -> None:
    """Remove the least recently used entries once the folder passes ROBERTA_FT_CACHE_MAX_MB."""
    try:
        limit = float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB)) * 1024 * 1024
    except ValueError:
        limit = DEFAULT_MAX_MB * 1024 * 1024
    entries = []
    for entry in (path for pattern in ENTRY_PATTERNS for path in folder.glob(pattern)):
        try:
            info = entry.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries):  # oldest use first
        if total <= limit:
            break
        entry.unlink(missing_ok=True)
        total -= size
