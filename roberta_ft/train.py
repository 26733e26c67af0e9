"""`roberta_ft.train(config)`: fine-tune a classifier and write a model directory.

One call reads top to bottom: settings and checks, data, labels (the problem), model, tokens, the
output directory, the loop, the results. docs/architecture.md follows it step by step.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft import __version__, artifacts, checkpoint, problems, reports, tracking
from roberta_ft.best_epoch import BestEpochRule
from roberta_ft.config import TrainConfig
from roberta_ft.data.files import is_file_source
from roberta_ft.data.sources import FILE_OPTIONS, load_source, stratified_split, subsample
from roberta_ft.data.tokens import Encoded, encode_dataset
from roberta_ft.errors import ConfigError, RunStopped, TrainingError
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


@dataclass
class _Data:
    """The rows read for a run: training and validation tables, and where the validation rows came from."""

    train: Any  # datasets.Dataset
    validation: Any
    validation_source: str


def train(config: TrainConfig, progress=None) -> TrainResult:
    from roberta_ft import loop
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    # --- settings: every default filled, the task, the problem kind and the best-epoch rule -----------
    config = config.resolved()
    task = get_task(config.task)
    kind = problems.for_training(task, config)
    rule = BestEpochRule.for_training(task, kind, config)
    tracking.check_installed(config.report_to)
    runtime = resolve_runtime(config.device, config.precision)
    # Checked now, created (or cleared, with --overwrite) only once the inputs are known to be good.
    resume_from = checkpoint.check_output_dir(config.output, overwrite=config.overwrite, resume=config.resume)

    # --- data and labels ---------------------------------------------------------------------------
    reading = time.perf_counter()
    data = _read_data(config, task, kind)
    timings = {"read_seconds": round(time.perf_counter() - reading, 3)}
    problem = kind.fit(
        data.train,
        data.validation,
        task=task,
        config=config,
        source=str(config.data),
        validation_source=data.validation_source,
    )
    identity = checkpoint.run_identity(config.to_dict(), data.train, data.validation)
    if resume_from is not None:
        resume_from.check_identity(identity)

    # --- model and tokens ---------------------------------------------------------------------------
    model, tokenizer = _build_model(config, problem, data.train)
    accelerator = make_accelerator(runtime, log_with=list(config.report_to) or None, project_dir=_logs_dir(config))
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    labels = problem.labels
    long = dict(strategy=config.long_text, stride=config.stride, workers=config.workers)
    tokenizing = time.perf_counter()
    train_encoded = encode_dataset(data.train, tokenizer, config.max_length, labels, source=str(config.data), **long)
    validation_encoded = encode_dataset(
        data.validation, tokenizer, config.max_length, labels, source=data.validation_source, **long
    )
    timings["tokenize_seconds"] = round(time.perf_counter() - tokenizing, 3)
    if config.batch_size % (config.gradient_accumulation * accelerator.num_processes):
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be split over {accelerator.num_processes} processes "
            f"x {config.gradient_accumulation} accumulation steps",
            "make the batch size a multiple of processes x --gradient-accumulation",
        )
    scorer = problem.scorer(task, config.metric)
    rule.check_produced(_metric_names(scorer, problem, validation_encoded), given=config.metric_for_best is not None)

    # --- the output directory: prepared by the main process, run_config.json first --------------------
    # Under data parallelism every process has checked the output dir above; only the main one writes it.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoint.prepare_output_dir(config.output, overwrite=config.overwrite, resume=resume_from)
    accelerator.wait_for_everyone()
    output = Path(config.output)
    _log_data_parallel(config, accelerator.num_processes)
    run_config = _run_config(config, task, problem, data, train_encoded, validation_encoded, identity, runtime)
    run_config["timings"] = timings
    if resume_from is not None:
        run_config["resumed_from"] = resume_from.path.name
    if accelerator.is_main_process:
        artifacts.save_pretrained_files(output, tokenizer=tokenizer)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)

    # --- the loop: every epoch evaluated, the best model saved as it appears ----------------------------
    watcher = reports.ValidationWatcher(
        scorer, validation_encoded.per_text, validation_encoded.text_targets, problem.report
    )

    def on_best(model_to_save, record: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            artifacts.save_pretrained_files(output, model=model_to_save)
            reports.write_best_epoch(output, watcher.best_report(), record)
            logger.info(
                "Saved the best model so far (epoch %d, %s %.4f)", record["epoch"], rule.metric, record[rule.metric]
            )

    if config.report_to:
        progress = tracking.TrackerProgress(accelerator, progress or loop.LogProgress(), config=config.to_dict())
    _seed_everything(config.seed)
    try:
        history = loop.train(
            model,
            train_encoded,
            validation_encoded,
            loop.LoopSettings.from_config(config, rule),
            accelerator=accelerator,
            pad_id=tokenizer.pad_token_id,
            loss=problem.loss,
            metrics=watcher.metrics,
            on_best=on_best,
            progress=progress,
            checkpoints=checkpoint.Checkpointer(
                output, keep=config.keep_checkpoints, identity=identity, enabled=accelerator.is_main_process
            ),
            resume=resume_from,
            train_lines=_input_lines(data.train, train_encoded),
        )
    except TrainingError as error:
        if accelerator.is_main_process:
            run_config.update(status="stopped", error=error.one_line())
            artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        raise
    except RunStopped as stop:  # stopped by the caller (a search pruning the run): the best model so far is saved
        if accelerator.is_main_process:
            run_config.update(status=stop.status, stopped=stop.one_line())
            artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        raise

    # --- results: metrics.json, run_config.json complete, pictures, the model card --------------------
    metrics = {
        "task": task.name,
        "primary_metric": rule.metric,
        "epochs": history.epochs,
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": history.train_seconds,
        "train_samples_per_second": history.train_samples_per_second,
        "steps": history.steps,
    }
    if accelerator.is_main_process:
        _write_results(output, run_config, metrics, problem)
    accelerator.wait_for_everyone()
    logger.info(
        "Best %s %.4f at epoch %d; model saved in %s",
        rule.metric,
        history.best[rule.metric],
        history.best["epoch"],
        output,
    )
    return TrainResult(output, metrics, history.train_samples_per_second, runtime.device, runtime.precision)


def _read_data(config: TrainConfig, task: Task, kind: type[problems.Problem]) -> _Data:
    """Training rows, and validation rows: --validation, the task's own split, or a held-out share."""
    options = {"data_dir": config.data_dir, **{name: getattr(config, name) for name in FILE_OPTIONS}}
    train_set = load_source(config.data, "train", task, **options)
    if config.validation is not None:
        data = _Data(train_set, load_source(config.validation, "validation", task, **options), config.validation)
    elif not is_file_source(config.data) and task.load is not None:
        validation_set = load_source(config.data, "validation", task, **options)
        data = _Data(train_set, validation_set, f"{task.name} {task.splits.get('validation', 'validation')}")
    else:
        split_seed = config.seed if config.split_seed is None else config.split_seed
        train_set, validation_set = stratified_split(
            train_set, config.validation_split, split_seed, stratify=kind.stratify
        )
        source = f"{config.validation_split:.0%} of {config.data} (stratified, seed {split_seed})"
        logger.info("No --validation file: holding out %s = %d rows for validation", source, len(validation_set))
        data = _Data(train_set, validation_set, source)
    if config.max_eval_samples is not None and len(data.validation) > config.max_eval_samples:
        sample = subsample(data.validation, config.max_eval_samples, config.seed, stratify=kind.stratify)
        logger.info(
            "--max-eval-samples: validating on %d of %d rows (seed %d)", len(sample), len(data.validation), config.seed
        )
        data = _Data(data.train, sample, f"{len(sample)} rows sampled from {data.validation_source}")
    return data


