"""`glue_report(model_dirs)`: evaluate GLUE models on their own tasks' dev sets and average the scores.

Each model directory is evaluated on the dev split of the task in its ``run_config.json``; an MNLI
model (``glue/mnli``) is evaluated on the mismatched dev set too, since the GLUE score counts MNLI
as the mean of both. Task scores and the average follow ``roberta_ft_tasks.glue.glue_average``
(0-100 scale: each task's official metrics averaged, then the tasks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from roberta_ft import artifacts
from roberta_ft.config import EvalConfig
from roberta_ft.errors import ConfigError

# Dev sets evaluated with a model of another task (same training data, other dev set).
ALSO_EVALUATED = {"glue/mnli": ("glue/mnli-mm",)}


@dataclass
class GlueReport:
    results: list[dict[str, Any]]  # EvalResult.to_dict() per task, in the order given
    scores: dict[str, float]  # task -> its GLUE score (0-100)
    average: float

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.results, "scores": self.scores, "glue_average": self.average}


def _glue_task(model_dir: str) -> str:
    from roberta_ft_tasks.glue import SPECS

    artifacts.check_model_dir(model_dir)
    task_name = artifacts.read_run_config(model_dir).get("task")
    if task_name is None:
        raise ConfigError(f"{model_dir} has no run_config.json naming its task", "pass models trained by roberta-ft")
    if task_name not in SPECS:
        raise ConfigError(
            f"{model_dir} was trained for task {task_name!r}, not a GLUE task",
            "pass models trained on glue/cola, glue/sst2, ...",
        )
    return task_name


def glue_report(
    model_dirs: Sequence[str],
    *,
    data_dir: str | None = None,
    batch_size: int = 128,
    device: str = "auto",
    precision: str = "auto",
) -> GlueReport:
    from roberta_ft.evaluate import evaluate
    from roberta_ft_tasks.glue import glue_average

    if not model_dirs:
        raise ConfigError("no model directories given", "pass the --output directories of GLUE trainings")
    plan: list[tuple[str, str]] = []  # (model dir, task evaluated)
    owner: dict[str, str] = {}
    for model_dir in model_dirs:
        task_name = _glue_task(str(model_dir))
        for evaluated in (task_name, *ALSO_EVALUATED.get(task_name, ())):
            if evaluated in owner:
                raise ConfigError(
                    f"{owner[evaluated]} and {model_dir} both give {evaluated} results", "pass one model per task"
                )
            owner[evaluated] = str(model_dir)
            plan.append((str(model_dir), evaluated))
    # Every model dir is checked before the first (slow) evaluation.
    results = []
    for model_dir, task_name in plan:
        config = EvalConfig(
            model_dir=model_dir,
            data=task_name,
            split="validation",
            data_dir=data_dir,
            batch_size=batch_size,
            device=device,
            precision=precision,
        )
        result = evaluate(config).to_dict()
        result.pop("report", None)
        results.append(result)
    scores = {result["task"]: glue_average({result["task"]: result["metrics"]}) for result in results}
    average = glue_average({result["task"]: result["metrics"] for result in results})
    return GlueReport(results, scores, average)
