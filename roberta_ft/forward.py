"""Forward-only inference: a classifier's logits for encoded rows, in their order (eval, predict, serve, and
the training loop's validation). Nothing here trains: the inference paths import this module, never loop.py.

Rows go in length-sorted batches; with packing (speed/packing.py) a batch's short texts share rows, and the
last encoder layer computes the first token only (speed/first_token.py). Under data parallelism each
process predicts every n-th batch and the rows are gathered back into order.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from roberta_ft.data.batches import FORWARD_OVERHEAD_TOKENS, collate, padding_multiple, sorted_batches
from roberta_ft.data.tokens import Encoded
from roberta_ft.speed import packing
from roberta_ft.speed.first_token import first_token_only, first_tokens_at


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, data: Encoded, batch_size: int, *, accelerator, pad_id: int) -> np.ndarray:
    """Logits for every row of `data`, in its original order (float32 numpy)."""
    # The bare model: a DDP wrapper has nothing to synchronise here, and processes run different batch counts.
    model = accelerator.unwrap_model(model)
    model.eval()
    if len(data) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    process, processes = accelerator.process_index, accelerator.num_processes
    # Under data parallelism each process predicts every n-th batch; the rows are put back in order below.
    # Packed rows (speed/packing.py) take the padding out of a batch of mixed lengths, so they need
    # no length-grouped cuts: one pass per batch_size rows is cheapest (docs/performance.md).
    packer = packing.packer(model)
    overhead = None if packer is not None else FORWARD_OVERHEAD_TOKENS
    mine = sorted_batches(data.lengths, batch_size, overhead_tokens=overhead)[process::processes]
    outputs, order = [], []
    with first_token_only(model):
        _predict_batches(model, data, mine, outputs, order, accelerator=accelerator, pad_id=pad_id, packer=packer)
    local_logits = np.concatenate(outputs) if outputs else np.zeros((0, model.config.num_labels), dtype=np.float32)
    local_order = np.concatenate(order) if order else np.zeros((0,), dtype=np.int64)
    if processes > 1:
        from accelerate.utils import gather_object

        # Objects, not tensors: the processes hold different row counts, and nothing is padded or duplicated.
        parts = gather_object([(local_order, local_logits)])
        local_order = np.concatenate([part[0] for part in parts])
        local_logits = np.concatenate([part[1] for part in parts])
    if len(local_order) != len(data) or len(np.unique(local_order)) != len(data):
        raise RuntimeError(f"evaluation covered {len(local_order)} rows of {len(data)}")  # a bug, never user input
    logits = np.empty((len(data), local_logits.shape[-1]), dtype=np.float32)
    logits[local_order] = local_logits
    return logits


def _predict_batches(
    model, data: Encoded, batches, outputs: list, order: list, *, accelerator, pad_id: int, packer=None
) -> None:
    """Append each batch's float32 logits to `outputs` and its row indices to `order`.

    With a `packer` (speed/packing.py), a batch whose short texts can share rows runs packed.
    """
    device = accelerator.device
    for indices in batches:
        packed = packer and packing.pack(
            data.input_ids,
            indices,
            pad_id,
            position_offset=packer.position_offset,
            token_type_ids=data.token_type_ids,
            pad_to_multiple_of=padding_multiple(device.type),
        )
        if packed is None:
            batch, firsts = device_batch(data, indices, pad_id, accelerator), contextlib.nullcontext()
        else:
            batch = to_device(packed.model_inputs(), device)
            rows, starts = (torch.from_numpy(part).to(device) for part in (packed.rows, packed.starts))
            firsts = first_tokens_at(model, rows, starts)
        with accelerator.autocast(), firsts:
            logits = model(**batch).logits
        outputs.append(logits.float().cpu().numpy())
        order.append(indices)


def device_batch(data: Encoded, indices, pad_id: int, accelerator) -> dict[str, torch.Tensor]:
    """The rows `indices` of `data`, padded to their longest (a multiple of 8 on CUDA), on the device."""
    batch = collate(
        data.input_ids,
        indices,
        pad_id,
        token_type_ids=data.token_type_ids,
        pad_to_multiple_of=padding_multiple(accelerator.device.type),
    )
    return to_device(batch, accelerator.device)


def to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value).to(device, non_blocking=True) for key, value in batch.items()}
