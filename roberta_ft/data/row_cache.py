"""A data file's standard rows in a memory-mapped Arrow file on disk, so a second run reads nothing again.

`data.sources.load_file` streams a CSV/TSV/JSONL file into the standard columns (text, text_pair,
label, line) and writes them here as an Arrow stream file, which `datasets.Dataset.from_file` maps
into memory without reading it: millions of rows cost disk, not RAM. The key covers the file's bytes
(its sha256), the reading options (format, encoding, columns, --drop-invalid, numeric labels) and this
format's version; any change is a miss. Entries live beside the token cache (``$ROBERTA_FT_CACHE``,
see token_cache.py), are written atomically and trimmed with it; with the cache turned off they go to
a temporary folder removed when the process ends.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roberta_ft.data import token_cache

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREFIX = "rows-"
_scratch: Path | None = None


def key(file_sha256: str, options: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": FORMAT_VERSION, "file": file_sha256, **options}, sort_keys=True).encode())
    return digest.hexdigest()


def folder(*, scratch: bool = False) -> Path:
    """Where entries go: the cache folder, or a temporary one (removed at exit) when the cache is off
    (or, with `scratch`, cannot be written)."""
    global _scratch
    found = None if scratch else token_cache.cache_dir()
    if found is not None:
        return found
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="roberta-ft-rows-"))
        atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
    return _scratch


def paths(entry: str, *, scratch: bool = False) -> tuple[Path, Path]:
    base = folder(scratch=scratch) / f"{PREFIX}{entry[:40]}"
    return base.with_suffix(".arrow"), base.with_suffix(".json")


def find(entry: str) -> dict[str, Any] | None:
    """The entry's metadata (columns, row counts, warnings) when its Arrow file is complete, else None."""
    arrow, meta = paths(entry)
    try:
        values = json.loads(meta.read_text(encoding="utf-8"))
        if values.get("key") != entry or not arrow.is_file() or arrow.stat().st_size != values.get("bytes"):
            return None
    except (OSError, ValueError):
        return None
    for path in (arrow, meta):
        try:
            os.utime(path)  # recently used: kept longest when the folder is trimmed
        except OSError:
            pass
    return {**values, "arrow": str(arrow)}


class Writer:
    """Record batches into a temporary Arrow stream file; `commit` moves it into place with its metadata."""

    def __init__(self, entry: str, schema) -> None:
        import pyarrow as pa

        self.entry = entry
        try:
            self.arrow, self.meta = paths(entry)
            self.arrow.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.arrow.name}.", suffix=".tmp", dir=self.arrow.parent)
        except OSError as error:  # a read-only or full cache folder costs the cache, never the run
            logger.warning("Could not write the data cache in %s: %s; using a temporary folder", folder(), error)
            self.arrow, self.meta = paths(entry, scratch=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.arrow.name}.", suffix=".tmp", dir=self.arrow.parent)
        os.close(handle)
        self.temporary = Path(temporary)
        self.sink = pa.OSFile(str(self.temporary), "wb")
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.schema = schema
        self.rows = 0

    def write(self, columns: Mapping[str, list]) -> None:
        import pyarrow as pa

        if not columns or not next(iter(columns.values())):
            return
        batch = pa.record_batch([pa.array(columns[field.name], type=field.type) for field in self.schema], self.schema)
        self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def write_batch(self, batch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)
            self.rows += batch.num_rows

    def commit(self, meta: Mapping[str, Any]) -> Path:
        self.writer.close()
        self.sink.close()
        values = {**meta, "key": self.entry, "rows": self.rows, "bytes": self.temporary.stat().st_size}
        os.replace(self.temporary, self.arrow)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.meta.name}.", suffix=".tmp", dir=self.meta.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(values, out)
        os.replace(temporary, self.meta)
        token_cache.trim(self.arrow.parent)
        return self.arrow

    def abort(self) -> None:
        try:
            self.writer.close()
            self.sink.close()
        except Exception:  # already closed or broken: the file goes anyway
            pass
        self.temporary.unlink(missing_ok=True)
