"""How a trained model reads texts and turns logits into labels at eval and predict time.

The training settings in run_config.json are the defaults (long-text strategy, stride, multi-label
threshold and separator), so `eval` and `predict` read texts the way the model was trained to; a
flag given to eval/predict overrides them. A model not trained by roberta-ft is read as a Hugging
Face model: truncated texts, multi-label when its config.json says ``multi_label_classification``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roberta_ft.long_text import check_options
from roberta_ft.multilabel import PROBLEM_TYPE


@dataclass(frozen=True)
class Reading:
    long_text: str = "truncate"
    stride: int | None = None
    multi_label: bool = False
    threshold: float = 0.5
    separator: str = "|"


def reading(settings, run: dict[str, Any], model_config, max_length: int) -> Reading:
    """`settings`: an EvalConfig or PredictConfig (its long_text, stride, threshold override the training's)."""
    trained = run.get("config", {}) if run else {}
    long_text = settings.long_text or trained.get("long_text") or "truncate"
    # The training stride belongs to the training strategy: a strategy chosen now starts from its own default.
    stride = settings.stride if settings.stride is not None or settings.long_text else trained.get("stride")
    check_options(long_text, stride, max_length)
    threshold = settings.threshold if settings.threshold is not None else trained.get("threshold", 0.5)
    return Reading(
        long_text=long_text,
        stride=stride,
        multi_label=getattr(model_config, "problem_type", None) == PROBLEM_TYPE,
        threshold=float(threshold),
        separator=trained.get("label_separator") or "|",
    )
