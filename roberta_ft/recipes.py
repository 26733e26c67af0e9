"""Published fine-tuning recipes (``--recipe``) and the published dev scores they reach.

A task plugin carries both as data: ``task.recipes`` maps a recipe name to TrainConfig settings,
and ``task.published`` maps a base model to its published score (x100) on the metric
``task.published_metric`` (the primary metric when None).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roberta_ft.errors import ConfigError
from roberta_ft.registry import Task


def recipe_names(task: Task) -> list[str]:
    return list(task.recipes)


def tasks_with_recipes() -> list[str]:
    from roberta_ft.registry import available_tasks

    return [name for name, task in available_tasks().items() if recipe_names(task)]


def recipe_settings(task: Task, name: str) -> dict[str, Any]:
    """The settings of the task's recipe `name` (``--recipe``); an unknown name lists what exists.

    `config.apply_recipe` merges them under the settings given; a recipe may name its base ``model``.
    """
    recipes = task.recipes
    if not recipes:
        with_recipes = tasks_with_recipes()
        raise ConfigError(
            f"task {task.name!r} has no recipes (--recipe {name})",
            f"tasks with recipes: {', '.join(with_recipes) or 'none'}; or drop --recipe",
        )
    if name not in recipes:
        raise ConfigError(f"unknown recipe {name!r} for task {task.name!r}", f"use one of {', '.join(recipes)}")
    return dict(recipes[name])


def published_score(task: Task, run_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The published dev score for the base model a run started from, as a fraction like our metrics.

    The base model is the run's ``config.model`` (a hub id such as ``FacebookAI/roberta-base`` or a
    local folder named ``roberta-base`` counts by its last path part), else its ``--recipe`` unless
    the model was ``tiny``. None when the task publishes nothing for that model.
    """
    published = task.published
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
        "metric": task.published_metric or task.primary_metric,
        "value": float(published[base]) / 100.0,
        "source": task.published_source,
    }
