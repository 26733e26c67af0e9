"""Probabilities a user can act on: calibration, decision thresholds and how calibrated a model is.

- **Fitting** (after training, on the best model's validation logits): one temperature for a single-label
  model (`fit_temperature`: softmax(logits / T)), a scale and a bias per label for a multi-label one
  (`fit_label_scaling`: sigmoid(a_j * logit_j + b_j), a_j > 0). Both are a linear map of the logits, so
  `fold` writes them into the classifier's output layer: every loader (`transformers.pipeline`, the ONNX
  export, serve) then gives calibrated probabilities with no code of ours. A positive scale never changes
  which logit is largest, so the argmax label stays the same.
- **Thresholds** (`choose_threshold`): the probability cut-off that maximises an F-score on validation rows,
  per label (multi-label) or for the second label of a binary task (`--optimize-threshold`).
- **Measures** (`calibration_report`): expected calibration error (ECE, equal-width bins), Brier score,
  negative log-likelihood, accuracy at a share of the most confident rows, and the reliability diagram's bins.

Single-label ECE is the top-label one: a row's confidence is its largest probability, correct when that label
is the true one. Multi-label ECE bins every (row, label) probability against whether the label is there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ECE_BINS = 15
NOISE_DRAWS = 100  # simulated perfectly calibrated models behind ece_noise_floor
# Fewer validation rows than this: the fitted values are noisy (logged).
FEW_ROWS = 100
COVERAGES = (1.0, 0.9, 0.8, 0.5)
# --threshold-metric / --optimize-threshold: the F-score's beta.
THRESHOLD_METRICS = {"f1": 1.0, "f0.5": 0.5, "f2": 2.0}
CALIBRATIONS = ("temperature", "none")


# ------------------------------------------------------------------------------------------ fitting


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T).

    The NLL is convex in 1 / T, so a bounded scalar search finds its minimum."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))

    def nll(inverse: float) -> float:
        return float(-_log_softmax(logits * inverse)[rows, targets].mean())

    found = minimize_scalar(nll, bounds=(1e-3, 100.0), method="bounded", options={"xatol": 1e-6})
    return float(1.0 / found.x)


def fit_label_scaling(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the scale a > 0 and bias b minimising the binary cross-entropy of sigmoid(a * logit + b)
    (Platt scaling). A label that is always or never there in the validation rows keeps a = 1, b = 0."""
    from scipy.optimize import minimize

    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    scales, biases = np.ones(logits.shape[1]), np.zeros(logits.shape[1])
    for j in range(logits.shape[1]):
        z, y = logits[:, j], targets[:, j]
        if y.min() == y.max():
            continue

        def loss(params: np.ndarray, z=z, y=y) -> tuple[float, np.ndarray]:
            a, b = params
            s = a * z + b
            # softplus(s) - y * s is the cross-entropy of sigmoid(s), computed without overflow
            value = np.logaddexp(0.0, s) - y * s
            gradient = 1.0 / (1.0 + np.exp(-s)) - y
            # a light pull towards "no change" keeps labels with few positives from running away
            penalty = 1e-4 * ((a - 1.0) ** 2 + b**2)
            return (
                float(value.mean() + penalty),
                np.array([(gradient * z).mean() + 2e-4 * (a - 1.0), gradient.mean() + 2e-4 * b]),
            )

        found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(1e-3, 100.0), (-50, 50)])
        scales[j], biases[j] = found.x
    return scales, biases


def apply_scaling(logits: np.ndarray, scale: np.ndarray | float, bias: np.ndarray | float = 0.0) -> np.ndarray:
    """The logits the folded model gives: scale * logits + bias (per label)."""
    return (np.asarray(logits, dtype=np.float64) * scale + bias).astype(np.float32)


def fold(layer, scale: np.ndarray | float, bias: np.ndarray | float = 0.0) -> None:
    """Write `logits -> scale * logits + bias` into the linear output layer, in place."""
    import torch

    with torch.no_grad():
        weight = layer.weight
        scale_t = torch.as_tensor(np.broadcast_to(scale, (weight.shape[0],)).copy(), dtype=torch.float64)
        bias_t = torch.as_tensor(np.broadcast_to(bias, (weight.shape[0],)).copy(), dtype=torch.float64)
        weight.copy_((weight.double() * scale_t[:, None]).to(weight.dtype))
        if layer.bias is None:  # a layer without a bias gets one when the calibration needs it
            if torch.any(bias_t != 0):
                layer.bias = torch.nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype))
            else:
                return
        layer.bias.copy_((layer.bias.double() * scale_t + bias_t).to(layer.bias.dtype))


