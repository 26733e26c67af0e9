"""What a run leaves beside the model for people to read: reports, pictures, data fingerprints.

Training writes ``validation_report.json`` and ``confusion_matrix.png`` (the best epoch on the
validation set) and ``training_curves.png``; ``eval`` writes ``eval_report.json``,
``eval_confusion_matrix.png`` and ``reliability.png`` (calibration). Pictures are best effort: a failure to draw one is logged, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import artifacts
from roberta_ft.data.files import file_sha256

logger = logging.getLogger(__name__)

TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
VALIDATION_REPORT = "validation_report.json"
EVAL_REPORT = "eval_report.json"


def data_files(**sources: str | None) -> dict[str, dict[str, Any]]:
    """{role: {"path", "bytes", "sha256"}} for each source that is a local file (task datasets have none)."""
    found = {}
    for role, source in sources.items():
        if source is not None and Path(source).expanduser().is_file():
            path = Path(source).expanduser()
            found[role] = {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    return found


def classification_report(predictions: np.ndarray, references: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and the confusion matrix (rows: true, columns: predicted)."""
    from roberta_ft.metrics import confusion_matrix, precision_recall_f1_support

    labels = list(range(len(names)))
    return {
        "per_class": per_class_table(precision_recall_f1_support(predictions, references, labels), names),
        "confusion_matrix": confusion_matrix(predictions, references, labels).tolist(),
        "labels": list(names),
    }


def multilabel_report(predictions: np.ndarray, references: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Per-label precision/recall/F1/support of multi-hot rows (no confusion matrix: a row may have any number
    of labels)."""
    from roberta_ft.metrics import precision_recall_f1_support

    scores = precision_recall_f1_support(predictions, references.astype(np.int64), range(len(names)))
    return {"per_class": per_class_table(scores, names), "labels": list(names)}


def per_class_table(scores, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """(precision, recall, f1, support) arrays as {label name: {metric: value}}."""
    precision, recall, f1, support = scores
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }


class ValidationWatcher:
    """Computes each epoch's validation metrics (texts, not windows) and keeps the latest epoch's report.

    `metrics(logits)` is the loop's metrics callback; `best_report()` is the per-class report of the
    epoch just scored, for `on_best` (the loop calls it right after the metrics of the same epoch).
    """

    def __init__(
        self,
        compute: Callable[[np.ndarray, np.ndarray], dict[str, float]],
        to_texts: Callable[[np.ndarray], np.ndarray],
        targets: np.ndarray,
        report: Callable[[np.ndarray, np.ndarray], dict[str, Any] | None],
    ) -> None:
        self.compute, self.to_texts, self.targets, self.report = compute, to_texts, targets, report
        self.logits: np.ndarray | None = None

    def metrics(self, logits: np.ndarray) -> dict[str, float]:
        self.logits = self.to_texts(logits)
        return self.compute(self.logits, self.targets)

    def best_report(self) -> dict[str, Any] | None:
        return None if self.logits is None else self.report(self.logits, self.targets)


def write_best_epoch(output: Path, report: dict[str, Any] | None, record: dict[str, Any]) -> None:
    """validation_report.json of the best epoch so far; its picture is drawn once, when the run ends
    (`draw_best_epoch`), not at every better epoch."""
    if report is None:
        return
    artifacts.write_json(output / VALIDATION_REPORT, {"epoch": record["epoch"], "step": record["step"], **report})


def draw_best_epoch(output: Path) -> None:
    """confusion_matrix.png of the best epoch's validation_report.json, if the run wrote one with a matrix."""
    try:
        report = json.loads((Path(output) / VALIDATION_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if "confusion_matrix" in report:
        _draw(
            lambda plots: plots.confusion_matrix(
                report["confusion_matrix"],
                report["labels"],
                output / CONFUSION_MATRIX,
                title=f"Validation, best epoch ({report['epoch']})",
            ),
            output / CONFUSION_MATRIX,
        )


def write_training_curves(output: Path, metrics: dict[str, Any]) -> None:
    if metrics.get("epochs"):
        _draw(lambda plots: plots.training_curves(metrics, output / TRAINING_CURVES), output / TRAINING_CURVES)


OPTIMIZATION_HISTORY = "optimization_history.png"
PARAM_IMPORTANCES = "param_importances.png"


def write_study_pictures(output: Path, study) -> list[str]:
    """A study's optimization history and parameter importances (Optuna's matplotlib drawings), best effort."""
    from optuna.trial import TrialState

    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete and _draw(
        lambda plots: plots.optimization_history(study, output / OPTIMIZATION_HISTORY), output / OPTIMIZATION_HISTORY
    ):
        written.append(OPTIMIZATION_HISTORY)
    # Importances need two complete trials that differ in some searched setting.
    if len({json.dumps(trial.params, sort_keys=True) for trial in complete}) >= 2 and _draw(
        lambda plots: plots.param_importances(study, output / PARAM_IMPORTANCES), output / PARAM_IMPORTANCES
    ):
        written.append(PARAM_IMPORTANCES)
    return written


def read_validation_report(output: Path) -> dict[str, Any] | None:
    path = Path(output) / VALIDATION_REPORT
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, ValueError):
        return None


def eval_report_paths(model_dir: Path, report: str | None) -> tuple[Path, Path]:
    """Where eval writes its report and confusion matrix: --report PATH, else the model dir."""
    path = Path(report) if report else Path(model_dir) / EVAL_REPORT
    return path, path.with_name(f"{path.stem.removesuffix('_report')}_confusion_matrix.png")


def reliability_path(report_path: Path) -> Path:
    """eval's reliability diagram beside its report: reliability.png (X_reliability.png for --report X_report.json)."""
    stem = report_path.stem.removesuffix("_report")
    return report_path.with_name("reliability.png" if stem == "eval" else f"{stem}_reliability.png")


def write_eval_report(result: dict[str, Any], path: Path, picture: Path, *, required: bool) -> dict[str, str]:
    """eval_report.json (atomically) and the confusion matrix picture; {"report": ..., "confusion_matrix": ...}.

    A report the user asked for (`required`) that cannot be written is an error; the default one in a
    read-only model directory is only a warning.
    """
    written: dict[str, str] = {}
    try:
        artifacts.write_json(path, result)
    except OSError as exc:
        if required:
            with artifacts.writing(path, "--report"):
                raise
        logger.warning("Could not write %s (%s); pass --report PATH to write it elsewhere", path, exc.strerror)
        return written
    written["report"] = str(path)
    report = result.get("report") or {}
    if "confusion_matrix" in report:
        title = f"{result.get('task')} · {Path(str(result.get('data'))).name} · {result.get('num_examples')} examples"
        if _draw(
            lambda plots: plots.confusion_matrix(report["confusion_matrix"], report["labels"], picture, title=title),
            picture,
        ):
            written["confusion_matrix"] = str(picture)
    calibration = result.get("calibration") or {}
    if calibration.get("bins"):
        reliability = reliability_path(path)
        title = f"{result.get('task')} · {Path(str(result.get('data'))).name} · ECE {calibration['ece']:.2%}"
        if _draw(
            lambda plots: plots.reliability_diagram([("model", calibration["bins"])], reliability, title=title),
            reliability,
        ):
            written["reliability"] = str(reliability)
    return written


def _draw(draw: Callable[[Any], Any], path: Path) -> bool:
    try:
        from roberta_ft import plots

        draw(plots)
        return True
    except Exception as exc:  # a picture is never worth a failed run
        logger.warning("Could not draw %s: %s", path.name, exc)
        return False


def pictures(output: Path) -> list[str]:
    """The pictures of a training output dir that exist, for the model card."""
    return [name for name in (TRAINING_CURVES, CONFUSION_MATRIX) if (Path(output) / name).exists()]
