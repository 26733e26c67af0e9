"""Texts to model inputs: token ids by a long-text strategy, cached on disk, with the targets beside them.

Texts longer than --max-length: ``--long-text``

- ``truncate``: the first ``max_length`` tokens (the tokenizer's own truncation; a pair is truncated
  longest first).
- ``head-tail``: the first quarter and the last three quarters of the token budget, as Sun et al.
  (2019, "How to Fine-Tune BERT for Text Classification?") found best for long reviews: a text's
  conclusion often carries its label.
- ``sliding``: overlapping windows over the whole text, ``--stride`` tokens shared by consecutive
  windows (the tokenizer's ``stride``; default: half the window). Training sees every window with
  its text's label; evaluation and prediction average the windows' logits per text.

head-tail and sliding read single texts only. Training and evaluation read their tokens through
the on-disk cache (``token_cache``); prediction streams its input and tokenizes each chunk once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roberta_ft.data import token_cache
from roberta_ft.data.labels import encode_column
from roberta_ft.data.progress import Rate
from roberta_ft.data.ragged import Ragged
from roberta_ft.errors import ConfigError

if TYPE_CHECKING:
    import datasets

    from roberta_ft.data.labels import LabelMap

logger = logging.getLogger(__name__)

STRATEGIES = ("truncate", "head-tail", "sliding")
HEAD_SHARE = 0.25  # head-tail: share of the token budget kept from the start


def check_options(strategy: str, stride: int | None, max_length: int | None) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"--long-text {strategy!r} is not valid", f"use one of {', '.join(STRATEGIES)}")
    if stride is None:
        return
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"--stride must be a positive integer, got {stride!r}", "pass e.g. --stride 128")
    if strategy != "sliding":
        raise ConfigError(f"--stride applies to --long-text sliding, not {strategy!r}", "drop --stride")
    if max_length is not None and stride >= max_length - 2:
        raise ConfigError(
            f"--stride {stride} leaves no new tokens in a window of --max-length {max_length}",
            f"pass a --stride below {max_length - 2} (the tokens consecutive windows share), e.g. {max_length // 2}",
        )


def default_stride(max_length: int) -> int:
    return max(1, max_length // 2)


@dataclass
class Encoded:
    """Model inputs (one per text, or one per window of a text) and what maps them back to texts.

    ``targets`` has one row per model input (a text's target repeated for each of its windows),
    ``text_targets`` one per text. ``owners`` is the text of each input; None when each text is one
    input. ``truncated`` counts the long texts: rows cut at max_length (truncate), texts cut to their
    head and tail (head-tail), or extra windows (sliding).
    """

    input_ids: list[list[int]]
    targets: np.ndarray | None
    token_type_ids: list[list[int]] | None = None
    truncated: int = 0
    owners: np.ndarray | None = None
    text_targets: np.ndarray | None = None
    num_texts: int = -1  # -1: one input per text

    def __post_init__(self) -> None:
        if self.num_texts < 0:
            self.num_texts = len(self.input_ids) if self.owners is None else int(self.owners.max(initial=-1)) + 1
        if self.text_targets is None and self.owners is None:
            self.text_targets = self.targets

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        if isinstance(self.input_ids, Ragged):
            return self.input_ids.lengths
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def per_text(self, logits: np.ndarray) -> np.ndarray:
        return per_text(logits, self.owners, self.num_texts)


def per_text(logits: np.ndarray, owners: np.ndarray | None, num_texts: int) -> np.ndarray:
    """The mean of each text's window logits (the logits themselves when every text is one input)."""
    if owners is None:
        return logits
    sums = np.zeros((num_texts, logits.shape[-1]), dtype=np.float64)
    np.add.at(sums, owners, logits)
    counts = np.bincount(owners, minlength=num_texts).astype(np.float64)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def tokenize(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    strategy: str = "truncate",
    stride: int | None = None,
    *,
    chunk_size: int = 2048,
) -> token_cache.Tokens:
    """Token ids (and token type ids, if the model uses them) per model input, the text of each input
    (None for truncate: one input per text), and the count of long texts (see Encoded.truncated)."""
    if strategy == "truncate":
        return _truncate(tokenizer, texts, pairs, max_length, chunk_size)
    if pairs is not None:
        raise ConfigError(f"--long-text {strategy} works on single texts, not text pairs", "use --long-text truncate")
    keep_types = "token_type_ids" in tokenizer.model_input_names
    ids: list[list[int]] = []
    owners: list[int] = []
    long_texts = 0
    for start in range(0, len(texts), chunk_size):
        batch = list(texts[start : start + chunk_size])
        if strategy == "sliding":
            overlap = stride if stride is not None else default_stride(max_length)
            if overlap >= max_length - tokenizer.num_special_tokens_to_add(pair=False):
                raise ConfigError(
                    f"--stride {overlap} leaves no new tokens in a window of --max-length {max_length}",
                    f"pass a smaller --stride, e.g. {max_length // 2}",
                )
            encoded = tokenizer(
                batch,
                truncation=True,
                max_length=max_length,
                stride=overlap,
                return_overflowing_tokens=True,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            windows = encoded["input_ids"]
            ids.extend(windows)
            owners.extend(start + int(i) for i in encoded["overflow_to_sample_mapping"])
            long_texts += len(windows) - len(batch)
        else:
            encoded = tokenizer(batch, truncation=False, return_attention_mask=False, return_token_type_ids=False)
            for offset, row in enumerate(encoded["input_ids"]):
                if len(row) > max_length:
                    row = _head_tail(tokenizer, row, max_length)
                    long_texts += 1
                ids.append(row)
                owners.append(start + offset)
    types = [[0] * len(row) for row in ids] if keep_types else None
    return ids, types, np.asarray(owners, dtype=np.int64), long_texts


def _truncate(tokenizer, texts, pairs, max_length: int, chunk_size: int) -> token_cache.Tokens:
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
    return ids, types, None, truncated


def _head_tail(tokenizer, row: list[int], max_length: int) -> list[int]:
    """Keep the special tokens around the text, its first HEAD_SHARE and its last tokens, within max_length."""
    mask = tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
    prefix = next((i for i, special in enumerate(mask) if not special), len(row))
    suffix = next((i for i, special in enumerate(reversed(mask)) if not special), 0)
    budget = max_length - prefix - suffix
    head = int(budget * HEAD_SHARE)
    tail = budget - head
    return row[: prefix + head] + row[len(row) - suffix - tail :]


def encode_texts(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    *,
    strategy: str = "truncate",
    stride: int | None = None,
    targets: np.ndarray | None = None,
    cache: bool = True,
    workers: int | None = None,
) -> Encoded:
    """Model inputs for `texts` (and `pairs`), with `targets` (one per text) repeated for each window.

    With `cache`, the tokens are read (memory-mapped) from the on-disk cache when these texts were
    tokenized the same way before, and written to it otherwise, a chunk at a time and, for many texts,
    by `workers` processes (default: one per usable CPU). Without `cache` (a streamed prediction chunk)
    they are tokenized in memory. `texts`/`pairs` may be lists or a datasets column.
    """
    entry = _cache_key(tokenizer, texts, pairs, max_length, strategy, stride) if cache else None
    tokens = token_cache.read(entry, len(texts)) if entry is not None else None
    if tokens is not None:
        logger.info("Tokenized %d rows: read from the cache (%s)", len(texts), token_cache.entry_path(entry))
    elif cache and (entry is not None or len(texts) > IN_MEMORY_TEXTS):
        tokens = _tokenize_to_disk(entry, tokenizer, texts, pairs, max_length, strategy, stride, workers)
    if tokens is None:
        tokens = tokenize(
            tokenizer, list(texts[:]), list(pairs[:]) if pairs is not None else None, max_length, strategy, stride
        )
    ids, types, owners, long_texts = tokens
    inputs_targets = targets if targets is None or owners is None else targets[owners]
    return Encoded(ids, inputs_targets, types, long_texts, owners, targets, len(texts))


IN_MEMORY_TEXTS = 200_000  # with the cache off, more texts than this are still tokenized to disk (a temp folder)
SERIAL_TEXTS = 20_000  # texts tokenized in one call: memory is bounded by this, not by the data's size
_work: tuple | None = None  # what the worker processes tokenize (set before they fork)


def _tokenize_to_disk(
    entry, tokenizer, texts, pairs, max_length, strategy, stride, workers
) -> token_cache.Tokens | None:
    """Tokenize into a cache entry (a temporary one when the cache is off) and read it back memory-mapped."""
    import uuid

    from roberta_ft.data import row_cache

    global _work
    folder = token_cache.cache_dir()
    if entry is None or folder is None:
        entry, folder = f"scratch-{uuid.uuid4().hex}", row_cache.folder(scratch=True)
    try:
        writer = token_cache.EntryWriter(entry, len(texts), folder)
    except OSError as error:
        logger.warning("Could not write the token cache in %s: %s; tokenizing in memory", folder, error)
        return None
    count = len(texts)
    ranges = [(start, min(start + SERIAL_TEXTS, count)) for start in range(0, count, SERIAL_TEXTS)] or [(0, 0)]
    processes = _usable_workers(workers) if count > 2 * SERIAL_TEXTS else 1
    rate = Rate("Tokenizing", total_rows=count)
    _work = (tokenizer, texts, pairs, max_length, strategy, stride)
    try:
        if processes > 1:
            import multiprocessing

            # The workers tokenize chunks in turn; the parent appends their arrays in order.
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                for (start, end), part in zip(ranges, pool.imap(_tokenize_range, ranges), strict=True):
                    writer.add(*part)
                    rate.rows_done(end - start)
        else:
            for start, end in ranges:
                writer.add(*_tokenize_range((start, end)))
                rate.rows_done(end - start)
    except BaseException:
        writer.abort()
        raise
    finally:
        _work = None
    rate.finish()
    if writer.commit() is None:
        return None
    found = token_cache.read(entry, count)
    if found is not None and entry.startswith("scratch-"):
        path = token_cache.entry_path(entry)  # mapped already: the file goes when the process ends
        if path is not None:
            import atexit

            atexit.register(path.unlink, missing_ok=True)
    return found


def _tokenize_range(bounds: tuple[int, int]):
    """Tokenize texts[start:end] (in a worker or this process) into flat arrays for EntryWriter.add."""
    assert _work is not None
    tokenizer, texts, pairs, max_length, strategy, stride = _work
    start, end = bounds
    part_texts = list(texts[start:end]) if end > start else []
    part_pairs = list(pairs[start:end]) if pairs is not None else None
    ids, types, owners, count = tokenize(tokenizer, part_texts, part_pairs, max_length, strategy, stride)
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter((token for row in ids for token in row), dtype=np.int32, count=int(lengths.sum()))
    flat_types = None
    if types is not None:
        flat_types = np.fromiter((t for row in types for t in row), dtype=np.int8, count=int(lengths.sum()))
    return flat, lengths, flat_types, (owners + start if owners is not None else None), count


def _usable_workers(workers: int | None) -> int:
    import sys

    from roberta_ft.speed.cpu_threads import usable_cpus

    if not sys.platform.startswith("linux"):  # fork is the cheap start; elsewhere one process
        return 1
    return max(1, workers if workers is not None else usable_cpus())


def _cache_key(tokenizer, texts, pairs, max_length: int, strategy: str, stride: int | None) -> str | None:
    method: dict[str, object] = {"max_length": max_length, "strategy": strategy}
    if strategy == "sliding":
        method["stride"] = stride if stride is not None else default_stride(max_length)
    elif strategy == "head-tail":
        method["head_share"] = HEAD_SHARE
    return token_cache.key(tokenizer, texts, pairs, method)


def encode_targets(dataset: datasets.Dataset, label_map: LabelMap | None, *, source: str) -> np.ndarray | None:
    """Label ids (or multi-hot rows, or float scores when there is no label map); None for unlabelled data."""
    if "label" not in dataset.column_names:
        return None
    if label_map is None:
        column = dataset.with_format("arrow")["label"]
        return column.to_numpy().astype(np.float32)
    return encode_column(label_map, dataset, source=source)


def encode_dataset(
    dataset: datasets.Dataset,
    tokenizer,
    max_length: int,
    label_map: LabelMap | None,
    *,
    source: str,
    strategy: str = "truncate",
    stride: int | None = None,
    workers: int | None = None,
) -> Encoded:
    """A table's texts (and pairs) as model inputs, through the cache, with its labels as targets."""
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    targets = encode_targets(dataset, label_map, source=source)
    encoded = encode_texts(
        tokenizer, dataset["text"], pairs, max_length, strategy=strategy, stride=stride, targets=targets,
        workers=workers,
    )  # fmt: skip
    if encoded.truncated and strategy == "truncate":
        logger.warning(
            "%s: %d of %d rows reach --max-length %d and are truncated",
            source,
            encoded.truncated,
            len(encoded),
            max_length,
        )
    elif encoded.truncated:
        what = "extra windows" if strategy == "sliding" else "texts cut to their head and tail"
        logger.info(
            "%s: %d %s (--long-text %s, --max-length %d)", source, encoded.truncated, what, strategy, max_length
        )
    return encoded