# ------------------------------------------------------------------------------------------ thresholds


def choose_threshold(probabilities: np.ndarray, positives: np.ndarray, metric: str = "f1") -> float | None:
    """The cut-off t (predict when probability >= t) with the best F-score on these rows; None when there is
    no positive row to learn from. t lies halfway between two neighbouring probabilities, strictly in (0, 1)."""
    beta2 = THRESHOLD_METRICS[metric] ** 2
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(positives).astype(bool)
    total = int(y.sum())
    if total == 0 or len(p) == 0:
        return None
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    true_positives = np.cumsum(y)
    predicted = np.arange(1, len(p) + 1)
    # A cut can only fall between two different probabilities: keep the last row of each run of equal ones.
    last = np.r_[p[1:] != p[:-1], True]
    scores = (
        (1 + beta2)
        * true_positives
        / ((1 + beta2) * true_positives + beta2 * (total - true_positives) + (predicted - true_positives))
    )
    scores = np.where(last, scores, -1.0)
    best = int(np.argmax(scores))
    below = p[best + 1] if best + 1 < len(p) else 0.0
    threshold = (p[best] + below) / 2
    return float(min(max(threshold, 1e-6), 1 - 1e-6))


def f_score(decisions: np.ndarray, positives: np.ndarray, metric: str = "f1") -> float:
    beta2 = THRESHOLD_METRICS[metric] ** 2
    decisions, positives = np.asarray(decisions).astype(bool), np.asarray(positives).astype(bool)
    tp = float((decisions & positives).sum())
    denominator = (
        (1 + beta2) * tp + beta2 * float((~decisions & positives).sum()) + float((decisions & ~positives).sum())
    )
    return (1 + beta2) * tp / denominator if denominator else 0.0


