"""Pretraining corpora: documents read as a stream, tokenized and packed into blocks in a file on disk.

A corpus is a ``.txt`` file (one document per line, or with ``blank_line_documents`` one per
paragraph), a folder of .txt files (recursively, in name order), a glob of .txt files, or a
CSV/TSV/JSONL file whose ``text_column`` holds the documents (a labelled training file's texts).

Packing follows RoBERTa's FULL-SENTENCES: the documents' tokens follow one another in a single
stream, with a separator (``</s>``) after each document, and the stream is cut into blocks of
``max_length - 2`` tokens, each framed by ``<s>`` ... ``</s>``. Every token of the corpus is in
exactly one block; only the very last block of each share can be shorter, so no block is padded.
A seeded share of the documents (``validation_split``) goes to the validation blocks.

Blocks live in two flat files per share (token ids as int32, block offsets as int64) that are
memory-mapped for training: memory stays flat however large the corpus. The files are kept in the
cache folder (token_cache.cache_dir) under a key of the corpus files (path, size, modification time),
the tokenizer and the packing settings, so a second run on the same corpus skips reading it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roberta_ft.artifacts import plain_mode
from roberta_ft.data.files import EXTENSIONS, detect_format, iter_lines, open_rows
from roberta_ft.errors import DataError

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".text", ".md"}  # the files a folder corpus reads
FORMAT = 1  # of the block files; part of the cache key
CHUNK_DOCUMENTS = 4096  # documents tokenized per call


@dataclass(frozen=True)
class CorpusSpec:
    """Where the documents are and how to read them."""

    corpus: str
    text_column: str | None = None
    format: str | None = None
    encoding: str = "utf-8"
    blank_line_documents: bool = False


def corpus_files(corpus: str) -> list[Path]:
    """The files of a corpus: one file, a folder's .txt files, or a glob's matches, in name order."""
    path = Path(corpus).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not found:
            raise DataError(f"folder {path} holds no .txt files", "put the corpus in .txt files, one document per line")
        return found
    if any(char in corpus for char in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"no file matches {corpus!r}", "check the pattern (quote it so the shell leaves it alone)")
        return found
    raise DataError(f"corpus not found: {corpus}", "pass a .txt file, a folder of .txt files, a glob, or a data file")


def _is_table(path: Path, spec: CorpusSpec) -> bool:
    if spec.format is not None:
        return True
    return path.suffix.lower() in EXTENSIONS


def iter_documents(spec: CorpusSpec, files: list[Path] | None = None) -> Iterator[str]:
    """Every document of the corpus in order, streamed (constant memory); blank documents are skipped."""
    for path in files if files is not None else corpus_files(spec.corpus):
        if _is_table(path, spec):
            yield from _table_documents(path, spec)
        elif spec.text_column is not None:
            raise DataError(
                f"--text-column is for CSV/TSV/JSONL corpora, and {path.name} is a text file",
                "drop --text-column, or pass --format csv|tsv|jsonl if the file is a table",
            )
        elif spec.blank_line_documents:
            yield from _paragraphs(path, spec.encoding)
        else:
            for _, line in iter_lines(path, spec.encoding):
                if line.strip():
                    yield line.strip()


def _paragraphs(path: Path, encoding: str) -> Iterator[str]:
    lines: list[str] = []
    for _, line in iter_lines(path, encoding):
        if line.strip():
            lines.append(line.strip())
        elif lines:
            yield " ".join(lines)
            lines = []
    if lines:
        yield " ".join(lines)


def _table_documents(path: Path, spec: CorpusSpec) -> Iterator[str]:
    detect_format(path, spec.format)  # an unknown --format is named before anything is read
    stream = open_rows(path, format=spec.format, encoding=spec.encoding)
    column = spec.text_column
    first = True
    for line, row in stream.rows:
        if first:
            columns = list(stream.columns) or list(row)
            if column is None:
                column = "text" if "text" in columns else None
                if column is None:
                    raise DataError(
                        f"{path.name} has no 'text' column to pretrain on (columns: {', '.join(columns)})",
                        "pass --text-column NAME",
                    )
            elif column not in columns:
                raise DataError(
                    f"--text-column {column!r} is not a column of {path.name} (columns: {', '.join(columns)})",
                    "pass one of those columns",
                )
            first = False
        value = row.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataError(
                f"{path.name} line {line}: column {column!r} holds {type(value).__name__}, not text",
                "fix that row or pick the text column with --text-column",
            )
        if value.strip():
            yield value.strip()


# ------------------------------------------------------------------------------------------ blocks


class Blocks:
    """Packed blocks of token ids, memory-mapped: ``blocks[i]`` is block i (an int32 array)."""

    targets = None  # the loop's batching reads only `lengths` and the length

    def __init__(self, folder: Path, share: str) -> None:
        self.folder = folder
        offsets_path, tokens_path = folder / f"{share}.offsets", folder / f"{share}.tokens"
        self.offsets = np.fromfile(offsets_path, dtype=np.int64)
        size = tokens_path.stat().st_size // 4
        self.tokens = np.memmap(tokens_path, dtype=np.int32, mode="r", shape=(size,)) if size else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.tokens[self.offsets[index] : self.offsets[index + 1]])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])


@dataclass
class PackedCorpus:
    """The training and validation blocks of a corpus, and what packing them counted."""

    train: Blocks
    validation: Blocks
    info: dict  # documents, tokens, blocks per share, block length, sha256 of the token files, seconds
    folder: Path


class _BlockWriter:
    """Appends the blocks of one share to its token and offset files, hashing what it writes."""

    def __init__(self, folder: Path, share: str, body: int, bos: int, eos: int) -> None:
        self.tokens = open(folder / f"{share}.tokens", "wb")  # noqa: SIM115 - closed in close()
        self.offsets = open(folder / f"{share}.offsets", "wb")  # noqa: SIM115 - closed in close()
        self.blocks, self.end = 0, 0  # blocks written, and where the last one ends
        self.digest = hashlib.sha256()
        self._write_offsets([0])
        self.folder, self.share = folder, share
        self.body, self.bos, self.eos = body, bos, eos
        self.pending: list[np.ndarray] = []
        self.pending_size = 0
        self.documents = 0

    def add(self, ids: list[int], separator: int) -> None:
        self.documents += 1
        piece = np.asarray([*ids, separator], dtype=np.int32)
        self.pending.append(piece)
        self.pending_size += len(piece)
        if self.pending_size >= self.body * 64:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        stream = np.concatenate(self.pending)
        full = len(stream) // self.body
        cut = full * self.body
        if final and cut < len(stream):
            full += 1
            cut = len(stream)
        if full:
            bodies = [stream[i : min(i + self.body, cut)] for i in range(0, cut, self.body)]
            framed = np.concatenate([np.concatenate(([self.bos], body, [self.eos])) for body in bodies]).astype(
                np.int32
            )
            data = framed.tobytes()
            self.tokens.write(data)
            self.digest.update(data)
            ends = self.end + np.cumsum([len(body) + 2 for body in bodies])
            self._write_offsets(ends)
            self.end = int(ends[-1])
            self.blocks += len(bodies)
        rest = stream[cut:]
        self.pending = [rest] if len(rest) else []
        self.pending_size = len(rest)

    def _write_offsets(self, values) -> None:
        data = np.asarray(values, dtype=np.int64).tobytes()
        self.offsets.write(data)
        self.digest.update(data)

    def close(self) -> dict:
        self._flush(final=True)
        self.tokens.close()
        self.offsets.close()
        return {
            "documents": self.documents,
            "blocks": self.blocks,
            "tokens": self.end,
            "sha256": self.digest.hexdigest(),
        }


def pack(
    documents: Iterator[str],
    tokenizer,
    folder: Path,
    *,
    max_length: int,
    validation_split: float,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Tokenize the documents and write the packed train and validation blocks into `folder`."""
    if max_length < 8:
        raise DataError(
            f"--max-length {max_length} is too short for pretraining blocks", "pass --max-length 64 or more"
        )
    backend = tokenizer.backend_tokenizer
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None:
        bos = tokenizer.cls_token_id
    if eos is None:
        eos = tokenizer.sep_token_id
    separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else eos
    if bos is None or eos is None:
        raise DataError(
            "the tokenizer has no start and end tokens to frame blocks with", "use a RoBERTa- or BERT-style tokenizer"
        )
    body = max_length - 2
    writers = {share: _BlockWriter(folder, share, body, bos, eos) for share in ("train", "validation")}
    rng = np.random.default_rng(seed)
    seen = tokens = 0
    chunk: list[str] = []

    def flush() -> None:
        nonlocal seen, tokens
        if not chunk:
            return
        encodings = backend.encode_batch(chunk, add_special_tokens=False)
        held_out = rng.random(len(chunk)) < validation_split
        for encoding, validation in zip(encodings, held_out, strict=True):
            ids = encoding.ids
            if ids:
                writers["validation" if validation else "train"].add(ids, separator)
                tokens += len(ids)
        seen += len(chunk)
        chunk.clear()
        if progress is not None:
            progress(seen, tokens)

    for document in documents:
        chunk.append(document)
        if len(chunk) >= CHUNK_DOCUMENTS:
            flush()
    flush()
    info = {share: writer.close() for share, writer in writers.items()}
    if info["train"]["blocks"] == 0:
        raise DataError("the corpus holds no text to pretrain on", "pass a corpus with at least one non-blank document")
    if info["validation"]["blocks"] == 0:
        raise DataError(
            f"--validation-split {validation_split} held out none of the corpus's {seen} documents",
            "pass a larger --validation-split, or a corpus with more documents",
        )
    return {"max_length": max_length, "documents": seen, **info}


