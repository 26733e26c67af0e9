"""Batches: shuffled length buckets for training, length-sorted batches for inference, and padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


# What one more forward pass costs, in padded tokens of arithmetic: the fixed cost of a pass (a few
# hundred operator calls) against the tokens it computes. It decides when a batch of mixed lengths is
# cheaper cut in two (docs/performance.md, "Length-grouped inference batches").
FORWARD_OVERHEAD_TOKENS = 256


def sorted_batches(
    lengths: np.ndarray, batch_size: int, *, overhead_tokens: int = FORWARD_OVERHEAD_TOKENS
) -> list[np.ndarray]:
    """Batches for inference: longest first (a memory problem shows up at once), minimal padding.

    The rows are sorted by length and cut into runs of at most `batch_size` where the cost is least:
    each batch costs its rows x its longest row (the padded tokens it computes) plus `overhead_tokens`.
    Many rows of similar lengths give full batches; a few rows of mixed lengths (a served batch of
    concurrent requests) are cut where one pass would mostly compute padding.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    if overhead_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [order[start:end] for start, end in _cheapest_cuts(np.asarray(lengths)[order], batch_size, overhead_tokens)]


def _cheapest_cuts(longest_first: np.ndarray, batch_size: int, overhead: int) -> list[tuple[int, int]]:
    """The (start, end) runs of a descending sequence of lengths that minimise sum(rows x first length +
    overhead), each run at most batch_size rows: dynamic programming over the end of each run."""
    n = len(longest_first)
    cost = np.zeros(n + 1)
    start_of = np.zeros(n + 1, dtype=np.int64)
    lengths = longest_first.astype(np.float64)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - batch_size), end)
        options = cost[starts] + (end - starts) * lengths[starts] + overhead
        best = len(options) - 1 - int(np.argmin(options[::-1]))  # on a tie, the shortest last run: full runs first
        cost[end], start_of[end] = options[best], starts[best]
    cuts, end = [], n
    while end > 0:
        cuts.append((int(start_of[end]), end))
        end = int(start_of[end])
    return cuts[::-1]


def padding_multiple(device_type: str) -> int:
    """What to round batch widths up to: 8 on CUDA (tensor-core tiles); 1 elsewhere.

    On the CPU the extra tokens are pure cost: padding SST-2-length batches to multiples of 8 made
    MiniLM training ~25% slower here (docs/performance.md).
    """
    return 8 if device_type == "cuda" else 1


def padded_width(longest: int, multiple: int) -> int:
    """A batch's width: its longest row rounded up to `multiple` (padding_multiple)."""
    return -(-longest // multiple) * multiple


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
    width = padded_width(longest, pad_to_multiple_of)
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
