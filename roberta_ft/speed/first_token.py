"""Compute only the first token in the encoder's last layer: the classifier reads nothing else.

A RoBERTa/BERT sequence classifier reads only the first token (``<s>`` / ``[CLS]``) of the last
layer's output. Every other position of that layer is computed and thrown away: its queries,
attention outputs and feed-forward blocks. In the last layer only the keys and values need every
token; everything else needs just the first. On a 6-layer model that is 14% of the encoder's
matrix-multiply FLOPs in both training and inference, with the same result up to float rounding.

``first_token_only(model)`` switches this on for the duration of a ``with`` block (training, evaluation,
prediction) and restores the original forward afterwards, so a model handed back to Python code
behaves exactly as transformers built it. Models whose head reads more than the first token, or
whose layers are not the BERT-style layout checked here, are left alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import types
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# Sequence classifiers whose head reads only position 0 of the last hidden state.
FIRST_TOKEN_HEADS = {
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "CamembertForSequenceClassification",
    "BertForSequenceClassification",
}
ATTENTION = ("sdpa", "eager")


def _last_layer(model):
    if type(model).__name__ not in FIRST_TOKEN_HEADS:
        return None
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers:
        return None
    layer = layers[-1]
    config = model.config
    attention = getattr(getattr(layer, "attention", None), "self", None)
    if (
        attention is None
        or not all(hasattr(attention, name) for name in ("query", "key", "value", "scaling", "attention_head_size"))
        or not hasattr(layer.attention, "output")
        or not hasattr(layer, "feed_forward_chunk")
        or getattr(config, "is_decoder", False)
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "chunk_size_feed_forward", 0)
        or getattr(config, "_attn_implementation", None) not in ATTENTION
        or getattr(config, "position_embedding_type", "absolute") != "absolute"
    ):
        return None
    return layer


def _first_token_forward(self, hidden_states, attention_mask=None, *args, attention_function, firsts=None, **kwargs):
    """The last layer, evaluated for position 0 only; returns a (batch, 1, hidden) tensor.

    `firsts`, for packed rows (speed/packing.py): the (row, position) of each text's first token; the
    result then has one entry per text, in that order. The encoder's other arguments (cross-attention
    inputs, cache, position ids) do not apply to the encoder-only models `_last_layer` accepts.
    """
    attention = self.attention.self
    rows_in, length, _ = hidden_states.shape
    heads = (-1, attention.attention_head_size)
    key = attention.key(hidden_states).view(rows_in, length, *heads).transpose(1, 2)
    value = attention.value(hidden_states).view(rows_in, length, *heads).transpose(1, 2)
    if firsts is None:
        first = hidden_states[:, :1]
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
            attention_mask = attention_mask[:, :, :1, :]  # the first query's row of the (batch, 1, L, L) mask
    else:
        rows, starts = firsts
        first = hidden_states[rows, starts].unsqueeze(1)
        key, value = key[rows], value[rows]  # each text against the keys and values of its own row
        attention_mask = attention_mask[rows, :, starts].unsqueeze(-2)  # (texts, 1, 1, L): its mask row
    batch = first.shape[0]
    query = attention.query(first).view(batch, 1, *heads).transpose(1, 2)
    context, _ = attention_function(
        attention,
        query,
        key,
        value,
        attention_mask,
        dropout=attention.dropout.p if attention.training else 0.0,
        scaling=attention.scaling,
    )
    attended = self.attention.output(context.reshape(batch, 1, -1).contiguous(), first)
    return self.feed_forward_chunk(attended)


@contextlib.contextmanager
def first_token_only(model) -> Iterator[bool]:
    """Within the block, the last encoder layer computes position 0 only (yields whether it could)."""
    layer = _last_layer(model)
    if layer is None or "forward" in vars(layer):  # unsupported, or already switched by an outer block
        yield layer is not None
        return
    layer.forward = _switched_forward(layer)
    try:
        yield True
    finally:
        del layer.forward


@contextlib.contextmanager
def first_tokens_at(model, rows, starts) -> Iterator[None]:
    """Within the block, the last layer computes only the tokens at (`rows`, `starts`): packed texts' first.

    For models `_last_layer` accepts; whatever forward the layer had (the plain one, or
    `first_token_only`'s) is back afterwards.
    """
    layer = _last_layer(model)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no first-token last layer")  # callers check first: a bug
    previous = vars(layer).get("forward")
    layer.forward = _switched_forward(layer, firsts=(rows, starts))
    try:
        yield
    finally:
        if previous is None:
            del layer.forward
        else:
            layer.forward = previous


def _switched_forward(layer, **options):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    attention = layer.attention.self
    eager = sys.modules[type(attention).__module__].eager_attention_forward  # the model file's own eager path
    function = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
    return types.MethodType(functools.partial(_first_token_forward, attention_function=function, **options), layer)
