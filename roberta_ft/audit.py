"""`audit(config)`: find the wrong labels, duplicates and leaks in a training file before training on it.

k fold runs, each a `train` run (its own lifecycle.Run in DIR/folds/fold-N) on the rows outside its fold; the
rows of the fold are then scored by that run's best model, so every row gets out-of-fold probabilities from
a model that never saw it. Confident learning (the `cleanlab` library, the `[audit]` extra) ranks the labels
those probabilities doubt. Duplicate texts with conflicting labels and rows shared with the validation or
test file are found on the side, cheaply. A stopped audit continues with the folds left (`--resume`).
docs/audit.md describes the outputs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import artifacts
from roberta_ft.config import AuditConfig
from roberta_ft.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

AUDIT_FILE = "audit.json"
ISSUES_FILE = "label_issues.csv"
SCORES_FILE = "scores.csv"
PICTURE = "suspects_per_class.png"
FOLDS_DIR = "folds"
INSTALL_HINT = 'pip install "roberta-ft[audit]"'
# Conflicting duplicate groups and leaked rows listed one by one in audit.json (all are counted).
LISTED = 1000


def check_installed() -> None:
    """cleanlab comes with the `[audit]` extra; without it, one line naming the extra (before any training)."""
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise ConfigError("roberta-ft audit needs the cleanlab library", f"install it: {INSTALL_HINT}") from None


@dataclass
class AuditResult:
    output_dir: Path
    rows: int
    folds: int
    label_names: list[str]
    flagged: int
    per_class: dict[str, dict[str, int]]
    fold_metrics: list[dict[str, Any]]
    duplicates: dict[str, Any]
    leakage: dict[str, Any]
    files: dict[str, str]
    seconds: float
    cleaned: dict[str, Any] | None = None
    top: list[dict[str, Any]] = field(default_factory=list)  # the worst few issues, for the summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "rows": self.rows,
            "folds": self.folds,
            "labels": self.label_names,
            "flagged": self.flagged,
            "per_class": self.per_class,
            "fold_metrics": self.fold_metrics,
            "duplicates": {k: v for k, v in self.duplicates.items() if k != "groups"},
            "leakage": {name: {k: v for k, v in found.items() if k != "rows"} for name, found in self.leakage.items()},
            "cleaned": self.cleaned,
            "files": self.files,
            "seconds": self.seconds,
            "top": self.top,
        }


# ----------------------------------------------------------------------------------------------- the audit


def audit(config: AuditConfig, *, progress: Callable[[], Any] | None = None) -> AuditResult:
    """Audit `config.train.data` into `config.output` (see the module doc). `progress` makes a fresh progress
    display for each fold's run (e.g. ``RichProgress``); None logs."""
    from roberta_ft.data.files import is_file_source
    from roberta_ft.data.labels import LabelMap, encode_column, label_codes
    from roberta_ft.train import read_training_rows

    started = time.perf_counter()
    config.validate()
    check_installed()
    given = config.train  # each fold run resolves the settings given itself, as train does
    settings, task, kind, table = read_training_rows(given)
    if not (kind.has_labels and kind.one_decision_per_text):
        raise ConfigError(
            f"audit ranks the labels of single-label classification; this data is {kind.kind}",
            "audit a file with one class label per row (drop --multi-label)",
        )
    if config.clean and not is_file_source(settings.data):
        raise ConfigError(f"--clean writes a copy of a data file; {settings.data} is a task dataset", "drop --clean")
    codes, values = label_codes(table)
    labels = LabelMap.infer([str(value) for value in values], task)
    given_ids = encode_column(labels, table, source=str(settings.data))
    folds = assign_folds(given_ids, labels.names, config.folds, _split_seed(settings))
    root = _prepare(config, folds)
    texts = table["text"]
    pairs = table["text_pair"] if "text_pair" in table.column_names else None
    lines = np.asarray(table["line"], dtype=np.int64)

    # The cheap checks first: they need no model, and a user sees them before the folds' hours.
    duplicates = find_duplicates(texts, pairs, given_ids, lines, labels.names)
    leakage = _leakage(config, settings, task, kind, texts, pairs, lines)
    _log_cheap_checks(duplicates, leakage)

    probabilities, fold_metrics = _fold_runs(config, given, table, folds, labels.names, given_ids, root, progress)

    issues = find_label_issues(given_ids, probabilities)
    suggested = probabilities.argmax(axis=1)
    files = _write_results(
        root, config, settings, labels.names, given_ids, probabilities, issues, suggested, folds, fold_metrics,
        duplicates, leakage, texts, pairs, lines,
    )  # fmt: skip
    cleaned = None
    if config.clean:
        flagged_lines = lines[issues["flagged"]]
        replacement = dict(zip(flagged_lines.tolist(), suggested[issues["flagged"]].tolist(), strict=True))
        cleaned = write_clean(config, settings, task, table, given_ids, replacement)
        files["clean"] = config.clean
    per_class = _per_class(labels.names, given_ids, issues["flagged"])
    order = issues["ranked"]
    top = [
        {
            "line": int(lines[i]),
            "text": texts[i][:120],
            "given_label": labels.names[given_ids[i]],
            "suggested_label": labels.names[suggested[i]],
            "label_quality": round(float(issues["quality"][i]), 4),
        }
        for i in order[:5]
    ]
    seconds = round(time.perf_counter() - started, 1)
    record = json.loads((root / AUDIT_FILE).read_text(encoding="utf-8"))
    record.update(status="complete", finished=_now(), seconds=seconds, cleaned=cleaned)
    artifacts.write_json(root / AUDIT_FILE, record)
    logger.info(
        "Audit: %d of %d labels flagged (%.1f%%) in %.0fs; worst first in %s",
        int(issues["flagged"].sum()), len(given_ids), 100 * issues["flagged"].mean(), seconds, root / ISSUES_FILE,
    )  # fmt: skip
    return AuditResult(
        root, len(given_ids), config.folds, list(labels.names), int(issues["flagged"].sum()), per_class,
        fold_metrics, duplicates, leakage, files, seconds, cleaned, top,
    )  # fmt: skip


