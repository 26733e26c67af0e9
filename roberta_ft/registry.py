"""Task plugins: a task is data (names, labels, fields) plus a loader and a metric function.

Built-in tasks and third-party tasks register the same way, through the ``roberta_ft.tasks``
entry-point group. An entry point may name a ``Task``, an iterable of tasks, or a callable
returning either.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from roberta_ft.errors import ConfigError, UnknownTaskError

if TYPE_CHECKING:
    import datasets
    import numpy as np

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "roberta_ft.tasks"

# (source, split) -> datasets.Dataset with the standard columns: "text", optionally
# "text_pair", and "label" (a label name, or a float for regression; absent for unlabelled test splits).
Loader = Callable[[str | None, str], "datasets.Dataset"]
# (predictions, references) -> {"metric name": value}; label ids (or floats for regression).
MetricFunction = Callable[["np.ndarray", "np.ndarray"], dict[str, float]]
# (task, row indices, predictions, folder) -> the leaderboard file written; predictions are label ids or scores.
SubmissionWriter = Callable[["Task", Sequence[int], Sequence[Any], str], Any]
# Keys of `extras` that were read by roberta-ft before 0.2 and are typed fields now.
_FORMER_EXTRAS = {
    "recipe": "recipes",
    "published": "published",
    "published_metric": "published_metric",
    "published_source": "published_source",
    "write_submission": "write_submission",
}


@dataclass(frozen=True)
class Task:
    name: str
    metrics: MetricFunction
    text_fields: tuple[str, ...] = ("text",)
    label_names: tuple[str, ...] | None = None
    problem_type: str = "single_label"
    load: Loader | None = None
    primary_metric: str = "accuracy"
    description: str = ""
    # Split names the loader understands for each role (GLUE's MNLI calls its dev set "validation_matched").
    splits: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )
    # Well-known public datasets this task's loader accepts by name (shown by `roberta-ft tasks`).
    known_datasets: tuple[str, ...] = ()
    # Where the task's own data comes from when the user names only the task (e.g. "glue/rte").
    default_source: str | None = None
    # Published fine-tuning settings: `--recipe NAME` -> TrainConfig settings (a recipe may name its `model`).
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Published dev-set scores (x100) by base model, on `published_metric` (None: the primary metric).
    published: Mapping[str, float] = field(default_factory=dict)
    published_metric: str | None = None
    published_source: str | None = None
    # How `predict MODEL TASK --split test --submission DIR` writes the task's leaderboard file.
    write_submission: SubmissionWriter | None = None
    # The plugin's own data (GLUE keeps its folder and file names here); roberta-ft never reads it.
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The problem kind is checked where the kinds live (problems.kind_of): the registry knows no layer above it.
        if not self.name or any(c.isspace() for c in self.name):
            raise ConfigError(f"invalid task name {self.name!r}", "use a non-empty name without spaces")
        if not isinstance(self.problem_type, str) or not self.problem_type:
            raise ConfigError(
                f"task {self.name!r} has problem_type {self.problem_type!r}", "name a problem kind, e.g. single_label"
            )
        if len(self.text_fields) not in (1, 2):
            raise ConfigError(f"task {self.name!r} has {len(self.text_fields)} text fields", "use one field or a pair")
        moved = [key for key in self.extras if key in _FORMER_EXTRAS]
        if moved:
            raise ConfigError(
                f"task {self.name!r} sets extras[{moved[0]!r}], which is a Task field since roberta-ft 0.2",
                f"pass Task({_FORMER_EXTRAS[moved[0]]}=...) instead (see CHANGELOG.md)",
            )

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2


_registry: dict[str, Task] = {}
_sources: dict[str, str] = {}
_discovered = False


def register_task(task: Task, *, source: str = "register_task") -> Task:
    """Add a task; a second task with the same name is an error, never a silent override."""
    if task.name in _registry:
        raise ConfigError(
            f"task {task.name!r} is registered twice (by {_sources[task.name]} and by {source})",
            "rename one of the tasks or uninstall the duplicate plugin",
        )
    _registry[task.name] = task
    _sources[task.name] = source
    return task


def _tasks_from(obj: Any) -> Iterable[Task]:
    if isinstance(obj, Task):
        return [obj]
    if callable(obj):
        return _tasks_from(obj())
    if isinstance(obj, Iterable):
        tasks = list(obj)
        if all(isinstance(t, Task) for t in tasks):
            return tasks
    raise ConfigError(f"task plugin object {obj!r} is not a Task", "an entry point must name a Task or a list of Tasks")


def discover() -> None:
    """Load every installed task plugin once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        source = f"entry point {entry_point.name!r} ({entry_point.value})"
        try:
            loaded = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must not break the others
            logger.warning("skipping task plugin %s: %s", source, exc)
            continue
        for task in _tasks_from(loaded):
            register_task(task, source=source)


def available_tasks() -> dict[str, Task]:
    discover()
    return dict(sorted(_registry.items()))


def get_task(name: str) -> Task:
    tasks = available_tasks()
    if name in tasks:
        return tasks[name]
    lowered = {key.lower(): key for key in tasks}
    if name.lower() in lowered:
        return tasks[lowered[name.lower()]]
    close = difflib.get_close_matches(name, list(tasks), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UnknownTaskError(
        f"unknown task {name!r}", f"{hint}available tasks: {', '.join(tasks)}; see `roberta-ft tasks`"
    )


def _reset_for_tests() -> None:
    global _discovered
    _registry.clear()
    _sources.clear()
    _discovered = False
