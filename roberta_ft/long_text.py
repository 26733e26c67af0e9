"""Texts longer than --max-length: `truncate` (keep the start), `head-tail`, or `sliding` windows.

- ``truncate``: the first ``max_length`` tokens (the tokenizer's own truncation).
- ``head-tail``: the first quarter and the last three quarters of the token budget, as Sun et al.
  (2019, "How to Fine-Tune BERT for Text Classification?") found best for long reviews: a text's
  conclusion often carries its label.
- ``sliding``: overlapping windows over the whole text, ``--stride`` tokens shared by consecutive
  windows (the tokenizer's ``stride``; default: half the window). Training sees every window with
  its text's label; evaluation and prediction average the windows' logits per text.

Single texts only: a pair is always truncated (longest first), as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roberta_ft.errors import ConfigError

if TYPE_CHECKING:
    import datasets

    from roberta_ft.data import Encoded

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


def tokenize(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    strategy: str = "truncate",
    stride: int | None = None,
    *,
    chunk_size: int = 2048,
) -> tuple[list[list[int]], list[list[int]] | None, np.ndarray | None, int]:
    """Token ids (and token type ids) per model input; the text of each input (None: one per text); long texts."""
    from roberta_ft.data import tokenize as truncating_tokenize

    if strategy == "truncate":
        ids, types, truncated = truncating_tokenize(tokenizer, texts, pairs, max_length, chunk_size=chunk_size)
        return ids, types, None, truncated
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
            mapping = [start + int(i) for i in encoded["overflow_to_sample_mapping"]]
            ids.extend(windows)
            owners.extend(mapping)
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


def _head_tail(tokenizer, row: list[int], max_length: int) -> list[int]:
    """Keep the special tokens around the text, its first HEAD_SHARE and its last tokens, within max_length."""
    mask = tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
    prefix = next((i for i, special in enumerate(mask) if not special), len(row))
    suffix = next((i for i, special in enumerate(reversed(mask)) if not special), 0)
    budget = max_length - prefix - suffix
    head = int(budget * HEAD_SHARE)
    tail = budget - head
    return row[: prefix + head] + row[len(row) - suffix - tail :]


def per_text(logits: np.ndarray, owners: np.ndarray | None, num_texts: int) -> np.ndarray:
    """The mean of each text's window logits (the logits themselves when every text is one input)."""
    if owners is None:
        return logits
    sums = np.zeros((num_texts, logits.shape[-1]), dtype=np.float64)
    np.add.at(sums, owners, logits)
    counts = np.bincount(owners, minlength=num_texts).astype(np.float64)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


@dataclass
class LongEncoded:
    """Model inputs (one per window) and what maps them back to texts."""

    encoded: Encoded  # one row per model input, targets repeated for each window of a text
    owners: np.ndarray | None  # the text of each row; None: one row per text
    text_targets: np.ndarray | None  # one target per text
    num_texts: int

    def per_text(self, logits: np.ndarray) -> np.ndarray:
        return per_text(logits, self.owners, self.num_texts)


def encode_dataset(
    dataset: datasets.Dataset,
    tokenizer,
    max_length: int,
    label_map,
    *,
    source: str,
    strategy: str = "truncate",
    stride: int | None = None,
) -> LongEncoded:
    """Like data.encode_dataset, with the long-text strategy applied."""
    from roberta_ft.data import Encoded, encode_targets
    from roberta_ft.data import encode_dataset as truncating_encode

    if strategy == "truncate":
        encoded = truncating_encode(dataset, tokenizer, max_length, label_map, source=source)
        return LongEncoded(encoded, None, encoded.targets, len(encoded))
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    ids, types, owners, long_texts = tokenize(tokenizer, dataset["text"], pairs, max_length, strategy, stride)
    targets = encode_targets(dataset, label_map, source=source)
    if long_texts:
        what = "extra windows" if strategy == "sliding" else "texts cut to their head and tail"
        logger.info("%s: %d %s (--long-text %s, --max-length %d)", source, long_texts, what, strategy, max_length)
    window_targets = None if targets is None else targets[owners]
    return LongEncoded(Encoded(ids, window_targets, types), owners, targets, len(dataset))
