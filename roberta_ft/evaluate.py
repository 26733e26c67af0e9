"""`roberta_ft.evaluate.evaluate(config)`: a trained model's metrics on a labelled file or a task's split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from roberta_ft import artifacts, inference, registry, reports
from roberta_ft.config import EvalConfig
from roberta_ft.data.files import is_file_source
from roberta_ft.data.sources import load_source, resolve_task
from roberta_ft.errors import ConfigError
from roberta_ft.recipes import published_score

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    task: str
    split: str
    num_examples: int
    metrics: dict[str, float]
    extras: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "split": self.split,
            "num_examples": self.num_examples,
            "metrics": self.metrics,
            **self.extras,
        }


def evaluate(config: EvalConfig) -> EvalResult:
    config.validate()
    model_dir = artifacts.check_model_dir(config.model_dir, weights=config.backend == "torch")
    if config.report is not None:
        artifacts.check_writable(config.report, "--report")
    run = artifacts.read_run_config(model_dir)
    trained = run.get("config", {})
    # DATA naming a task (glue/mnli-mm for a glue/mnli model) is evaluated as that task.
    names_task = not is_file_source(config.data) and config.data in registry.available_tasks()
    task = resolve_task(config.task or (None if names_task else run.get("task")), config.data)
    model = inference.load(model_dir, **inference.load_options(config))
    problem, permutation = inference.align(model.problem, task)
    # A binary classifier's positive label: --positive-label, else the one it was trained with.
    problem = problem.with_positive_label(config.positive_label or run.get("positive_label"))

    def pick(option: str):
        given = getattr(config, option)
        return given if given is not None else trained.get(option)

    dataset = load_source(
        config.data,
        config.split,
        task,
        data_dir=config.data_dir or trained.get("data_dir"),
        text_column=pick("text_column"),
        text_pair_column=pick("text_pair_column"),
        label_column=pick("label_column"),
        format=config.format,
        encoding=config.encoding,
        drop_invalid=config.drop_invalid,
        scores=not problem.has_labels,
    )
    if model.pair and "text_pair" not in dataset.column_names:
        raise ConfigError(
            f"the model was trained on text pairs but {config.data} gives single texts",
            "pass --text-pair-column naming the second text column",
        )
    encoded = model.encode_dataset(dataset, problem.labels, source=str(config.data))
    logits = inference.to_task_order(model.logits(encoded, config.batch_size), permutation)
    targets = encoded.text_targets
    metrics = problem.scorer(task, config.metric)(logits, targets)
    extras: dict[str, Any] = {"model_dir": str(model_dir), "data": str(config.data)}
    if "f1" in metrics and problem.positive_label is not None:
        extras["positive_label"] = problem.positive_label  # the label whose F1 `f1` is
    # Published numbers are dev-set scores: shown only for the task's own dev split.
    if names_task and config.split in ("validation", task.splits.get("validation")):
        published = published_score(task, run)
        if published is not None:
            extras["published"] = published
    report = problem.report(logits, targets)
    if report is not None:
        extras["report"] = report
    calibration = problem.calibration(logits, targets)  # ECE, Brier, NLL, accuracy at coverage (calibration.py)
    if calibration is not None:
        extras["calibration"] = calibration
    result = EvalResult(task.name, config.split, encoded.num_texts, metrics, extras)
    report_path, picture = reports.eval_report_paths(model_dir, config.report)
    written = reports.write_eval_report(result.to_dict(), report_path, picture, required=config.report is not None)
    if written:
        logger.info("Wrote %s", " and ".join(written.values()))
        result.extras["files"] = written
    return result