# ------------------------------------------------------------------------------------------ measures


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Each confidence's bin: bin k holds (k/bins, (k+1)/bins]; a confidence of exactly 0 goes into the first."""
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Equal-width bins over [0, 1]: each bin's row count, mean confidence and accuracy (empty bins: None)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = _bin_index(confidence, bins)
    table = []
    for k in range(bins):
        inside = index == k
        count = int(inside.sum())
        table.append(
            {
                "lower": k / bins,
                "upper": (k + 1) / bins,
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return table


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum over bins of (rows in the bin / rows) * |accuracy - mean confidence|."""
    total = len(confidence)
    if total == 0:
        return float("nan")
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(confidence, correct, bins)
            if b["count"]
        )
    )


def ece_noise_floor(confidence: np.ndarray, bins: int = ECE_BINS, draws: int = NOISE_DRAWS, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these confidences shows on this many rows, on average: each
    row right with probability equal to its confidence, `draws` times. A measured ECE near it is sampling
    noise, not miscalibration (on a few hundred rows it is several points)."""
    return float(np.mean(ece_noise_draws(confidence, bins, draws, seed))) if len(confidence) else float("nan")


def ece_noise_draws(
    confidence: np.ndarray, bins: int = ECE_BINS, draws: int = NOISE_DRAWS, seed: int = 0
) -> np.ndarray:
    """The ECE of each of `draws` simulated perfectly calibrated models with these confidences."""
    confidence = np.asarray(confidence, dtype=np.float64)
    total = len(confidence)
    index = _bin_index(confidence, bins)
    expected = np.bincount(index, weights=confidence, minlength=bins)  # the confidence sum of each bin
    rng = np.random.default_rng(seed)
    return np.array(
        [
            np.abs(np.bincount(index, weights=rng.random(total) < confidence, minlength=bins) - expected).sum() / total
            for _ in range(draws)
        ]
    )


def _single_label(probabilities: np.ndarray, targets: np.ndarray):
    confidence = probabilities.max(-1)
    correct = probabilities.argmax(-1) == targets
    return confidence, correct


def single_label_ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    return expected_calibration_error(*_single_label(probabilities, np.asarray(targets)), bins)


def multi_label_ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    return expected_calibration_error(np.ravel(probabilities), np.ravel(targets), bins)


def accuracy_at_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> dict[str, float]:
    """Accuracy on the most confident share of rows, for each share: what --min-confidence trades."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    correct = np.asarray(correct, dtype=np.float64)[order]
    confidence = np.asarray(confidence)[order]
    result = {}
    for share in coverages:
        kept = max(1, math.ceil(share * len(order) - 1e-9))  # at least the share
        result[f"{share:.0%}"] = {
            "accuracy": float(correct[:kept].mean()),
            "min_confidence": float(confidence[kept - 1]),
            "rows": kept,
        }
    return result


def calibration_report(probabilities: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> dict[str, Any]:
    """ECE, Brier score, NLL (and for single-label: accuracy at coverage) with the reliability bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    eps = 1e-12
    if multi_label:
        y = np.asarray(targets, dtype=np.float64)
        confidence, correct = np.ravel(p), np.ravel(y)
        report = {
            "ece": expected_calibration_error(confidence, correct),
            "brier": float(((p - y) ** 2).mean()),
            "nll": float(-(y * np.log(np.clip(p, eps, 1)) + (1 - y) * np.log(np.clip(1 - p, eps, 1))).mean()),
            "bins_of": "every (row, label) probability against whether the label is there",
        }
    else:
        y = np.asarray(targets, dtype=np.int64)
        confidence, correct = _single_label(p, y)
        one_hot = np.eye(p.shape[1])[y]
        report = {
            "ece": expected_calibration_error(confidence, correct),
            "brier": float(((p - one_hot) ** 2).sum(-1).mean()),
            "nll": float(-np.log(np.clip(p[np.arange(len(y)), y], eps, 1)).mean()),
            "accuracy_at_coverage": accuracy_at_coverage(confidence, correct),
            "bins_of": "each row's largest probability against whether its label is right",
        }
    report["ece_noise_floor"] = ece_noise_floor(confidence)
    report["bins"] = reliability_bins(confidence, correct)
    return report


# ------------------------------------------------------------------------------------------ after training


@dataclass
class Fitted:
    """What the calibration phase found on the validation rows: the map folded into the output layer
    (`scale * logits + bias`; None: the weights stay as they are), the record for metrics.json and the
    thresholds for run_config.json (None: none chosen)."""

    scale: np.ndarray | None
    bias: np.ndarray | None
    record: dict[str, Any]
    thresholds: dict[str, Any] | None


def what_applies(problem, *, calibration: str, threshold_metric: str, optimize_threshold: str | None) -> list[str]:
    """The steps of the calibration phase this problem and these settings ask for (none for a score)."""
    if not problem.has_labels:
        return []
    steps = ["calibration"] if calibration != "none" else []
    if not problem.one_decision_per_text and threshold_metric != "none":
        steps.append("per-label thresholds")
    if problem.one_decision_per_text and optimize_threshold is not None:
        steps.append("decision threshold")
    return steps


def check_decision_threshold(problem, optimize_threshold: str | None) -> None:
    """--optimize-threshold needs a binary single-label task (checked once the labels are known)."""
    from roberta_ft.errors import ConfigError

    if optimize_threshold is None:
        return
    if not problem.has_labels:
        raise ConfigError("--optimize-threshold needs a classifier, but this task predicts a score", "drop it")
    if problem.one_decision_per_text and len(problem.labels) != 2:
        raise ConfigError(
            f"--optimize-threshold needs a binary task, but this one has {len(problem.labels)} labels",
            "drop --optimize-threshold: a multi-class model predicts its most probable label",
        )


def fit(problem, logits: np.ndarray, targets: np.ndarray, *, calibration: str, threshold_metric: str,
        optimize_threshold: str | None) -> Fitted:  # fmt: skip
    """Calibration (unless `calibration` is "none"), then the thresholds, on the best model's validation logits."""
    logits = np.asarray(logits, dtype=np.float64)
    single = problem.one_decision_per_text
    probabilities = problem.probabilities  # softmax, or a sigmoid per label
    ece = single_label_ece if single else multi_label_ece
    record: dict[str, Any] = {"method": "none", "validation_rows": len(targets), "bins": ECE_BINS}
    record["validation_ece_before"] = ece(probabilities(logits), targets)
    if len(targets) < FEW_ROWS:
        logger.warning(
            "Calibration and thresholds are fitted on only %d validation rows: expect noisy values "
            "(pass a --validation file of a few hundred rows)",
            len(targets),
        )
    scale = bias = None
    if calibration != "none":
        if single:
            temperature = fit_temperature(logits, targets)
            scale, bias = np.full(logits.shape[1], 1.0 / temperature), np.zeros(logits.shape[1])
            record.update(method="temperature", temperature=temperature)
        else:
            scale, bias = fit_label_scaling(logits, targets)
            names = problem.labels.names
            record.update(
                method="label_scaling",
                scale=dict(zip(names, map(float, scale), strict=True)),
                bias=dict(zip(names, map(float, bias), strict=True)),
            )
        logits = logits * scale + bias
        record["validation_ece_after"] = ece(probabilities(logits), targets)
    thresholds = None
    if not single and threshold_metric != "none":
        thresholds = _per_label_thresholds(problem, probabilities(logits), targets, threshold_metric)
    elif single and optimize_threshold is not None:
        positive = problem.positive_id  # --positive-label's, else the second label
        p = probabilities(logits)[:, positive]
        chosen = choose_threshold(p, targets == positive, optimize_threshold)
        if chosen is not None:
            thresholds = {
                "metric": optimize_threshold,
                "positive_label": problem.labels.names[positive],
                "threshold": chosen,
                f"validation_{optimize_threshold}_at_0.5": f_score(p >= 0.5, targets == positive, optimize_threshold),
                f"validation_{optimize_threshold}": f_score(p >= chosen, targets == positive, optimize_threshold),
            }
    return Fitted(scale, bias, record, thresholds)


def _per_label_thresholds(problem, probabilities: np.ndarray, targets: np.ndarray, metric: str) -> dict[str, Any]:
    names = problem.labels.names
    base = problem.threshold
    cutoffs = []
    for j in range(len(names)):
        chosen = choose_threshold(probabilities[:, j], targets[:, j], metric)
        cutoffs.append(base if chosen is None else chosen)
    cutoffs_array = np.asarray(cutoffs)

    def macro(decisions: np.ndarray) -> float:
        return float(np.mean([f_score(decisions[:, j], targets[:, j], metric) for j in range(len(names))]))

    return {
        "metric": metric,
        "per_label": dict(zip(names, map(float, cutoffs), strict=True)),
        f"validation_macro_{metric}_at_{base:g}": macro(probabilities >= base),
        f"validation_macro_{metric}": macro(probabilities >= cutoffs_array),
    }


def fold_into_saved_model(output, fitted: Fitted, *, trust_remote_code: bool = False) -> None:
    """Fold the fitted map into the output layer of the model saved in `output`, and save it again."""
    from roberta_ft import artifacts
    from roberta_ft.modeling import load_trained, output_layer

    model, _ = load_trained(output, trust_remote_code=trust_remote_code)
    fold(output_layer(model), fitted.scale, fitted.bias)
    artifacts.save_pretrained_files(output, model=model)


def describe(fitted: Fitted) -> str:
    """One log line: what was fitted and the validation ECE before and after; the thresholds chosen."""
    record = fitted.record
    parts = []
    if record["method"] == "temperature":
        parts.append(f"temperature {record['temperature']:.3f}")
    elif record["method"] == "label_scaling":
        parts.append("a scale and bias per label")
    if "validation_ece_after" in record:
        parts.append(
            f"validation ECE {record['validation_ece_before']:.2%} -> {record['validation_ece_after']:.2%} "
            f"({record['validation_rows']} rows)"
        )
    thresholds = fitted.thresholds or {}
    if "per_label" in thresholds:
        metric = thresholds["metric"]
        parts.append(
            f"per-label thresholds for {metric} ({min(thresholds['per_label'].values()):.2f} to "
            f"{max(thresholds['per_label'].values()):.2f})"
        )
    elif "positive_label" in thresholds:
        parts.append(f"decision threshold {thresholds['threshold']:.3f} on {thresholds['positive_label']!r}")
    return "Calibration: " + ("; ".join(parts) if parts else "nothing fitted")
