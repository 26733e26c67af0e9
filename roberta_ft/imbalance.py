"""Class imbalance: per-label loss weights (`--class-weights auto|W1,W2,...`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from roberta_ft.errors import ConfigError

AUTO = "auto"


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