def _split_seed(settings) -> int:
    return settings.seed if settings.split_seed is None else settings.split_seed


def assign_folds(label_ids: np.ndarray, names, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each row: stratified by label, shuffled by `seed`; every class needs a row in
    every fold, else one error naming the class."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(label_ids, minlength=len(names))
    smallest = int(np.argmin(counts))
    if counts[smallest] < folds:
        name, rows = names[smallest], int(counts[smallest])
        hint = (
            f"pass --folds {rows} or fewer, or add rows of {name!r}"
            if rows >= 2
            else f"add rows of {name!r} (every class needs at least 2) or remove that class"
        )
        raise DataError(f"class {name!r} has {rows} row{'s' if rows != 1 else ''}, fewer than --folds {folds}", hint)
    assignment = np.empty(len(label_ids), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(label_ids)), label_ids)):
        assignment[held_out] = fold
    return assignment


# Settings that say how an audit runs, not what it computes: a resumed audit may change them.
_NOT_IDENTITY = ("resume", "overwrite", "workers", "keep_checkpoints", "save_every")


def _fingerprint(folds: np.ndarray, config: AuditConfig) -> str:
    digest = hashlib.sha256(folds.astype("<i8").tobytes())
    settings = {k: v for k, v in config.train.given().items() if k not in _NOT_IDENTITY}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _prepare(config: AuditConfig, folds: np.ndarray) -> Path:
    """The audit's directory: new (or cleared with --overwrite), or with --resume the stopped audit's, which
    must be the same audit (same rows, folds and settings)."""
    root = Path(config.output)
    fingerprint = _fingerprint(folds, config)
    settings = {k: v for k, v in config.to_dict().items() if k not in ("clean", "relabel")}
    if config.train.resume:
        record = _read_record(root)
        if record.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"--resume: {root} holds an audit of other rows, folds or settings",
                "run it with the settings it was started with, or pass --overwrite to start over",
            )
        logger.info("Resuming the audit in %s", root)
        return root
    if not config.train.overwrite and (root / AUDIT_FILE).is_file() and _read_record(root).get("status") != "complete":
        raise ConfigError(
            f"--output {root} holds a stopped audit",
            "add --resume to continue it with the folds left, or pass --overwrite to start over",
        )
    root = artifacts.prepare_output_dir(root, overwrite=bool(config.train.overwrite))
    artifacts.write_json(
        root / AUDIT_FILE,
        {"status": "running", "started": _now(), "settings": settings, "fingerprint": fingerprint},
    )
    return root


