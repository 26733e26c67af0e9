"""Metric functions over numpy arrays. Offline by construction (numpy, and scipy for the correlations).

The classification counts are computed here rather than by scikit-learn: importing `sklearn.metrics` costs
every `train` and `eval` about a second of start-up, and the formulas are a few lines. They give
scikit-learn's values, `zero_division=0` conventions included (tests/test_metrics.py checks them
against it on random labels).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from roberta_ft.errors import ConfigError


def _as_arrays(predictions, references) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(predictions), np.asarray(references)


def accuracy(predictions, references) -> float:
    predictions, references = _as_arrays(predictions, references)
    return float((predictions == references).mean()) if len(references) else float("nan")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _positions(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's index in `labels`, and whether it is one of them."""
    if not len(labels):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    order = np.argsort(labels, kind="stable")
    at = np.searchsorted(labels[order], values).clip(0, len(labels) - 1)
    return order[at], labels[order][at] == values


def label_counts(predictions, references, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, false positives, false negatives) per label of `labels`, for single-label rows
    (1-D arrays of label ids; counted with bincount, no rows x labels array) or multi-hot rows (2-D, a column
    per label of `labels`)."""
    predictions, references = _as_arrays(predictions, references)
    if predictions.ndim == 2:
        predicted, true = predictions.astype(bool), references.astype(bool)
        tp = (predicted & true).sum(axis=0)
        return tp, (predicted & ~true).sum(axis=0), (~predicted & true).sum(axis=0)
    labels = np.asarray(list(labels))
    size = len(labels)
    predicted, predicted_known = _positions(predictions, labels)
    true, true_known = _positions(references, labels)
    tp = np.bincount(predicted[predicted_known & true_known & (predictions == references)], minlength=size)
    fp = np.bincount(predicted[predicted_known], minlength=size) - tp
    fn = np.bincount(true[true_known], minlength=size) - tp
    return tp, fp, fn


def _f1(tp, fp, fn) -> np.ndarray:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1_support(predictions, references, labels) -> tuple[np.ndarray, ...]:
    """Per label: precision, recall, F1 (0 where undefined) and support (rows whose true label it is)."""
    tp, fp, fn = label_counts(predictions, references, labels)
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn), tp + fn


def confusion_matrix(predictions, references, labels) -> np.ndarray:
    """Counts [true label, predicted label] over `labels` (rows with a label outside them are left out)."""
    predictions, references = _as_arrays(predictions, references)
    labels = np.asarray(list(labels))
    size = len(labels)
    predicted, predicted_known = _positions(predictions, labels)
    true, true_known = _positions(references, labels)
    both = predicted_known & true_known
    return np.bincount(true[both] * size + predicted[both], minlength=size * size).reshape(size, size)


def f1_positive(predictions, references, positive: int = 1) -> float:
    return float(_f1(*label_counts(predictions, references, [positive]))[0])


def macro_f1(predictions, references, labels: list[int] | None = None) -> float:
    predictions, references = _as_arrays(predictions, references)
    if labels is None:  # the labels that occur, as scikit-learn takes them
        labels = sorted(set(np.unique(references).tolist()) | set(np.unique(predictions).tolist()))
    return float(_f1(*label_counts(predictions, references, labels)).mean()) if len(labels) else 0.0


def matthews_correlation(predictions, references) -> float:
    """Matthews' correlation coefficient, multi-class (Gorodkin's R_K), 0 where it is undefined."""
    predictions, references = _as_arrays(predictions, references)
    labels = sorted(set(np.unique(references).tolist()) | set(np.unique(predictions).tolist()))
    matrix = confusion_matrix(predictions, references, labels).astype(np.float64)
    true, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    rows, correct = matrix.sum(), np.trace(matrix)
    covariance = correct * rows - true @ predicted
    spread = (rows**2 - predicted @ predicted) * (rows**2 - true @ true)
    return float(covariance / np.sqrt(spread)) if spread > 0 else 0.0


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
    predictions, references = _as_arrays(predictions, references)
    references = references.astype(np.int64)
    tp, fp, fn = label_counts(predictions, references, range(references.shape[1]))
    return {
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1": float(_f1(tp, fp, fn).mean()),
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