def _cache_key(spec: CorpusSpec, files: list[Path], tokenizer_key: str, settings: dict) -> str:
    digest = hashlib.sha256()
    listing = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    described = {
        "format": FORMAT,
        "files": listing,
        "spec": {k: v for k, v in vars(spec).items() if k != "corpus"},
        "tokenizer": tokenizer_key,
        **settings,
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def load_or_pack(
    spec: CorpusSpec,
    tokenizer,
    *,
    max_length: int,
    validation_split: float,
    seed: int,
    scratch: Path,
) -> PackedCorpus:
    """The packed corpus: from the cache when this corpus was packed the same way before, else packed now.

    With the cache turned off (ROBERTA_FT_CACHE=off) the blocks are written under `scratch`.
    """
    from roberta_ft.data import token_cache

    files = corpus_files(spec.corpus)
    settings = {"max_length": max_length, "validation_split": validation_split, "seed": seed}
    root = token_cache.cache_dir()
    key = _cache_key(spec, files, token_cache.tokenizer_fingerprint(tokenizer), settings)
    folder = (root / "corpus" / key) if root is not None else scratch / key
    if (folder / "info.json").is_file():
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        logger.info(
            "Corpus blocks from the cache (%s): %d training and %d validation blocks",
            folder,
            info["train"]["blocks"],
            info["validation"]["blocks"],
        )
        return PackedCorpus(Blocks(folder, "train"), Blocks(folder, "validation"), info, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    started = time.perf_counter()
    total = sum(p.stat().st_size for p in files)
    last = [started]

    def progress(documents: int, tokens: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 10:
            last[0] = now
            logger.info(
                "Reading the corpus (%.1f MB): %d documents, %d tokens so far, %.0f tokens/s",
                total / 1e6,
                documents,
                tokens,
                tokens / (now - started),
            )

    try:
        info = pack(
            iter_documents(spec, files),
            tokenizer,
            work,
            max_length=max_length,
            validation_split=validation_split,
            seed=seed,
            progress=progress,
        )
        info["seconds"] = round(time.perf_counter() - started, 3)
        (work / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # another run packed it meanwhile
            shutil.rmtree(work, ignore_errors=True)
        else:
            os.chmod(work, plain_mode(directory=True))  # mkdtemp's 0o700, as mkdir would make it
            os.rename(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info(
        "Packed %d documents (%d tokens) into %d training and %d validation blocks of up to %d tokens in %.1f s",
        info["documents"],
        info["train"]["tokens"] + info["validation"]["tokens"],
        info["train"]["blocks"],
        info["validation"]["blocks"],
        max_length,
        info["seconds"],
    )
    return PackedCorpus(Blocks(folder, "train"), Blocks(folder, "validation"), info, folder)
