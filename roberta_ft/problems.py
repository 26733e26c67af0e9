"""The kinds of problem a classifier solves, one class each: single-label, multi-label and regression.

A problem owns everything that differs between the kinds: how the training labels become a label
map and targets, the model head, the loss, the decision rule (logits to predictions), the metrics,
the per-class report, the rows `predict` writes, whether the validation split is stratified, and
the metric that picks the best epoch by default. Nothing else in the package branches on the kind.

The kind is decided in exactly two places: `for_training` (from the task and the settings) and
`for_model` (from a saved model's config.json). A new kind is one more class here, listed in KINDS.

Output rows (``rows``):

- single-label: ``label`` and ``probability`` (softmax); with ``--top-k K`` (K > 1) ``labels`` and
  ``probabilities``, the K best, best first; with ``--min-confidence P`` also ``abstained``: a row whose
  label's probability is under P has no ``label`` (its probabilities stay);
- multi-label: ``labels`` and ``probabilities`` of every label whose sigmoid reaches its threshold (one for
  all labels, or one per label as chosen on validation rows), best first (at most K with ``--top-k``);
- regression: ``score``.

A binary single-label model may carry a decision threshold (``--optimize-threshold``): its second label is
predicted when that label's probability reaches the threshold, instead of the larger probability winning.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from roberta_ft import metrics, reports
from roberta_ft.data.labels import LabelMap, MultiLabelMap, encode_column, label_codes
from roberta_ft.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets
    import torch

    from roberta_ft.config import TrainConfig
    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray, np.ndarray], dict[str, float]]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


@dataclass(frozen=True)
class CardNotes:
    """What a model card says that depends on the kind (modelcard.py)."""

    tags: tuple[str, ...] = ()
    usage: tuple[str, ...] = ('classifier("An example text")',)  # Python lines after `classifier = pipeline(...)`
    predict_hint: str = "   # --top-k 3: the three best labels"  # after the `roberta-ft predict` line
    settings: tuple[tuple[str, str], ...] = ()  # (setting, Markdown value) rows of the training settings table


class Problem:
    """What every kind provides; `labels` is None for regression."""

    kind: ClassVar[str]  # the name in run_config.json ("problem_type") and in Task.problem_type
    hf_problem_type: ClassVar[str]  # config.json's problem_type: what transformers.pipeline reads
    stratify: ClassVar[bool] = False  # whether the held-out validation split is stratified by label
    one_decision_per_text: ClassVar[bool] = True  # one label id or score per text (a leaderboard file's rows)
    has_labels: ClassVar[bool] = True  # False: the model predicts a score, its data holds numbers
    labels: LabelMap | None = None

    # --- training: settings, labels, head, loss ---------------------------------------------------

    @classmethod
    def check_settings(cls, task: Task, config: TrainConfig) -> None:
        """Refuse settings that do not apply to this kind (before any data is read)."""

    @classmethod
    def primary_metric(cls, task: Task) -> str | None:
        """The metric that picks the best epoch when --metric-for-best is not given."""
        return task.primary_metric

    @classmethod
    def fit(
        cls,
        train_set: datasets.Dataset,
        validation_set: datasets.Dataset,
        *,
        task: Task,
        config: TrainConfig,
        source: str,
        validation_source: str,
    ) -> Problem:
        """The problem with its label map (and class weights) from the training rows; checks the validation rows."""
        raise NotImplementedError

    def head(self) -> dict[str, Any]:
        """config.json settings of the classifier head: num_labels, id2label, label2id, problem_type."""
        assert self.labels is not None
        return {
            "num_labels": len(self.labels),
            "id2label": self.labels.id2label,
            "label2id": self.labels.label2id,
            "problem_type": self.hf_problem_type,
        }

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_weight_table(self) -> dict[str, float] | None:
        """{label: weight in the loss}, for run_config.json; None when the loss is unweighted."""
        return None

    # --- decisions, metrics, reports ---------------------------------------------------------------

    def decide(self, logits: np.ndarray) -> np.ndarray:
        """Predictions from logits: label ids, multi-hot rows or scores."""
        raise NotImplementedError

    def scorer(self, task: Task, extra_metric: str | None = None) -> Scorer:
        """(logits, targets) -> the task's metrics (plus an evaluate metric)."""
        return metrics.scorer(task.metrics, self.decide, extra_metric)

    def perfect_logits(self, targets: np.ndarray) -> np.ndarray:
        """Logits that predict `targets` exactly: what a scorer produces is found by scoring these."""
        raise NotImplementedError

    def report(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any] | None:
        """Per-class table (and confusion matrix where it means something); None when there are no classes."""
        return None

    @property
    def positive_label(self) -> str | None:
        """A binary classifier's positive label: the one whose F1 is the metric `f1`; None for other kinds."""
        return None

    @classmethod
    def check_positive_label(cls, name: str | None) -> None:
        if name is not None:
            raise ConfigError(
                f"--positive-label applies to a single-label classifier of two labels, not to {cls.kind}",
                "drop --positive-label",
            )

    def with_positive_label(self, name: str | None) -> Problem:
        """This problem with `name` as its positive label (refused where there is none to choose)."""
        self.check_positive_label(name)
        return self

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The probabilities of the labels (softmax, or a sigmoid per label)."""
        raise NotImplementedError

    def calibration(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any] | None:
        """How calibrated the probabilities are (calibration.calibration_report); None for a score."""
        return None

    def with_chosen_thresholds(self, chosen: dict[str, Any], explicit: float | None = None) -> Problem:
        """The problem with the thresholds training chose (run_config.json "thresholds"); `explicit`
        (--threshold) wins over them."""
        return self

    def with_threshold(self, threshold: float) -> Problem | None:
        """The problem deciding by `threshold` (a request's own); None when a threshold does not apply."""
        return None

    def abstaining(self, min_confidence: float | None) -> Problem:
        """The problem whose rows abstain below `min_confidence` (--min-confidence); single-label only."""
        if min_confidence is None:
            return self
        raise ConfigError(
            f"--min-confidence needs a single-label classifier, but this model is {self.kind.replace('_', '-')}",
            "drop --min-confidence",
        )

    # --- prediction rows ----------------------------------------------------------------------------

    def check_top_k(self, top_k: int | None) -> None:
        if top_k is None:
            return
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}", "pass e.g. --top-k 3")
        assert self.labels is not None
        if top_k > len(self.labels):
            raise ConfigError(
                f"--top-k {top_k} is more than the model's {len(self.labels)} labels",
                f"pass --top-k {len(self.labels)}",
            )

    def output_fields(self, top_k: int | None) -> list[str]:
        raise NotImplementedError

    def rows(self, logits: np.ndarray, top_k: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def reordered(self, names: Sequence[str]) -> Problem:
        """The same problem with its labels in the order `names` (a permutation of them)."""
        return self

    def card_notes(self) -> CardNotes:
        return CardNotes()


@dataclass(frozen=True)
class SingleLabel(Problem):
    """One label per text: softmax over the labels, (weighted) cross-entropy."""

    kind: ClassVar[str] = "single_label"
    hf_problem_type: ClassVar[str] = "single_label_classification"
    stratify: ClassVar[bool] = True
    labels: LabelMap | None = None
    class_weights: tuple[float, ...] | None = None  # per label id, in the loss
    # Binary: the positive label's id: `f1` is its F1, and a decision threshold (--optimize-threshold) decides on
    # its probability; None: id 1 (the second label).
    positive: int | None = None
    # A binary model's decision threshold: label `positive` when its probability reaches it; None: the largest
    # probability wins.
    decision_threshold: float | None = None
    min_confidence: float | None = None  # rows whose label's probability is under it abstain (no label)

    @property
    def positive_id(self) -> int:
        return 1 if self.positive is None else self.positive

    @classmethod
    def check_positive_label(cls, name):
        pass  # checked against the labels (with_positive_label)

    @property
    def positive_label(self):
        if self.labels is None or len(self.labels) != 2:
            return None
        return self.labels.names[1 if self.positive is None else self.positive]

    def with_positive_label(self, name: str | None) -> SingleLabel:
        """This problem with `name` as its positive label (checked: a binary classifier, one of its labels)."""

        if name is None:
            return self
        assert self.labels is not None
        names = list(self.labels.names)
        if len(names) != 2:
            raise ConfigError(
                f"--positive-label applies to two labels, but there are {len(names)} ({', '.join(map(repr, names))})",
                "drop --positive-label (macro_f1 averages over every label)",
            )
        if name not in names:
            matches = [n for n in names if n.lower() == str(name).lower()]
            if len(matches) != 1:
                raise ConfigError(
                    f"--positive-label {name!r} is not a label (the labels are {', '.join(map(repr, names))})",
                    f"pass --positive-label {names[1]} or --positive-label {names[0]}",
                )
            name = matches[0]
        return dataclasses.replace(self, positive=names.index(name))

    def scorer(self, task, extra_metric=None):
        if self.positive is None or self.positive == 1 or self.labels is None or len(self.labels) != 2:
            return super().scorer(task, extra_metric)
        # Metrics take id 1 as the positive label (f1): with the positive label at id 0, both ids swap places;
        # accuracy, macro_f1 and mcc are the same either way.
        compute = metrics.scorer(task.metrics, lambda logits: 1 - self.decide(logits), extra_metric)
        return lambda logits, references: compute(logits, 1 - np.asarray(references))

    @classmethod
    def fit(cls, train_set, validation_set, *, task, config, source, validation_source) -> SingleLabel:
        from roberta_ft import imbalance

        label_map = LabelMap.infer(label_codes(train_set)[1], task)
        label_ids = encode_column(label_map, train_set, source=source)
        counts = np.bincount(label_ids, minlength=len(label_map))
        if (counts > 0).sum() < 2:
            raise DataError(
                f"the training data has only one class ({label_map.names[int(counts.argmax())]!r})",
                "a classifier needs at least two labels; check --label-column",
            )
        logger.info("Labels (%d): %s", len(label_map), ", ".join(label_map.names))
        _check_validation_labels(label_map, validation_set, validation_source)
        class_weights = None
        if config.class_weights is not None:
            class_weights = imbalance.resolve_class_weights(config.class_weights, label_ids, label_map.names)
            logger.info(
                "Class weights: %s",
                ", ".join(f"{n} {w:.3g}" for n, w in zip(label_map.names, class_weights, strict=True)),
            )
        problem = cls(label_map, class_weights).with_positive_label(getattr(config, "positive_label", None))
        if problem.positive_label is not None:
            logger.info("Positive label (its F1 is f1): %s", problem.positive_label)
        return problem

    def loss(self, logits, targets):
        import torch

        weights = None
        if self.class_weights is not None:
            weights = torch.tensor(self.class_weights, dtype=torch.float32).to(logits.device)
        return torch.nn.functional.cross_entropy(logits.float(), targets, weight=weights)

    def class_weight_table(self):
        if self.class_weights is None or self.labels is None:
            return None
        return dict(zip(self.labels.names, self.class_weights, strict=True))

    def decide(self, logits):
        if self.decision_threshold is None:
            return logits.argmax(-1)
        chosen = softmax(logits)[:, self.positive_id] >= self.decision_threshold
        return np.where(chosen, self.positive_id, 1 - self.positive_id)

    def perfect_logits(self, targets):
        assert self.labels is not None
        return np.eye(len(self.labels), dtype=np.float32)[targets] * 8

    def probabilities(self, logits):
        return softmax(logits)

    def calibration(self, logits, targets):
        from roberta_ft.calibration import calibration_report

        return calibration_report(softmax(logits), targets, multi_label=False)

    def abstaining(self, min_confidence):
        return dataclasses.replace(self, min_confidence=min_confidence)

    def with_threshold(self, threshold):
        return None if self.decision_threshold is None else dataclasses.replace(self, decision_threshold=threshold)

    def with_chosen_thresholds(self, chosen, explicit=None):
        assert self.labels is not None
        positive = chosen.get("positive_label")
        if positive is None or positive not in self.labels.names:
            return self
        value = explicit if explicit is not None else float(chosen["threshold"])
        return self.with_decision_threshold(value, self.labels.names.index(positive))

    def with_decision_threshold(self, threshold: float | None, positive: int | None = None) -> SingleLabel:
        """A binary model deciding by a threshold on label `positive`'s probability."""
        assert self.labels is not None
        if threshold is not None and len(self.labels) != 2:
            raise ConfigError(
                f"a decision threshold needs a binary classifier, but this one has {len(self.labels)} labels",
                "drop --threshold: a multi-class model predicts its most probable label",
            )
        return dataclasses.replace(
            self, decision_threshold=threshold, positive=self.positive if positive is None else positive
        )

    def report(self, logits, targets):
        assert self.labels is not None
        return reports.classification_report(self.decide(logits), targets, self.labels.names)

    def output_fields(self, top_k):
        fields = ["labels", "probabilities"] if (top_k or 1) > 1 else ["label", "probability"]
        return fields + (["abstained"] if self.min_confidence is not None else [])

    def rows(self, logits, top_k=None):
        assert self.labels is not None
        names = self.labels.names
        probabilities = softmax(logits)
        best = self.decide(logits)
        confidence = probabilities[np.arange(len(best)), best]
        if (top_k or 1) == 1:
            rows = [
                {"label": names[k], "probability": round(float(c), 6)}
                for k, c in zip(best.tolist(), confidence, strict=True)
            ]
        else:
            order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
            rows = [_ranked(names, p, ranked) for p, ranked in zip(probabilities, order, strict=True)]
        if self.min_confidence is not None:
            for row, c in zip(rows, confidence, strict=True):
                row["abstained"] = bool(c < self.min_confidence)
                if row["abstained"] and "label" in row:
                    row["label"] = None  # no label; the probability stays (top-k rows keep their ranking)
        return rows

    def reordered(self, names):
        assert self.labels is not None
        positive = self.positive
        if positive is not None and len(names) == 2:
            positive = list(names).index(self.labels.names[positive])
        return dataclasses.replace(self, labels=LabelMap(tuple(names)), positive=positive)


@dataclass(frozen=True)
class MultiLabel(Problem):
    """Any number of labels per text ("sports|politics"): one sigmoid per label, binary cross-entropy."""

    kind: ClassVar[str] = "multi_label"
    hf_problem_type: ClassVar[str] = "multi_label_classification"
    one_decision_per_text: ClassVar[bool] = False
    labels: MultiLabelMap | None = None
    threshold: float = 0.5  # a label is predicted when its probability reaches it
    thresholds: tuple[float, ...] | None = None  # one per label id (chosen on validation rows): instead of threshold

    def cutoffs(self) -> np.ndarray:
        """Each label's threshold, in label id order."""
        assert self.labels is not None
        if self.thresholds is not None:
            return np.asarray(self.thresholds, dtype=np.float64)
        return np.full(len(self.labels), self.threshold, dtype=np.float64)

    @classmethod
    def check_settings(cls, task, config) -> None:
        if config.metric is not None:
            raise ConfigError("--metric (an evaluate metric) does not take multi-label predictions", "drop --metric")
        if config.class_weights is not None:
            raise ConfigError(
                "--class-weights weighs the classes of a single-label classifier, not the labels of --multi-label",
                "drop --class-weights",
            )

    @classmethod
    def primary_metric(cls, task) -> str:
        return "micro_f1"

    @classmethod
    def fit(cls, train_set, validation_set, *, task, config, source, validation_source) -> MultiLabel:
        label_map = MultiLabelMap.infer(label_codes(train_set)[1], config.label_separator, task)
        counts = encode_column(label_map, train_set, source=source).sum(axis=0)
        logger.info(
            "Labels (%d, multi-label): %s",
            len(label_map),
            ", ".join(f"{n} ({int(c)})" for n, c in zip(label_map.names, counts, strict=True)),
        )
        encode_column(label_map, validation_set, source=validation_source)
        return cls(label_map, config.threshold)

    def loss(self, logits, targets):
        import torch

        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def decide(self, logits):
        return (sigmoid(logits) >= self.cutoffs()).astype(np.int64)

    def with_threshold(self, threshold):
        return dataclasses.replace(self, threshold=threshold, thresholds=None)

    def with_chosen_thresholds(self, chosen, explicit=None):
        assert self.labels is not None
        per_label = chosen.get("per_label")
        if explicit is not None or not per_label:
            return self
        cutoffs = tuple(float(per_label.get(name, self.threshold)) for name in self.labels.names)
        return dataclasses.replace(self, thresholds=cutoffs)

    def probabilities(self, logits):
        return sigmoid(logits)

    def calibration(self, logits, targets):
        from roberta_ft.calibration import calibration_report

        return calibration_report(sigmoid(logits), targets, multi_label=True)

    def scorer(self, task, extra_metric=None):
        return metrics.scorer(metrics.multilabel_metrics, self.decide)  # --metric is refused by check_settings

    def perfect_logits(self, targets):
        return targets.astype(np.float32) * 8 - 4

    def report(self, logits, targets):
        assert self.labels is not None
        return reports.multilabel_report(self.decide(logits), targets, self.labels.names)

    def output_fields(self, top_k):
        return ["labels", "probabilities"]

    def rows(self, logits, top_k=None):
        assert self.labels is not None
        probabilities = sigmoid(logits)
        order = np.argsort(-probabilities, axis=-1, kind="stable")
        cutoffs = self.cutoffs()
        rows = []
        for p, ranked in zip(probabilities, order, strict=True):
            chosen = [k for k in ranked if p[k] >= cutoffs[k]][: top_k or None]
            rows.append(_ranked(self.labels.names, p, chosen))
        return rows

    def reordered(self, names):
        assert self.labels is not None
        thresholds = None
        if self.thresholds is not None:
            by_name = dict(zip(self.labels.names, self.thresholds, strict=True))
            thresholds = tuple(by_name[name] for name in names)
        return MultiLabel(MultiLabelMap(tuple(names), self.labels.separator), self.threshold, thresholds)

    def card_notes(self):
        assert self.labels is not None
        separator = self.labels.separator.replace("|", "\\|")
        if self.thresholds is not None:
            table = ", ".join(f'"{n}": {t:.4g}' for n, t in zip(self.labels.names, self.thresholds, strict=True))
            return CardNotes(
                tags=("multi-label-classification",),
                usage=(
                    "# One sigmoid per label, each with its own threshold (chosen on the validation rows)",
                    f"thresholds = {{{table}}}",
                    'scores = classifier("An example text", top_k=None)',
                    'labels = [s["label"] for s in scores if s["score"] >= thresholds[s["label"]]]',
                ),
                predict_hint="",
                settings=(("multi-label", f"per-label thresholds, separator `{separator}`"),),
            )
        return CardNotes(
            tags=("multi-label-classification",),
            usage=(
                f"# One sigmoid per label: keep those with a score of at least {self.threshold}",
                'scores = classifier("An example text", top_k=None)',
                f'labels = [s["label"] for s in scores if s["score"] >= {self.threshold}]',
            ),
            predict_hint="",
            settings=(("multi-label", f"threshold {self.threshold}, separator `{separator}`"),),
        )


@dataclass(frozen=True)
class Regression(Problem):
    """A score per text (STS-B): one output, mean squared error."""

    kind: ClassVar[str] = "regression"
    hf_problem_type: ClassVar[str] = "regression"
    has_labels: ClassVar[bool] = False

    @classmethod
    def check_settings(cls, task, config) -> None:
        if config.class_weights is not None:
            raise ConfigError(
                f"--class-weights does not apply to regression task {task.name!r}", "drop --class-weights"
            )

    @classmethod
    def fit(cls, train_set, validation_set, *, task, config, source, validation_source) -> Regression:
        return cls()

    def head(self):
        return {"num_labels": 1, "problem_type": self.hf_problem_type}

    def loss(self, logits, targets):
        import torch

        return torch.nn.functional.mse_loss(logits.float().squeeze(-1), targets.float())

    def decide(self, logits):
        return logits[:, 0]

    def perfect_logits(self, targets):
        return targets.astype(np.float32)[:, None]

    def check_top_k(self, top_k):
        if top_k is not None:
            raise ConfigError(
                "--top-k needs a classifier, but this model predicts a score (regression)", "drop --top-k"
            )

    def output_fields(self, top_k):
        return ["score"]

    def rows(self, logits, top_k=None):
        return [{"score": round(float(value), 6)} for value in logits[:, 0]]

    def card_notes(self):
        return CardNotes(
            usage=('classifier("An example text", function_to_apply="none")  # {"label": ..., "score": the score}',),
            predict_hint="   # a score per text",
        )


KINDS: dict[str, type[Problem]] = {kind.kind: kind for kind in (SingleLabel, MultiLabel, Regression)}


def kind_of(task: Task) -> type[Problem]:
    """The kind a task declares (`Task.problem_type`); a plugin naming no known kind is refused here."""
    kind = KINDS.get(task.problem_type)
    if kind is None:
        raise ConfigError(
            f"task {task.name!r} has problem_type {task.problem_type!r}",
            f"fix the task plugin: use one of {', '.join(KINDS)}",
        )
    return kind


def predicts_scores(task: Task) -> bool:
    """Whether the task's labels are numbers (a score per text), not names."""
    return not kind_of(task).has_labels


def for_training(task: Task, config: TrainConfig) -> type[Problem]:
    """The kind a training run solves: the task's, or multi-label with --multi-label. Checks the settings."""
    kind = kind_of(task)
    if config.multi_label:
        if kind is Regression:
            raise ConfigError(f"--multi-label does not apply to regression task {task.name!r}", "drop --multi-label")
        kind = MultiLabel
    kind.check_settings(task, config)
    kind.check_positive_label(config.positive_label)
    return kind


def for_model(model_config, *, threshold: float = 0.5, separator: str = "|") -> Problem:
    """The problem a saved model solves, from its config.json (its head size, problem_type and label names)."""
    if model_config.problem_type == Regression.hf_problem_type or model_config.num_labels == 1:
        return Regression()
    names = tuple(model_label_names(model_config))
    if model_config.problem_type == MultiLabel.hf_problem_type:
        return MultiLabel(MultiLabelMap(names, separator), threshold)
    return SingleLabel(LabelMap(names))


def model_label_names(model_config) -> list[str]:
    id2label = {int(k): v for k, v in (model_config.id2label or {}).items()}
    if len(id2label) != model_config.num_labels:
        raise ConfigError(
            f"the model config has {model_config.num_labels} outputs but {len(id2label)} label names",
            "save the model with a complete id2label mapping in config.json",
        )
    return [id2label[i] for i in range(model_config.num_labels)]


def _ranked(names: Sequence[str], probabilities: np.ndarray, chosen) -> dict[str, Any]:
    chosen = [int(k) for k in chosen]
    return {"labels": [names[k] for k in chosen], "probabilities": [round(float(probabilities[k]), 6) for k in chosen]}


def _check_validation_labels(label_map: LabelMap, validation_set, source: str) -> None:
    """A validation label the training data never had: said before any model is built."""
    codes, values = label_codes(validation_set)
    lines = validation_set["line"] if "line" in validation_set.column_names else None
    unseen: dict[str, int] = {}
    for code, label in enumerate(values):
        if label not in label_map.label2id:
            try:
                label_map.encode([label], source=source)  # also accepts case and integer-coded variants
            except DataError:
                first = int(np.argmax(codes == code))
                unseen[label] = int(lines[first]) if lines is not None else first + 1
    unseen = dict(sorted(unseen.items(), key=lambda item: item[1]))  # in file order, as they are met
    if unseen:
        shown = ", ".join(f"{name!r} (line {line})" for name, line in list(unseen.items())[:3])
        raise DataError(
            f"{source}: validation label {shown} never occurs in the training data",
            f"the training labels are {', '.join(map(repr, label_map.names))}; add training rows with it "
            "or fix the validation data",
        )
