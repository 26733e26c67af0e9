"""`roberta_ft.train(config)`: fine-tune a classifier and write a model directory."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import __version__, artifacts, checkpoint, imbalance, long_text, multilabel, reports, tracking
from roberta_ft.config import TrainConfig
from roberta_ft.data import LabelMap, is_file_source, load_source, stratified_split
from roberta_ft.errors import ConfigError, DataError, TrainingError
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
            # The per-step losses stay in metrics.json (and training_curves.png): they would swamp the result.
            **{key: value for key, value in self.metrics.items() if key != "steps"},
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
    imbalance.check_settings(task, config.class_weights)
    if config.multi_label:
        multilabel.check_settings(task, metric=config.metric, class_weights=config.class_weights)
    tracking.check_installed(config.report_to)
    runtime = resolve_runtime(config.device, config.precision)
    # Checked now, created (or cleared, with --overwrite) only once the inputs are known to be good.
    resume_from = checkpoint.check_output_dir(config.output, overwrite=config.overwrite, resume=config.resume)

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
            train_set, config.validation_split, config.seed, stratify=not (task.is_regression or config.multi_label)
        )
        validation_source = f"{config.validation_split:.0%} of {config.data} (stratified, seed {config.seed})"
        logger.info(
            "No --validation file: holding out %s = %d rows for validation", validation_source, len(validation_set)
        )

    label_map = None
    class_weights = None
    if config.multi_label:
        label_map = multilabel.label_map_for_training(
            train_set, validation_set, config.label_separator, task, str(config.data), validation_source
        )
    elif not task.is_regression:
        label_map = LabelMap.infer(train_set["label"], task)
        counts = np.bincount(label_map.encode(train_set["label"], source=str(config.data)), minlength=len(label_map))
        if (counts > 0).sum() < 2:
            raise DataError(
                f"the training data has only one class ({label_map.names[int(counts.argmax())]!r})",
                "a classifier needs at least two labels; check --label-column",
            )
        logger.info("Labels (%d): %s", len(label_map), ", ".join(label_map.names))
        _check_validation_labels(label_map, validation_set, validation_source)
        if config.class_weights is not None:
            label_ids = label_map.encode(train_set["label"], source=str(config.data))
            class_weights = imbalance.resolve_class_weights(config.class_weights, label_ids, label_map.names)
            logger.info(
                "Class weights: %s",
                ", ".join(f"{n} {w:.3g}" for n, w in zip(label_map.names, class_weights, strict=True)),
            )
    identity = checkpoint.run_identity(config.to_dict(), train_set, validation_set)
    if resume_from is not None:
        resume_from.check_identity(identity)

    if config.is_tiny:
        texts = list(train_set["text"]) + (
            list(train_set["text_pair"]) if "text_pair" in train_set.column_names else []
        )
        model, tokenizer = build_tiny(texts, label_map=label_map, regression=task.is_regression, seed=config.seed)
    else:
        _seed_everything(config.seed)  # the new classifier head is initialised now: same seed, same run
        model, tokenizer = load_pretrained(
            config.model, label_map=label_map, regression=task.is_regression, trust_remote_code=config.trust_remote_code
        )
    if config.multi_label:
        model.config.problem_type = multilabel.PROBLEM_TYPE  # saved in config.json: pipeline() applies sigmoids
    limit = _model_position_limit(model)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"--max-length {config.max_length} is more than model {config.model!r} supports ({limit} tokens)",
            f"pass --max-length {limit} or less",
        )
    logger.info("Model %s (%s), %.1fM parameters", config.model, type(model).__name__, model.num_parameters() / 1e6)

    logs_dir = str(Path(config.output) / tracking.LOGS_DIR) if config.report_to else None
    accelerator = make_accelerator(runtime, log_with=list(config.report_to) or None, project_dir=logs_dir)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    long = dict(strategy=config.long_text, stride=config.stride)
    train_encoded = long_text.encode_dataset(
        train_set, tokenizer, config.max_length, label_map, source=str(config.data), **long
    )
    validation_encoded = long_text.encode_dataset(
        validation_set, tokenizer, config.max_length, label_map, source=validation_source, **long
    )
    train_data, validation_data = train_encoded.encoded, validation_encoded.encoded
    if config.batch_size % (config.gradient_accumulation * accelerator.num_processes):
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be split over {accelerator.num_processes} processes "
            f"x {config.gradient_accumulation} accumulation steps",
            "make the batch size a multiple of processes x --gradient-accumulation",
        )

    if config.multi_label:
        compute, primary = multilabel.metric_function(config.threshold), multilabel.PRIMARY_METRIC
    else:
        compute, primary = make_metric_function(task, label_map, config.metric), task.primary_metric
    if config.metric_for_best is not None:
        produced = imbalance.metric_names(compute, validation_encoded.text_targets, label_map and len(label_map))
        imbalance.check_metric_for_best(config.metric_for_best, produced)
        primary = config.metric_for_best

    # Under data parallelism every process has checked the output dir above; only the main one writes it.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoint.prepare_output_dir(config.output, overwrite=config.overwrite, resume=resume_from)
    accelerator.wait_for_everyone()
    output = Path(config.output)
    if accelerator.num_processes > 1:
        logger.info(
            "Data parallel over %d processes: --batch-size %d = %d per process x %d processes x %d accumulation steps",
            accelerator.num_processes,
            config.batch_size,
            config.batch_size // (accelerator.num_processes * config.gradient_accumulation),
            accelerator.num_processes,
            config.gradient_accumulation,
        )
    run_config = {
        "roberta_ft_version": __version__,
        "config": config.to_dict(),
        "task": task.name,
        "problem_type": "multi_label" if config.multi_label else task.problem_type,
        "label_names": list(label_map.names) if label_map else None,
        "text_pair": "text_pair" in train_set.column_names,
        "columns": {"text": config.text_column, "text_pair": config.text_pair_column, "label": config.label_column},
        "validation_source": validation_source,
        "num_train_examples": train_encoded.num_texts,
        "num_validation_examples": validation_encoded.num_texts,
        "class_weights": dict(zip(label_map.names, class_weights, strict=True)) if class_weights else None,
        "data_sha256": identity["data_sha256"],  # the rows read (text, pair, label), as resume checks them
        "data_files": reports.data_files(train=config.data, validation=config.validation),
        "device": runtime.device,
        "precision": runtime.precision,
        "versions": _library_versions(),
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"resumed_from": resume_from.path.name} if resume_from is not None else {}),
    }
    if accelerator.is_main_process:
        artifacts.save_pretrained_files(output, tokenizer=tokenizer)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)

    watcher = reports.ValidationWatcher(
        compute,
        validation_encoded.per_text,
        validation_encoded.text_targets,
        label_map.names if label_map else None,
        threshold=config.threshold if config.multi_label else None,
    )

    def on_best(model_to_save, record: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            artifacts.save_pretrained_files(output, model=model_to_save)
            reports.write_best_epoch(output, watcher.best_report(), record)
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
        greater_is_better=imbalance.greater_is_better(primary),
        adam_betas=tuple(config.adam_betas),
        adam_epsilon=config.adam_epsilon,
        regression=task.is_regression,
        save_every=config.save_every,
        skip_nonfinite=config.skip_nonfinite,
        class_weights=class_weights,
        multi_label=config.multi_label,
        length_bucketing=config.length_bucketing,
    )
    if config.report_to:
        progress = tracking.TrackerProgress(accelerator, progress or loop.LogProgress(), config=config.to_dict())
    train_lines = train_set["line"] if "line" in train_set.column_names else None
    if train_lines is not None and train_encoded.owners is not None:
        train_lines = np.asarray(train_lines)[train_encoded.owners]
    _seed_everything(config.seed)
    try:
        history = loop.train(
            model,
            train_data,
            validation_data,
            settings,
            accelerator=accelerator,
            pad_id=tokenizer.pad_token_id,
            metrics=watcher.metrics,
            on_best=on_best,
            progress=progress,
            checkpoints=checkpoint.Checkpointer(
                output, keep=config.keep_checkpoints, identity=identity, enabled=accelerator.is_main_process
            ),
            resume=resume_from,
            train_lines=train_lines,
        )
    except TrainingError as error:
        if accelerator.is_main_process:
            run_config.update(status="stopped", error=error.one_line())
            artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        raise
    metrics = {
        "task": task.name,
        "primary_metric": primary,
        "epochs": history.epochs,
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": history.train_seconds,
        "train_samples_per_second": history.train_samples_per_second,
        "steps": history.steps,
    }
    if accelerator.is_main_process:
        from roberta_ft.modelcard import render_model_card

        run_config.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        artifacts.write_json(output / artifacts.METRICS, metrics)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        reports.write_training_curves(output, metrics)
        card = render_model_card(
            run_config, metrics, reports.read_validation_report(output), pictures=reports.pictures(output)
        )
        artifacts.write_text(output / "README.md", card)
    accelerator.wait_for_everyone()
    logger.info(
        "Best %s %.4f at epoch %d; model saved in %s", primary, history.best[primary], history.best["epoch"], output
    )
    return TrainResult(output, metrics, history.train_samples_per_second, runtime.device, runtime.precision)


def _check_validation_labels(label_map: LabelMap, validation_set, source: str) -> None:
    """A validation label the training data never had: said before any model is built."""
    lines = validation_set["line"] if "line" in validation_set.column_names else None
    unseen: dict[str, int] = {}
    for i, label in enumerate(validation_set["label"]):
        if label not in unseen and label not in label_map.label2id:
            try:
                label_map.encode([label], source=source)  # also accepts case and integer-coded variants
            except DataError:
                unseen[label] = lines[i] if lines is not None else i + 1
    if unseen:
        shown = ", ".join(f"{name!r} (line {line})" for name, line in list(unseen.items())[:3])
        raise DataError(
            f"{source}: validation label {shown} never occurs in the training data",
            f"the training labels are {', '.join(map(repr, label_map.names))}; add training rows with it "
            "or fix the validation data",
        )


def _seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "datasets", "tokenizers", "numpy", "scikit-learn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions
