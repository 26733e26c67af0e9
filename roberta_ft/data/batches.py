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
