"""From logits to the labels `predict` writes: the best label, the K best (`--top-k`), or every label
over the threshold (multi-label models).

Fields of an output row:

- single-label: ``label`` and ``probability`` (softmax);
- ``--top-k K`` (K > 1): ``labels`` and ``probabilities``, the K best, best first;
- multi-label: ``labels`` and ``probabilities`` of every label whose sigmoid reaches ``--threshold``,
  best first (at most K with ``--top-k``).

List fields are JSON lists in ``.jsonl`` output and are joined by the label separator (``|``) in
``.csv``/``.tsv`` and on stdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from roberta_ft.errors import ConfigError


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def output_fields(*, multi_label: bool, top_k: int | None) -> list[str]:
    return ["labels", "probabilities"] if multi_label or (top_k or 1) > 1 else ["label", "probability"]


def check_top_k(top_k: int | None, num_labels: int) -> None:
    if top_k is None:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}", "pass e.g. --top-k 3")
    if top_k > num_labels:
        raise ConfigError(f"--top-k {top_k} is more than the model's {num_labels} labels", f"pass --top-k {num_labels}")


def label_rows(
    logits: np.ndarray,
    names: Sequence[str],
    *,
    multi_label: bool = False,
    threshold: float = 0.5,
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """One output dict per row of logits (see the module docstring for the fields)."""
    if multi_label:
        from roberta_ft.multilabel import sigmoid

        probabilities = sigmoid(logits)
    else:
        probabilities = softmax(logits)
    order = np.argsort(-probabilities, axis=-1, kind="stable")
    rows = []
    for p, ranked in zip(probabilities, order, strict=True):
        if multi_label:
            chosen = [k for k in ranked if p[k] >= threshold][: top_k or None]
        elif (top_k or 1) > 1:
            chosen = list(ranked[:top_k])
        else:
            k = int(ranked[0])
            rows.append({"label": names[k], "probability": round(float(p[k]), 6)})
            continue
        rows.append({"labels": [names[k] for k in chosen], "probabilities": [round(float(p[k]), 6) for k in chosen]})
    return rows