def _read_record(root: Path) -> dict[str, Any]:
    path = root / AUDIT_FILE
    if not path.is_file():
        raise ConfigError(f"--resume: {root} holds no audit to resume", "drop --resume to start one there")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"--resume: {path} cannot be read", "pass --overwrite to start over") from None


# ------------------------------------------------------------------------------------------- the fold runs


def _fold_runs(config, given, table, folds, names, given_ids, root, progress):
    """Every fold's out-of-fold probabilities (rows in table order, columns in `names` order) and metrics."""
    from roberta_ft.data.sources import take_rows
    from roberta_ft.train import TrainingRows, train

    k = config.folds
    probabilities = np.full((len(folds), len(names)), np.nan)
    fold_metrics, trained_seconds = [], []
    for fold in range(k):
        number = fold + 1
        held_out = np.flatnonzero(folds == fold)
        output = root / FOLDS_DIR / f"fold-{number}"
        scores_file = root / FOLDS_DIR / f"fold-{number}.npz"
        kept = _read_fold_scores(scores_file, held_out) if config.train.resume else None
        if kept is not None:
            logger.info("Fold %d of %d: kept from the stopped audit (%s)", number, k, scores_file)
            fold_probabilities, metrics = kept
        else:
            estimate = _time_left(trained_seconds, k - fold)
            logger.info(
                "Fold %d of %d: training on %d rows, then scoring its %d held-out rows%s",
                number, k, len(folds) - len(held_out), len(held_out), estimate,
            )  # fmt: skip
            started = time.perf_counter()
            if not _is_complete(output):
                rows = TrainingRows(
                    take_rows(table, np.flatnonzero(folds != fold)),
                    f"{config.train.data}: all rows but fold {number} of {k}",
                )
                # The fold models only score rows for confident learning; a temperature fitted on each fold's
                # small validation share makes their probabilities less comparable across folds (the hermetic
                # audit test ranked 8 of 14 flipped rows on top with it), so folds skip calibration unless
                # --calibration is given.
                uncalibrated = {"calibration": "none"} if given.calibration is None else {}
                run_config = given.replace(output=str(output), **uncalibrated, **_fold_output_mode(output, config))
                result = train(run_config, progress=progress() if progress else None, rows=rows)
                best = result.metrics.get("best", {})
            else:
                best = json.loads((output / artifacts.METRICS).read_text(encoding="utf-8")).get("best", {})
            fold_probabilities = score_rows(output, take_rows(table, held_out), names, given)
            accuracy = float((fold_probabilities.argmax(axis=1) == given_ids[held_out]).mean())
            metrics = {
                "fold": number,
                "train_rows": int(len(folds) - len(held_out)),
                "held_out_rows": int(len(held_out)),
                "held_out_accuracy": accuracy,  # against the labels as given, noise included
                "best_epoch": best.get("epoch"),
                "validation": {k: v for k, v in best.items() if k not in ("epoch", "step") and _is_number(v)},
                "seconds": round(time.perf_counter() - started, 1),
            }
            _write_fold_scores(scores_file, held_out, fold_probabilities, metrics)
            trained_seconds.append(metrics["seconds"])
            logger.info("Fold %d of %d: accuracy %.4f on its held-out rows (given labels)", number, k, accuracy)
        probabilities[held_out] = fold_probabilities
        fold_metrics.append(metrics)
    if np.isnan(probabilities).any():  # a fold scored fewer rows than it holds: never silently
        raise DataError("some rows got no out-of-fold probabilities", "rerun the audit with --overwrite")
    return probabilities, fold_metrics


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _time_left(seconds: list[float], folds_left: int) -> str:
    if not seconds:
        return ""
    left = float(np.mean(seconds)) * folds_left
    return f" (about {left / 60:.0f} min left)" if left >= 90 else f" (about {left:.0f}s left)"


