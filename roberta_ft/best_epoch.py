"""Which epoch is best: one rule (the metric, its direction, the patience) for the loop, train and seeds.

The metric is ``--metric-for-best`` if given, else the problem's default (the task's primary metric;
``micro_f1`` for multi-label). Its direction comes from `metrics.greater_is_better`. With
``--early-stopping-patience N`` the run stops after N evaluations without improvement.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roberta_ft.errors import ConfigError
from roberta_ft.metrics import greater_is_better

if TYPE_CHECKING:
    from roberta_ft.config import TrainConfig
    from roberta_ft.problems import Problem
    from roberta_ft.registry import Task


@dataclass(frozen=True)
class BestEpochRule:
    metric: str
    greater_is_better: bool = True
    patience: int | None = None  # evaluations without improvement before stopping; None: never stop early

    @classmethod
    def for_training(cls, task: Task, kind: type[Problem], config: TrainConfig) -> BestEpochRule:
        metric = config.metric_for_best or kind.primary_metric(task)
        if metric is None:
            raise ConfigError(f"task {task.name!r} has no primary metric", "pass --metric-for-best")
        return cls(metric, greater_is_better(metric), config.early_stopping_patience)

    @property
    def worst(self) -> float:
        """A value every real score improves on."""
        return -math.inf if self.greater_is_better else math.inf

    def improves(self, value: float, best: float) -> bool:
        return value > best if self.greater_is_better else value < best

    def best_value(self, best_record: dict[str, Any] | None) -> float:
        return self.worst if best_record is None else best_record[self.metric]

    def should_stop(self, evaluations_without_improvement: int) -> bool:
        return self.patience is not None and evaluations_without_improvement >= self.patience

    def check_produced(self, produced: Sequence[str], *, given: bool) -> None:
        """The metric must be one the validation produces (`given`: named by --metric-for-best, not a default)."""
        if self.metric in produced:
            return
        close = [m for m in produced if m.startswith(self.metric)][:1] or difflib.get_close_matches(
            self.metric, list(produced), n=1
        )
        source = "--metric-for-best" if given else "the task's primary metric"
        raise ConfigError(
            f"{source} {self.metric!r} is not among the validation metrics ({', '.join(produced)})",
            (f"did you mean {close[0]!r}? " if close else "")
            + ("pick one of those" if given else "pass --metric-for-best"),
        )