def _build_model(config: TrainConfig, problem: problems.Problem, train_set):
    """The model with a head for the problem's labels, and its tokenizer (trained on the texts for `tiny`)."""
    from roberta_ft import modeling

    if config.is_tiny:
        columns = ["text"] + (["text_pair"] if "text_pair" in train_set.column_names else [])
        every = -(-len(train_set) // TINY_TOKENIZER_TEXTS)  # evenly spaced rows, at most TINY_TOKENIZER_TEXTS
        if every > 1:
            logger.info(
                "--model tiny: the tokenizer learns its vocabulary from one training text in %d (%d of %d)",
                every, -(-len(train_set) // every), len(train_set),
            )  # fmt: skip
        texts = (text for column in columns for text in _slices(train_set[column], len(train_set), every=every))
        model, tokenizer = modeling.build_tiny(texts, head=problem.head(), seed=config.seed)
    else:
        _seed_everything(config.seed)  # the new classifier head is initialised now: same seed, same run
        model, tokenizer = modeling.load_pretrained(
            config.model, head=problem.head(), trust_remote_code=config.trust_remote_code
        )
    limit = modeling.position_limit(model)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"--max-length {config.max_length} is more than model {config.model!r} supports ({limit} tokens)",
            f"pass --max-length {limit} or less",
        )
    logger.info("Model %s (%s), %.1fM parameters", config.model, type(model).__name__, model.num_parameters() / 1e6)
    return model, tokenizer


def _metric_names(scorer, problem: problems.Problem, validation: Encoded) -> list[str]:
    """The metrics the validation produces, found by scoring perfect logits (before any training)."""
    import warnings

    targets = validation.text_targets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a constant validation set's correlation
        return list(scorer(problem.perfect_logits(targets), targets))


# The tiny tokenizer's vocabulary (4,096 tokens) is learnt from at most this many texts: more change it
# little and cost a minute of a run on millions of rows.
TINY_TOKENIZER_TEXTS = 1_000_000


def _slices(column, length: int, step: int = 100_000, *, every: int = 1):
    """The values of a (possibly memory-mapped) column, a slice at a time: never all in memory at once.
    With `every`, only rows 0, every, 2 * every ..."""
    for start in range(0, length, step):
        values = column[start : start + step]
        yield from values if every == 1 else values[-start % every :: every]


def _logs_dir(config: TrainConfig) -> str | None:
    return str(Path(config.output) / tracking.LOGS_DIR) if config.report_to else None


def _log_data_parallel(config: TrainConfig, processes: int) -> None:
    if processes > 1:
        logger.info(
            "Data parallel over %d processes: --batch-size %d = %d per process x %d processes x %d accumulation steps",
            processes,
            config.batch_size,
            config.batch_size // (processes * config.gradient_accumulation),
            processes,
            config.gradient_accumulation,
        )


def _run_config(
    config: TrainConfig,
    task: Task,
    problem: problems.Problem,
    data: _Data,
    train_encoded: Encoded,
    validation_encoded: Encoded,
    identity: dict[str, Any],
    runtime,
) -> dict[str, Any]:
    """run_config.json: what eval and predict read back (task, labels, text fields), and how the run was made."""
    labels = problem.labels
    return {
        "roberta_ft_version": __version__,
        "config": config.to_dict(),
        "task": task.name,
        "problem_type": problem.kind,
        "label_names": list(labels.names) if labels else None,
        "text_pair": "text_pair" in data.train.column_names,
        "columns": {"text": config.text_column, "text_pair": config.text_pair_column, "label": config.label_column},
        "validation_source": data.validation_source,
        "num_train_examples": train_encoded.num_texts,
        "num_validation_examples": validation_encoded.num_texts,
        "class_weights": problem.class_weight_table(),
        "data_sha256": identity["data_sha256"],  # the rows read (text, pair, label), as resume checks them
        "data_files": reports.data_files(train=config.data, validation=config.validation),
        "device": runtime.device,
        "precision": runtime.precision,
        "versions": _library_versions(),
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _input_lines(train_set, encoded: Encoded):
    """The file line of each model input (a long text's windows share their text's line), for error messages."""
    if "line" not in train_set.column_names:
        return None
    lines = train_set.with_format("arrow")["line"].to_numpy()
    return lines[encoded.owners] if encoded.owners is not None else lines


def _write_results(
    output: Path, run_config: dict[str, Any], metrics: dict[str, Any], problem: problems.Problem
) -> None:
    from roberta_ft.modelcard import render_model_card

    run_config.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    artifacts.write_json(output / artifacts.METRICS, metrics)
    artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
    reports.write_training_curves(output, metrics)
    report = reports.read_validation_report(output)
    notes = problem.card_notes()
    card = render_model_card(run_config, metrics, report, pictures=reports.pictures(output), notes=notes)
    artifacts.write_text(output / "README.md", card)


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
