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
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CACHE_ENV = "ROBERTA_FT_CACHE"
MAX_MB_ENV = "ROBERTA_FT_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
FORMAT_VERSION = 2  # 2: entries hold the long-text strategy's windows (owners) too
_OFF = ("", "0", "off", "false", "no", "none")
_PREFIX = "tokens-"

# What an entry holds: token ids and token type ids per model input, the text of each input (None when
# each text is one input), and the strategy's count of long texts.
Tokens = tuple[list[list[int]], list[list[int]] | None, np.ndarray | None, int]


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


def key(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, method: Mapping[str, Any]) -> str | None:
    """The entry key for these texts tokenized by `method` (max length, strategy ...); None: the cache is off."""
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
        digest.update(len(column).to_bytes(8, "little"))
        for text in column:
            raw = text.encode("utf-8", "surrogatepass")
            digest.update(len(raw).to_bytes(8, "little"))  # length-prefixed: ("ab", "c") != ("a", "bc")
            digest.update(raw)
    return digest.hexdigest()


def entry_path(entry_key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{_PREFIX}{entry_key[:40]}.npz"


def read(entry_key: str, num_texts: int) -> Tokens | None:
    """The entry for `entry_key`, or None when it is absent, damaged or for another number of texts."""
    path = entry_path(entry_key)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if bytes(stored["key"]).decode() != entry_key or int(stored["texts"]) != num_texts:
                return None
            ids = _unflatten(stored["ids"], stored["offsets"])
            types = _unflatten(stored["types"], stored["offsets"]) if "types" in stored.files else None
            owners = stored["owners"].astype(np.int64) if "owners" in stored.files else None
            count = int(stored["count"])
    except (OSError, KeyError, ValueError, EOFError) as error:  # absent, or damaged: tokenize again
        if path.exists():
            logger.debug("Token cache entry %s unreadable (%s): tokenizing again", path, error)
        return None
    try:
        os.utime(path)  # recently used: kept longest when the folder is trimmed
    except OSError:
        pass
    return ids, types, owners, count


def write(entry_key: str, num_texts: int, tokens: Tokens) -> None:
    ids, types, owners, count = tokens
    path = entry_path(entry_key)
    if path is None:
        return
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        flat, offsets = _flatten(ids, np.int32)
        arrays = {
            "key": np.frombuffer(entry_key.encode(), dtype=np.uint8),
            "ids": flat,
            "offsets": offsets,
            "texts": np.asarray(num_texts, dtype=np.int64),
            "count": np.asarray(count, dtype=np.int64),
        }
        if types is not None:
            arrays["types"] = _flatten(types, np.int8)[0]
        if owners is not None:
            arrays["owners"] = np.asarray(owners, dtype=np.int64)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _trim(folder)
    except OSError as error:  # a read-only or full disk costs the cache, never the run
        logger.warning("Could not write the token cache in %s: %s (set %s=off to skip it)", folder, error, CACHE_ENV)


def _flatten(rows: list[list[int]], dtype) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=offsets[1:])
    flat = np.fromiter((token for row in rows for token in row), dtype=dtype, count=int(offsets[-1]))
    return flat, offsets


def _unflatten(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    values = flat.tolist()
    bounds = offsets.tolist()
    return [values[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def _trim(folder: Path) -> None:
    try:
        limit = float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB)) * 1024 * 1024
    except ValueError:
        limit = DEFAULT_MAX_MB * 1024 * 1024
    entries = []
    for entry in folder.glob(f"{_PREFIX}*.npz"):
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
