"""`roberta_ft.evaluate.evaluate(config)`: a trained model's metrics on a labelled file or a task's split."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from roberta_ft import artifacts, inference, long_text, multilabel, reports
from roberta_ft.config import EvalConfig
from roberta_ft.data import LabelMap, is_file_source, load_source
from roberta_ft.errors import ConfigError
from roberta_ft.recipes import published_score
from roberta_ft.registry import Task, available_tasks

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


def align_model_to_task(model_config, task: Task) -> tuple[LabelMap | None, np.ndarray | None]:
    """Check that the model's head fits the task; then align_labels (None, None for regression)."""
    regression = model_config.problem_type == "regression" or model_config.num_labels == 1
    if regression != task.is_regression:
        raise ConfigError(
            f"task {task.name!r} is {'a regression' if task.is_regression else 'a classification'} task but the "
            f"model has {model_config.num_labels} output(s)",
            "use a model trained for this task, or pass the right --task",
        )
    return (None, None) if regression else align_labels(model_label_names(model_config), task)


def to_task_order(logits: np.ndarray, permutation: np.ndarray | None) -> np.ndarray:
    """Logit columns moved from the model's label order into the task's (see align_labels)."""
    if permutation is None:
        return logits
    reordered = np.empty_like(logits)
    reordered[:, permutation] = logits
    return reordered


def evaluate(config: EvalConfig) -> EvalResult:
    from roberta_ft.loop import predict_logits
    from roberta_ft.modeling import load_trained
    from roberta_ft.runtime import make_accelerator, resolve_runtime
    from roberta_ft.train import make_metric_function, resolve_task

    config.validate()
    model_dir = artifacts.check_model_dir(config.model_dir)
    run = artifacts.read_run_config(model_dir)
    trained = run.get("config", {})
    # DATA naming a task (glue/mnli-mm for a glue/mnli model) is evaluated as that task.
    names_task = not is_file_source(config.data) and config.data in available_tasks()
    task = resolve_task(config.task or (None if names_task else run.get("task")), config.data)
    runtime = resolve_runtime(config.device, config.precision)
    model, tokenizer = load_trained(model_dir, trust_remote_code=config.trust_remote_code)

    label_map, permutation = align_model_to_task(model.config, task)

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
    reading = inference.reading(config, run, model.config, max_length)
    if reading.multi_label:
        label_map = multilabel.MultiLabelMap(label_map.names, reading.separator)
    texts = long_text.encode_dataset(
        dataset,
        tokenizer,
        max_length,
        label_map,
        source=str(config.data),
        strategy=reading.long_text,
        stride=reading.stride,
    )
    encoded, targets = texts.encoded, texts.text_targets

    accelerator = make_accelerator(runtime)
    model = model.to(accelerator.device)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    logits = predict_logits(model, encoded, config.batch_size, accelerator=accelerator, pad_id=tokenizer.pad_token_id)
    logits = to_task_order(texts.per_text(logits), permutation)
    if reading.multi_label:
        metrics = multilabel.metric_function(reading.threshold)(logits, targets)
    else:
        metrics = make_metric_function(task, label_map, config.metric)(logits, targets)
    extras: dict[str, Any] = {"model_dir": str(model_dir), "data": str(config.data)}
    # Published numbers are dev-set scores: shown only for the task's own dev split.
    if names_task and config.split in ("validation", task.splits.get("validation")):
        published = published_score(task, run)
        if published is not None:
            extras["published"] = published
    if label_map is not None:
        threshold = reading.threshold if reading.multi_label else None
        extras["report"] = reports.label_report(logits, targets, label_map.names, threshold=threshold)
    result = EvalResult(task.name, config.split, texts.num_texts, metrics, extras)
    report_path, picture = reports.eval_report_paths(model_dir, config.report)
    written = reports.write_eval_report(result.to_dict(), report_path, picture, required=config.report is not None)
    if written:
        logger.info("Wrote %s", " and ".join(written.values()))
        result.extras["files"] = written
    return result


def classification_report(predictions: np.ndarray, references: np.ndarray, names) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and the confusion matrix (rows: true, columns: predicted)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(names)))
    scores = precision_recall_fscore_support(references, predictions, labels=labels, zero_division=0)
    return {
        "per_class": per_class_table(scores, names),
        "confusion_matrix": confusion_matrix(references, predictions, labels=labels).tolist(),
        "labels": list(names),
    }


def per_class_table(scores, names) -> dict[str, dict[str, float]]:
    """sklearn's (precision, recall, f1, support) arrays as {label name: {metric: value}}."""
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
