"""Packed inference: the short texts of a batch laid end to end in rows, each attending to itself only.

A batch of texts of mixed lengths, padded to its longest, computes mostly padding: a served batch of
concurrent requests (arrival order, a 3-token text beside a 60-token one) was 2x slower per text
than `predict`'s length-sorted batches. Packing puts the batch's texts, longest first, into rows no
wider than its longest text (first fit), with position ids restarting at each text and a
block-diagonal attention mask, so each token sees only its own text's tokens; the last layer computes
each text's first token only (the classifier reads nothing else; `first_token.first_tokens_at`). The
logits are the padded batch's up to float rounding, and every linear layer sees fewer rows.

`packer(model)` says whether a model can run packed: the sequence classifiers `first_token` knows,
with SDPA attention (a boolean mask) and absolute positions. `pack` gives None when the batch's
texts would not share a row (similar lengths: `predict`'s sorted batches), and the padded batch runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roberta_ft.data.batches import padded_width
from roberta_ft.speed import first_token


@dataclass(frozen=True)
class Packer:
    position_offset: int  # RoBERTa counts positions from padding_idx + 1 (its padding tokens' trick), BERT from 0


def packer(model) -> Packer | None:
    """How to run `model` packed, or None when it cannot be."""
    if first_token._last_layer(model) is None or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return None
    embeddings = getattr(getattr(model, model.base_model_prefix, None), "embeddings", None)
    if embeddings is None or not hasattr(embeddings, "position_embeddings"):
        return None
    padding_idx = getattr(embeddings, "padding_idx", None)  # RobertaEmbeddings keeps it; BertEmbeddings does not
    return Packer(0 if padding_idx is None else padding_idx + 1)


@dataclass
class PackedBatch:
    input_ids: np.ndarray  # (rows, width)
    position_ids: np.ndarray
    segments: np.ndarray  # which text of its row each token belongs to; -1: padding
    token_type_ids: np.ndarray | None
    rows: np.ndarray  # the row of each text, in the order of the indices given to `pack`
    starts: np.ndarray  # the position of its first token in that row

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The model's inputs: ids, positions, token types and the (rows, 1, width, width) boolean mask."""
        mask = self.segments[:, :, None] == self.segments[:, None, :]  # padding attends to padding only
        inputs = {"input_ids": self.input_ids, "position_ids": self.position_ids, "attention_mask": mask[:, None]}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids
        return inputs


def pack(
    input_ids: Sequence[Sequence[int]],
    indices: Sequence[int],
    pad_id: int,
    *,
    position_offset: int,
    token_type_ids: Sequence[Sequence[int]] | None = None,
    pad_to_multiple_of: int = 1,
) -> PackedBatch | None:
    """The texts `indices` of `input_ids` packed into rows as wide as the longest (rounded up to
    `pad_to_multiple_of`, as padded batches are: 8 on CUDA); None if no two texts share a row."""
    lengths = np.fromiter((len(input_ids[i]) for i in indices), dtype=np.int64, count=len(indices))
    if len(lengths) < 2:
        return None
    width = padded_width(int(lengths.max()), pad_to_multiple_of)
    if int(np.partition(lengths, 1)[:2].sum()) > width:  # not even the two shortest fit in one row
        return None
    order = np.argsort(-lengths, kind="stable")
    fills: list[int] = []
    rows = np.empty(len(lengths), dtype=np.int64)
    starts = np.empty(len(lengths), dtype=np.int64)
    for k in order:  # first fit, longest first
        length = int(lengths[k])
        row = next((r for r, fill in enumerate(fills) if fill + length <= width), len(fills))
        if row == len(fills):
            fills.append(0)
        rows[k], starts[k] = row, fills[row]
        fills[row] += length
    if len(fills) == len(lengths):
        return None
    ids = np.full((len(fills), width), pad_id, dtype=np.int64)
    positions = np.full((len(fills), width), position_offset, dtype=np.int64)
    segments = np.full((len(fills), width), -1, dtype=np.int64)
    types = None if token_type_ids is None else np.zeros((len(fills), width), dtype=np.int64)
    for k, i in enumerate(indices):
        row, start, length = rows[k], starts[k], int(lengths[k])
        span = slice(start, start + length)
        ids[row, span] = input_ids[i]
        positions[row, span] = np.arange(position_offset, position_offset + length)
        segments[row, span] = k
        if types is not None:
            types[row, span] = token_type_ids[i]  # type: ignore[index]
    return PackedBatch(ids, positions, segments, types, rows, starts)
