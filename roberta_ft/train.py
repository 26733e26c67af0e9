"""`roberta_ft.train(config)`: fine-tune a classifier and write a model directory."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import __version__, artifacts
from roberta_ft.config import TrainConfig
from roberta_ft.data import LabelMap, encode_dataset, is_file_source, load_source, stratified_split
from roberta_ft.errors import ConfigError, DataError
from roberta_ft.registry import Task, get_task

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]  # {"epochs": [...], "best": {...}, ...} as in metrics.json
    train_samples_per_second: float
    device: str
    precision: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "device": self.device,
            "precision": self.precision,
            "train_samples_per_second": self.train_samples_per_second,
            **self.metrics,
        }


def resolve_task(config_task: str | None, data: str | None) -> Task:
    """The task named by --task, or by DATA itself when DATA is a task name such as glue/rte."""
    if data is not None and not is_file_source(data):
        from roberta_ft.registry import available_tasks

        if data in available_tasks():
            if config_task not in (None, "classification", data):
                raise ConfigError(f"DATA names task {data!r} but --task is {config_task!r}", "drop --task")
            return get_task(data)
    return get_task(config_task or "classification")


def _model_position_limit(model) -> int | None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return None
    # RoBERTa-family position ids start after the padding index.
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= model.config.pad_token_id + 1
    return limit


def make_metric_function(task: Task, label_map: LabelMap | None, extra_metric: str | None):
    from roberta_ft.metrics import load_evaluate_metric

    extra = load_evaluate_metric(extra_metric) if extra_metric else None

    def compute(logits: np.ndarray, references: np.ndarray) -> dict[str, float]:
        predictions = logits[:, 0] if task.is_regression else logits.argmax(-1)
        scores = dict(task.metrics(predictions, references))
        if extra is not None:
            scores.update(extra(predictions, references))
        return {k: float(v) for k, v in scores.items()}

    return compute


def train(config: TrainConfig, progress=None) -> TrainResult:
    from roberta_ft import loop
    from roberta_ft.modeling import build_tiny, load_pretrained
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    config = config.resolved()
    task = resolve_task(config.task, config.data)
    config = config.replace(task=task.name)
    if config.metric is None and task.primary_metric is None:
        raise ConfigError(f"task {task.name!r} has no primary metric", "pass --metric")
    runtime = resolve_runtime(config.device, config.precision)
    output = artifacts.prepare_output_dir(config.output, overwrite=config.overwrite)

    options = dict(
        data_dir=config.data_dir,
        text_column=config.text_column,
        text_pair_column=config.text_pair_column,
        label_column=config.label_column,
        format=config.format,
        encoding=config.encoding,
        drop_invalid=config.drop_invalid,
    )
    train_set = load_source(config.data, "train", task, **options)
    if config.validation is not None:
        validation_set = load_source(config.validation, "validation", task, **options)
        validation_source = config.validation
    elif not is_file_source(config.data) and task.load is not None:
        validation_set = load_source(config.data, "validation", task, **options)
        validation_source = f"{task.name} {task.splits.get('validation', 'validation')}"
    else:
        train_set, validation_set = stratified_split(
            train_set, config.validation_split, config.seed, stratify=not task.is_regression
        )
        validation_source = f"{config.validation_split:.0%} of {config.data} (stratified, seed {config.seed})"
        logger.info(
            "No --validation file: holding out %s = %d rows for validation", validation_source, len(validation_set)
        )

    label_map = None
    if not task.is_regression:
        label_map = LabelMap.infer(train_set["label"], task)
        counts = np.bincount(label_map.encode(train_set["label"], source=str(config.data)), minlength=len(label_map))
        if (counts > 0).sum() < 2:
            raise DataError(
                f"the training data has only one class ({label_map.names[int(counts.argmax())]!r})",
                "a classifier needs at least two labels; check --label-column",
            )
        logger.info("Labels (%d): %s", len(label_map), ", ".join(label_map.names))

    if config.is_tiny:
        texts = list(train_set["text"]) + (
            list(train_set["text_pair"]) if "text_pair" in train_set.column_names else []
        )
        model, tokenizer = build_tiny(texts, label_map=label_map, regression=task.is_regression, seed=config.seed)
    else:
        model, tokenizer = load_pretrained(
            config.model, label_map=label_map, regression=task.is_regression, trust_remote_code=config.trust_remote_code
        )
    limit = _model_position_limit(model)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"--max-length {config.max_length} is more than model {config.model!r} supports ({limit} tokens)",
            f"pass --max-length {limit} or less",
        )
    logger.info("Model %s (%s), %.1fM parameters", config.model, type(model).__name__, model.num_parameters() / 1e6)

    accelerator = make_accelerator(runtime)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    train_data = encode_dataset(train_set, tokenizer, config.max_length, label_map, source=str(config.data))
    validation_data = encode_dataset(validation_set, tokenizer, config.max_length, label_map, source=validation_source)
    if config.batch_size % (config.gradient_accumulation * accelerator.num_processes):
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be split over {accelerator.num_processes} processes "
            f"x {config.gradient_accumulation} accumulation steps",
            "make the batch size a multiple of processes x --gradient-accumulation",
        )

    run_config = {
        "roberta_ft_version": __version__,
        "config": config.to_dict(),
        "task": task.name,
        "problem_type": task.problem_type,
        "label_names": list(label_map.names) if label_map else None,
        "text_pair": "text_pair" in train_set.column_names,
        "columns": {"text": config.text_column, "text_pair": config.text_pair_column, "label": config.label_column},
        "validation_source": validation_source,
        "num_train_examples": len(train_data),
        "num_validation_examples": len(validation_data),
        "device": runtime.device,
        "precision": runtime.precision,
        "versions": _library_versions(),
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if accelerator.is_main_process:
        artifacts.save_pretrained_files(output, tokenizer=tokenizer)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)

    compute = make_metric_function(task, label_map, config.metric)
    primary = task.primary_metric

    def on_best(model_to_save, record: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            artifacts.save_pretrained_files(output, model=model_to_save)
            logger.info("Saved the best model so far (epoch %d, %s %.4f)", record["epoch"], primary, record[primary])

    settings = loop.LoopSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        gradient_accumulation=config.gradient_accumulation,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        eval_batch_size=config.eval_batch_size,
        early_stopping_patience=config.early_stopping_patience,
        primary_metric=primary,
        greater_is_better=primary not in ("mse", "loss"),
        adam_betas=tuple(config.adam_betas),
        adam_epsilon=config.adam_epsilon,
        regression=task.is_regression,
    )
    _seed_everything(config.seed)
    history = loop.train(
        model,
        train_data,
        validation_data,
        settings,
        accelerator=accelerator,
        pad_id=tokenizer.pad_token_id,
        metrics=lambda logits: compute(logits, validation_data.targets),
        on_best=on_best,
        progress=progress,
    )
    metrics = {
        "task": task.name,
        "primary_metric": primary,
        "epochs": history.epochs,
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": history.train_seconds,
        "train_samples_per_second": history.train_samples_per_second,
    }
    if accelerator.is_main_process:
        from roberta_ft.modelcard import render_model_card

        run_config.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        artifacts.write_json(output / artifacts.METRICS, metrics)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        artifacts.write_text(output / "README.md", render_model_card(run_config, metrics))
    accelerator.wait_for_everyone()
    logger.info(
        "Best %s %.4f at epoch %d; model saved in %s", primary, history.best[primary], history.best["epoch"], output
    )
    return TrainResult(output, metrics, history.train_samples_per_second, runtime.device, runtime.precision)


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "datasets", "tokenizers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions
