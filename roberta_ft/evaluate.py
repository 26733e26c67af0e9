"""`roberta_ft.evaluate.evaluate(config)`: a trained model's metrics on a labelled file or a task's split."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from roberta_ft import artifacts
from roberta_ft.config import EvalConfig
from roberta_ft.data import LabelMap, encode_dataset, load_source
from roberta_ft.errors import ConfigError
from roberta_ft.registry import Task

logger = logging.getLogger(__name__)

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


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


def model_label_names(model_config) -> list[str]:
    id2label = {int(k): v for k, v in (model_config.id2label or {}).items()}
    if len(id2label) != model_config.num_labels:
        raise ConfigError(
            f"the model config has {model_config.num_labels} outputs but {len(id2label)} label names",
            "save the model with a complete id2label mapping in config.json",
        )
    return [id2label[i] for i in range(model_config.num_labels)]


def align_labels(model_names: list[str], task: Task) -> tuple[LabelMap, np.ndarray | None]:
    """The label order metrics are computed in, and how to map model output ids into it.

    A task with fixed labels (e.g. MNLI's entailment, neutral, contradiction) is scored in the task's
    order whatever order the model uses; names are matched case-insensitively. Generic names
    (LABEL_0, LABEL_1, ...) can only be taken in index order, which is logged.
    """
    if not task.label_names:
        return LabelMap(tuple(model_names)), None
    if len(model_names) != len(task.label_names):
        raise ConfigError(
            f"the model has {len(model_names)} labels ({', '.join(model_names)}) but task {task.name!r} has "
            f"{len(task.label_names)} ({', '.join(task.label_names)})",
            "evaluate with a model trained for this task, or pass the right --task",
        )
    task_map = LabelMap(tuple(task.label_names))
    if all(_GENERIC_LABEL.match(name) for name in model_names):
        logger.warning(
            "The model's labels are generic (%s): assuming they are in the task's order (%s)",
            ", ".join(model_names),
            ", ".join(task.label_names),
        )
        return task_map, None
    lookup = {name.lower(): i for i, name in enumerate(task.label_names)}
    missing = [name for name in model_names if name.lower() not in lookup]
    if missing:
        raise ConfigError(
            f"model labels {', '.join(map(repr, missing))} are not labels of task {task.name!r}",
            f"the task's labels are {', '.join(task.label_names)}",
        )
    permutation = np.array([lookup[name.lower()] for name in model_names])
    if not np.array_equal(permutation, np.arange(len(model_names))):
        logger.info("Mapping the model's label order (%s) to the task's by name", ", ".join(model_names))
    return task_map, permutation


def evaluate(config: EvalConfig) -> EvalResult:
    from roberta_ft.loop import predict_logits
    from roberta_ft.modeling import load_trained
    from roberta_ft.runtime import make_accelerator, resolve_runtime
    from roberta_ft.train import make_metric_function, resolve_task

    config.validate()
    model_dir = artifacts.check_model_dir(config.model_dir)
    run = artifacts.read_run_config(model_dir)
    trained = run.get("config", {})
    task = resolve_task(config.task or run.get("task"), config.data)
    runtime = resolve_runtime(config.device, config.precision)
    model, tokenizer = load_trained(model_dir, trust_remote_code=config.trust_remote_code)

    regression = task.is_regression
    if regression != (model.config.problem_type == "regression" or model.config.num_labels == 1):
        raise ConfigError(
            f"task {task.name!r} is {'a regression' if task.is_regression else 'a classification'} task but the "
            f"model has {model.config.num_labels} output(s)",
            "evaluate with a model trained for this task, or pass the right --task",
        )
    label_map, permutation = (None, None) if regression else align_labels(model_label_names(model.config), task)

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
    )
    if run.get("text_pair") and "text_pair" not in dataset.column_names:
        raise ConfigError(
            f"the model was trained on text pairs but {config.data} gives single texts",
            "pass --text-pair-column naming the second text column",
        )
    max_length = config.max_length or trained.get("max_length") or min(512, tokenizer.model_max_length)
    encoded = encode_dataset(dataset, tokenizer, max_length, label_map, source=str(config.data))

    accelerator = make_accelerator(runtime)
    model = model.to(accelerator.device)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    logits = predict_logits(model, encoded, config.batch_size, accelerator=accelerator, pad_id=tokenizer.pad_token_id)
    if permutation is not None:
        reordered = np.empty_like(logits)
        reordered[:, permutation] = logits
        logits = reordered
    metrics = make_metric_function(task, label_map, config.metric)(logits, encoded.targets)
    extras: dict[str, Any] = {"model_dir": str(model_dir), "data": str(config.data)}
    if label_map is not None:
        extras["report"] = classification_report(logits.argmax(-1), encoded.targets, label_map.names)
    return EvalResult(task.name, config.split, len(encoded), metrics, extras)


def classification_report(predictions: np.ndarray, references: np.ndarray, names) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and the confusion matrix (rows: true, columns: predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=labels, zero_division=0
    )
    return {
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(references, predictions, labels=labels).tolist(),
        "labels": list(names),
    }