def _is_complete(output: Path) -> bool:
    record = artifacts.read_run_config(output) if output.is_dir() else {}
    return record.get("status") == "complete" and (output / artifacts.WEIGHTS).exists()


def _fold_output_mode(output: Path, config: AuditConfig) -> dict[str, bool]:
    """A fold run's --resume/--overwrite: a stopped run continues from its checkpoint, one stopped before its
    first checkpoint starts over, a new one starts."""
    from roberta_ft import checkpoint

    if not (output.is_dir() and any(output.iterdir())):
        return {"resume": False, "overwrite": False}
    if checkpoint.latest(output) is not None:
        logger.info("Resuming %s from its last checkpoint", output)
        return {"resume": True, "overwrite": False}
    return {"resume": False, "overwrite": True}


def score_rows(model_dir: Path, rows, names, settings) -> np.ndarray:
    """Probabilities of `rows` by the model in `model_dir`, columns in `names` order (forward only)."""
    from scipy.special import softmax

    from roberta_ft import inference

    model = inference.load(
        model_dir, device=settings.device or "auto", precision=settings.precision or "auto",
        trust_remote_code=bool(settings.trust_remote_code),
    )  # fmt: skip
    encoded = model.encode_dataset(rows, model.problem.labels, source=f"{model_dir} held-out rows")
    logits = model.logits(encoded, settings.eval_batch_size or 128)
    own = list(model.problem.labels.names)
    missing = [name for name in names if name not in own]
    if missing:
        raise DataError(f"the fold model in {model_dir} has no label {missing[0]!r}", "add rows of that label")
    return softmax(logits.astype(np.float64), axis=1)[:, [own.index(name) for name in names]]


def _write_fold_scores(path: Path, rows: np.ndarray, probabilities: np.ndarray, metrics: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, rows=rows, probabilities=probabilities, metrics=np.array(json.dumps(metrics)))
    artifacts.atomic_write(path, lambda f: f.write(buffer.getvalue()), binary=True)


def _read_fold_scores(path: Path, rows: np.ndarray):
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            if not np.array_equal(saved["rows"], rows):
                return None
            return saved["probabilities"], json.loads(str(saved["metrics"]))
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------------------- confident learning


def find_label_issues(given: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Confident learning (cleanlab): the rows whose label is flagged (cleanlab's default cut: pruning by
    the estimated noise rates), each row's label-quality score (the probability of its given label,
    "self-confidence": low is suspect) and every row ranked worst first."""
    from cleanlab.filter import find_label_issues as cleanlab_issues
    from cleanlab.rank import get_label_quality_scores

    flagged = np.asarray(cleanlab_issues(labels=given, pred_probs=probabilities), dtype=bool)
    quality = np.asarray(get_label_quality_scores(given, probabilities, method="self_confidence"), dtype=np.float64)
    ranked = np.lexsort((np.arange(len(quality)), quality, ~flagged))  # flagged first, then by quality
    return {"flagged": flagged, "quality": quality, "ranked": ranked}


def noise_estimates(given: np.ndarray, probabilities: np.ndarray, names) -> dict[str, Any]:
    """The confident joint (counts of given label x likely true label) and the noise matrix
    P(given label | true label), estimated by cleanlab."""
    from cleanlab.count import compute_confident_joint, estimate_latent

    joint = compute_confident_joint(given, probabilities)
    _, noise_matrix, _ = estimate_latent(joint, given)
    return {
        "confident_joint": {
            given_name: {true: int(joint[i][j]) for j, true in enumerate(names)} for i, given_name in enumerate(names)
        },
        # noise_matrix[given][true] = P(given | true): each true label's column sums to 1
        "noise_matrix": {
            given_name: {true: round(float(noise_matrix[i][j]), 4) for j, true in enumerate(names)}
            for i, given_name in enumerate(names)
        },
    }


def _per_class(names, given: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, int]]:
    return {
        name: {"rows": int((given == i).sum()), "flagged": int(((given == i) & flagged).sum())}
        for i, name in enumerate(names)
    }


# --------------------------------------------------------------------------------- duplicates and leakage


def normalise(text: str | None) -> str:
    """A text as near-exact duplicates share it: Unicode-normalised, case folded, punctuation dropped,
    whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(text.split())


