"""Class imbalance: per-label loss weights (`--class-weights auto|W1,W2,...`) and the best-checkpoint metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from roberta_ft.errors import ConfigError

AUTO = "auto"
# Metrics where a smaller value is better; every other metric is better when larger.
_LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "error", "perplexity")


def parse_class_weights(value: Any) -> str | tuple[float, ...] | None:
    """None, "auto", or one positive weight per label: "1,3" (the flag), [1, 3] (a config file) or a tuple."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None if value is None else AUTO
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    try:
        weights = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        weights = ()
    if len(weights) < 2 or not all(math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(
            f"--class-weights {value!r} is not 'auto' or a list of positive numbers",
            "pass --class-weights auto, or one weight per label in label order, e.g. --class-weights 1,3",
        )
    return weights


def resolve_class_weights(spec: str | tuple[float, ...] | None, label_ids: np.ndarray, names: Sequence[str]):
    """The weight of each label id: inverse frequency for "auto" (sklearn's "balanced"), else as given."""
    if spec is None:
        return None
    if spec == AUTO:
        from sklearn.utils.class_weight import compute_class_weight

        counts = np.bincount(label_ids, minlength=len(names))
        missing = [names[i] for i in np.flatnonzero(counts == 0)]
        if missing:
            raise ConfigError(
                f"--class-weights auto: label {missing[0]!r} has no training rows, so it has no frequency",
                "add training rows with that label, or pass explicit weights",
            )
        weights = compute_class_weight("balanced", classes=np.arange(len(names)), y=label_ids)
        return tuple(float(w) for w in weights)
    if len(spec) != len(names):
        raise ConfigError(
            f"--class-weights gives {len(spec)} weights but there are {len(names)} labels ({', '.join(names)})",
            "give one weight per label, in this order",
        )
    return tuple(float(w) for w in spec)


def greater_is_better(metric: str) -> bool:
    return not any(word in metric.lower() for word in _LOWER_IS_BETTER)


def check_metric_for_best(name: str, produced: Sequence[str]) -> None:
    """`--metric-for-best NAME` must be one of the metrics the validation produces."""
    if name not in produced:
        import difflib

        close = [m for m in produced if m.startswith(name)][:1] or difflib.get_close_matches(name, list(produced), n=1)
        raise ConfigError(
            f"--metric-for-best {name!r} is not among the validation metrics ({', '.join(produced)})",
            (f"did you mean {close[0]!r}? " if close else "") + "pick one of those",
        )


def check_settings(task, class_weights) -> None:
    if class_weights is not None and task.is_regression:
        raise ConfigError(f"--class-weights does not apply to regression task {task.name!r}", "drop --class-weights")


def metric_names(compute, targets: np.ndarray, num_labels: int | None) -> list[str]:
    """The metrics `compute(logits, targets)` produces, found by scoring perfect logits (before any training)."""
    if targets.ndim == 2:  # multi-hot rows
        logits = targets.astype(np.float32) * 8 - 4
    elif num_labels is None:  # regression
        logits = targets.astype(np.float32)[:, None]
    else:
        logits = np.eye(num_labels, dtype=np.float32)[targets] * 8
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a constant validation set's correlation
        return list(compute(logits, targets))
