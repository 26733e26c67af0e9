"""Metric functions over numpy arrays. Offline by construction (scikit-learn and scipy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from roberta_ft.errors import ConfigError


def _as_arrays(predictions, references) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(predictions), np.asarray(references)


def accuracy(predictions, references) -> float:
    predictions, references = _as_arrays(predictions, references)
    return float((predictions == references).mean()) if len(references) else float("nan")


def f1_positive(predictions, references, positive: int = 1) -> float:
    from sklearn.metrics import f1_score

    predictions, references = _as_arrays(predictions, references)
    return float(f1_score(references, predictions, pos_label=positive, average="binary", zero_division=0))


def macro_f1(predictions, references, labels: list[int] | None = None) -> float:
    from sklearn.metrics import f1_score

    predictions, references = _as_arrays(predictions, references)
    return float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0))


def matthews_correlation(predictions, references) -> float:
    from sklearn.metrics import matthews_corrcoef

    predictions, references = _as_arrays(predictions, references)
    return float(matthews_corrcoef(references, predictions))


def pearson(predictions, references) -> float:
    from scipy.stats import pearsonr

    predictions, references = _as_arrays(predictions, references)
    return float(pearsonr(predictions.astype(np.float64), references.astype(np.float64))[0])


def spearman(predictions, references) -> float:
    from scipy.stats import spearmanr

    predictions, references = _as_arrays(predictions, references)
    return float(spearmanr(predictions.astype(np.float64), references.astype(np.float64))[0])


def classification_metrics(num_labels: int | None = None, *, mcc: bool = False) -> Callable:
    """Accuracy always; F1 of the positive class (id 1) for binary tasks; macro-F1 for multi-class."""

    def compute(predictions, references) -> dict[str, float]:
        predictions, references = _as_arrays(predictions, references)
        n = num_labels or int(max(predictions.max(initial=0), references.max(initial=0)) + 1)
        result = {"accuracy": accuracy(predictions, references)}
        if n == 2:
            result["f1"] = f1_positive(predictions, references)
        result["macro_f1"] = macro_f1(predictions, references, labels=list(range(n)))
        if mcc or n == 2:
            result["mcc"] = matthews_correlation(predictions, references)
        return result

    return compute


def regression_metrics(predictions, references) -> dict[str, float]:
    predictions, references = _as_arrays(predictions, references)
    return {
        "pearson": pearson(predictions, references),
        "spearmanr": spearman(predictions, references),
        "mse": float(np.mean((predictions.astype(np.float64) - references.astype(np.float64)) ** 2)),
    }


def multilabel_metrics(predictions, references) -> dict[str, float]:
    """Multi-hot rows: micro- and macro-averaged F1 over labels, and subset accuracy (every label of the row right)."""
    from sklearn.metrics import f1_score

    predictions, references = _as_arrays(predictions, references)
    references = references.astype(np.int64)
    return {
        "micro_f1": float(f1_score(references, predictions, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
        "subset_accuracy": float((predictions == references).all(axis=1).mean()) if len(references) else float("nan"),
    }


# Metrics where a smaller value is better (a name containing one of these words); every other is better larger.
LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "error", "perplexity")


def greater_is_better(metric: str) -> bool:
    """The direction of a metric, from its name: the one rule the best-epoch choice and tuning follow."""
    return not any(word in metric.lower() for word in LOWER_IS_BETTER)


def scorer(
    metric_function: Callable, decide: Callable[[np.ndarray], np.ndarray], extra_metric: str | None = None
) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """(logits, references) -> metrics: `decide` turns logits into predictions, scored by `metric_function`
    and, with `extra_metric`, by that evaluate metric too."""
    extra = load_evaluate_metric(extra_metric) if extra_metric else None

    def compute(logits: np.ndarray, references: np.ndarray) -> dict[str, float]:
        predictions = decide(logits)
        scores = dict(metric_function(predictions, references))
        if extra is not None:
            scores.update(extra(predictions, references))
        return {key: float(value) for key, value in scores.items()}

    return compute


def load_evaluate_metric(name: str) -> Callable:
    """Wrap a metric from the `evaluate` library: a hub id (needs the network) or a local module path."""
    try:
        import evaluate

        module = evaluate.load(name)
    except Exception as exc:
        raise ConfigError(
            f"cannot load metric {name!r} with evaluate.load: {str(exc).splitlines()[0] if str(exc) else exc}",
            "pass a local evaluate module path, or check the name and your network connection",
        ) from exc

    def compute(predictions, references) -> dict[str, float]:
        result = module.compute(predictions=list(predictions), references=list(references)) or {}
        return {key: float(value) for key, value in result.items() if isinstance(value, (int, float, np.number))}

    return compute