def _keys(texts, pairs, normalised: bool) -> list:
    clean = normalise if normalised else (lambda text: text or "")
    if pairs is None:
        return [clean(text) for text in texts]
    return [(clean(text), clean(pair)) for text, pair in zip(texts, pairs, strict=True)]


def find_duplicates(texts, pairs, given: np.ndarray, lines: np.ndarray, names) -> dict[str, Any]:
    """Groups of rows with the same text (exact, or near-exact: see `normalise`) but different labels."""
    exact_keys, near_keys = _keys(texts, pairs, False), _keys(texts, pairs, True)
    groups: dict[Any, list[int]] = defaultdict(list)
    for row, key in enumerate(near_keys):
        groups[key].append(row)
    conflicts, repeated_rows = [], 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        repeated_rows += len(rows) - 1
        found = sorted({int(given[row]) for row in rows})
        if len(found) < 2:
            continue
        exact = len({exact_keys[row] for row in rows}) == 1
        conflicts.append(
            {
                "kind": "exact" if exact else "near-exact",
                "lines": [int(lines[row]) for row in rows],
                "labels": [names[given[row]] for row in rows],
                "text": texts[rows[0]][:200],
            }
        )
    conflicts.sort(key=lambda group: group["lines"][0])
    return {
        "duplicate_rows": repeated_rows,  # rows whose (normalised) text an earlier row has, labels aside
        "conflicting_groups": len(conflicts),
        "conflicting_exact": sum(group["kind"] == "exact" for group in conflicts),
        "conflicting_near_exact": sum(group["kind"] == "near-exact" for group in conflicts),
        "conflicting_rows": sum(len(group["lines"]) for group in conflicts),
        "groups": conflicts[:LISTED],
    }


def find_leakage(
    train_texts, train_pairs, train_lines: np.ndarray, other_texts, other_pairs, other_lines, source: str
) -> dict[str, Any]:
    """Rows of another file (validation, test) whose text is also in the training file, exactly or near-exactly."""
    if (train_pairs is None) != (other_pairs is None):
        other_pairs = None if train_pairs is None else [""] * len(other_texts)
    exact = defaultdict(list)
    for row, key in enumerate(_keys(train_texts, train_pairs, False)):
        exact[key].append(row)
    near = defaultdict(list)
    for row, key in enumerate(_keys(train_texts, train_pairs, True)):
        near[key].append(row)
    leaked, exact_count = [], 0
    other_exact, other_near = _keys(other_texts, other_pairs, False), _keys(other_texts, other_pairs, True)
    for row, (key, near_key) in enumerate(zip(other_exact, other_near, strict=True)):
        if key in exact:
            exact_count += 1
            kind, matches = "exact", exact[key]
        elif near_key in near:
            kind, matches = "near-exact", near[near_key]
        else:
            continue
        leaked.append(
            {
                "line": int(other_lines[row]),
                "kind": kind,
                "train_lines": [int(train_lines[m]) for m in matches[:10]],
                "text": other_texts[row][:200],
            }
        )
    return {
        "file": source,
        "rows_checked": len(other_texts),
        "leaked_rows": len(leaked),
        "exact": exact_count,
        "near_exact": len(leaked) - exact_count,
        "rows": leaked[:LISTED],
    }


