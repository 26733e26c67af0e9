"""Published fine-tuning recipes (``--recipe``) and the published dev scores they reach.

A task plugin carries both as data: ``task.extras["recipe"]`` maps a recipe name to TrainConfig
settings, and ``task.extras["published"]`` maps a base model to its published score (x100) on the
metric ``task.extras["published_metric"]`` (the primary metric when absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roberta_ft.errors import ConfigError
from roberta_ft.registry import Task


def recipe_names(task: Task) -> list[str]:
    return list(task.extras.get("recipe") or {})


def tasks_with_recipes() -> list[str]:
    from roberta_ft.registry import available_tasks

    return [name for name, task in available_tasks().items() if recipe_names(task)]


def apply_recipe(values: Mapping[str, Any], task: Task) -> dict[str, Any]:
    """Settings with the recipe named by ``values["recipe"]`` filled in under them.

    ``values`` holds only the settings given explicitly (a --config file's, then the flags'), so the
    precedence is: TrainConfig defaults < recipe < config file < flags. A recipe may name the base
    model (``model``); it is used when no model was given. Without a recipe, ``values`` is returned as is.
    """
    name = values.get("recipe")
    if name is None:
        return dict(values)
    from roberta_ft.config import TrainConfig

    recipes = task.extras.get("recipe") or {}
    if not recipes:
        with_recipes = tasks_with_recipes()
        raise ConfigError(
            f"task {task.name!r} has no recipes (--recipe {name})",
            f"tasks with recipes: {', '.join(with_recipes) or 'none'}; or drop --recipe",
        )
    if name not in recipes:
        raise ConfigError(f"unknown recipe {name!r} for task {task.name!r}", f"use one of {', '.join(recipes)}")
    settings = dict(recipes[name])
    unknown = [key for key in settings if key not in TrainConfig.field_names()]
    if unknown:
        raise ConfigError(
            f"recipe {name!r} of task {task.name!r} sets unknown setting(s) {', '.join(map(repr, unknown))}",
            "fix the task plugin's recipe: keys must be TrainConfig settings",
        )
    return {**settings, **values}


def published_score(task: Task, run_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The published dev score for the base model a run started from, as a fraction like our metrics.

    The base model is the run's ``config.model`` (a hub id such as ``FacebookAI/roberta-base`` or a
    local folder named ``roberta-base`` counts by its last path part), else its ``--recipe`` unless
    the model was ``tiny``. None when the task publishes nothing for that model.
    """
    published = task.extras.get("published") or {}
    if not published:
        return None
    settings = run_config.get("config") or {}
    model = settings.get("model")
    base = Path(str(model)).name if model else None
    if base not in published:
        recipe = settings.get("recipe")
        base = recipe if model != "tiny" and recipe in published else None
    if base is None:
        return None
    return {
        "model": base,
        "metric": task.extras.get("published_metric") or task.primary_metric,
        "value": float(published[base]) / 100.0,
        "source": task.extras.get("published_source"),
    }