def _leakage(config: AuditConfig, settings, task, kind, texts, pairs, lines) -> dict[str, Any]:
    from roberta_ft.data.files import is_file_source
    from roberta_ft.train import read_rows

    others = {}
    if settings.validation is not None:
        others["validation"] = (settings.validation, "validation")
    elif not is_file_source(settings.data) and task.load is not None:
        others["validation"] = (settings.data, "validation")
    if config.test is not None:
        others["test"] = (config.test, "test")
    found = {}
    for name, (source, role) in others.items():
        rows = read_rows(settings, source, role, task, kind, need_label=False)
        other_pairs = rows["text_pair"] if "text_pair" in rows.column_names else None
        found[name] = find_leakage(
            texts, pairs, lines, rows["text"], other_pairs, np.asarray(rows["line"]), f"{source} ({role})"
        )
    return found


def _log_cheap_checks(duplicates: dict[str, Any], leakage: dict[str, Any]) -> None:
    if duplicates["conflicting_groups"]:
        first = duplicates["groups"][0]
        logger.warning(
            "%d groups of duplicate texts have conflicting labels (%d exact, %d near-exact), e.g. lines %s: %s",
            duplicates["conflicting_groups"], duplicates["conflicting_exact"], duplicates["conflicting_near_exact"],
            ", ".join(map(str, first["lines"][:5])), " / ".join(first["labels"][:5]),
        )  # fmt: skip
    for name, found in leakage.items():
        if found["leaked_rows"]:
            logger.warning(
                "Leakage: %d of %d %s rows are also in the training file (%d exact, %d near-exact), e.g. line %d",
                found["leaked_rows"], found["rows_checked"], name, found["exact"], found["near_exact"],
                found["rows"][0]["line"],
            )  # fmt: skip
        else:
            logger.info("Leakage: none of the %d %s rows is in the training file", found["rows_checked"], name)


# ---------------------------------------------------------------------------------------------- the outputs


def _write_results(
    root, config, settings, names, given, probabilities, issues, suggested, folds, fold_metrics, duplicates,
    leakage, texts, pairs, lines,
) -> dict[str, str]:  # fmt: skip
    from roberta_ft import plots

    flagged, quality = issues["flagged"], issues["quality"]
    pair_column = ["text_pair"] if pairs is not None else []

    def issues_csv(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(["line", "text", *pair_column, "given_label", "suggested_label", "label_quality", "fold"])
        for row in issues["ranked"]:
            if not flagged[row]:
                break  # ranked: the flagged rows come first
            writer.writerow(
                [int(lines[row]), texts[row], *([pairs[row]] if pairs is not None else []), names[given[row]],
                 names[suggested[row]], f"{quality[row]:.6f}", int(folds[row]) + 1]
            )  # fmt: skip

    def scores_csv(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(
            ["line", "fold", "given_label", "suggested_label", "label_quality", "flagged", *[f"p_{n}" for n in names]]
        )
        for row in range(len(given)):
            writer.writerow(
                [int(lines[row]), int(folds[row]) + 1, names[given[row]], names[suggested[row]],
                 f"{quality[row]:.6f}", int(flagged[row]), *(f"{p:.6f}" for p in probabilities[row])]
            )  # fmt: skip

    artifacts.atomic_write(root / ISSUES_FILE, issues_csv)
    artifacts.atomic_write(root / SCORES_FILE, scores_csv)
    suspects = np.zeros((len(names), len(names)), dtype=np.int64)  # given x suggested, flagged rows only
    np.add.at(suspects, (given[flagged], suggested[flagged]), 1)
    files = {"label_issues": str(root / ISSUES_FILE), "scores": str(root / SCORES_FILE)}
    try:
        plots.suspects_per_class(suspects, np.bincount(given, minlength=len(names)), names, root / PICTURE)
        files["picture"] = str(root / PICTURE)
    except Exception as error:  # a picture is a convenience: its failure never costs the audit
        logger.warning("Could not draw %s: %s", PICTURE, error)
    record = json.loads((root / AUDIT_FILE).read_text(encoding="utf-8"))
    record.update(
        data=str(settings.data),
        rows=len(given),
        folds=config.folds,
        labels=list(names),
        flagged=int(flagged.sum()),
        per_class=_per_class(names, given, flagged),
        suspects={names[i]: {names[j]: int(suspects[i, j]) for j in range(len(names))} for i in range(len(names))},
        **noise_estimates(given, probabilities, names),
        fold_metrics=fold_metrics,
        out_of_fold_accuracy=float((suggested == given).mean()),
        duplicates=duplicates,
        leakage=leakage,
        files={**files, "audit": str(root / AUDIT_FILE)},
    )
    artifacts.write_json(root / AUDIT_FILE, record)
    return {**files, "audit": str(root / AUDIT_FILE)}


def write_clean(config: AuditConfig, settings, task, table, given: np.ndarray, replace: dict[int, int]):
    """--clean OUT: the data file without the flagged rows (their file lines are `replace`'s keys), or with
    --relabel, with each flagged row's label cell set to its suggested label (`replace[line]`), written as
    that label is written elsewhere in the file. Same format, columns and row order; written atomically."""
    from roberta_ft.data.files import detect_format, open_rows
    from roberta_ft.data.sources import load_file

    path = Path(settings.data).expanduser()
    fmt = detect_format(path, settings.format)
    _, columns = load_file(
        path, task=task, text_column=settings.text_column, text_pair_column=settings.text_pair_column,
        label_column=settings.label_column, format=settings.format, encoding=settings.encoding,
        drop_invalid=settings.drop_invalid,
    )  # fmt: skip
    label_of_line = dict(zip(np.asarray(table["line"]).tolist(), given.tolist(), strict=True))
    cells: dict[int, Any] = {}
    if config.relabel:  # the most common cell of each label as written in the file (e.g. 1 for "1", "pos")
        seen: dict[int, Counter] = defaultdict(Counter)
        for line, row in open_rows(path, format=fmt, encoding=settings.encoding).rows:
            if line in label_of_line:
                seen[label_of_line[line]][json.dumps(row.get(columns.label))] += 1
        cells = {label: json.loads(counter.most_common(1)[0][0]) for label, counter in seen.items()}
    encoding = "utf-8" if settings.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else settings.encoding
    with path.open("rb") as handle:
        newline = "\r\n" if b"\r\n" in handle.read(1 << 16) else "\n"
    written = dropped = relabelled = 0

    def write(handle) -> None:
        nonlocal written, dropped, relabelled
        stream = open_rows(path, format=fmt, encoding=settings.encoding)
        text = io.TextIOWrapper(handle, encoding=encoding, newline="", write_through=True)
        if fmt == "jsonl":
            emit = lambda row: text.write(json.dumps(row, ensure_ascii=False) + newline)  # noqa: E731
        else:
            writer = csv.writer(text, delimiter="," if fmt == "csv" else "\t", lineterminator=newline)
            writer.writerow(stream.columns)
            emit = lambda row: writer.writerow(["" if row.get(c) is None else row[c] for c in stream.columns])  # noqa: E731
        for line, row in stream.rows:
            if line in replace:
                if not config.relabel:
                    dropped += 1
                    continue
                row = {**row, columns.label: cells[replace[line]]}
                relabelled += 1
            emit(row)
            written += 1
        text.flush()
        text.detach()

    artifacts.atomic_write(Path(config.clean).expanduser(), write, binary=True)
    logger.info(
        "Wrote %s: %d rows, %s", config.clean, written,
        f"{relabelled} relabelled" if config.relabel else f"{dropped} flagged rows left out",
    )  # fmt: skip
    return {"file": str(config.clean), "rows": written, "dropped": dropped, "relabelled": relabelled}
