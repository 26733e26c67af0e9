"""`roberta_ft.train(config)`: fine-tune a classifier and write a model directory.

One call reads top to bottom in named phases: settings and checks, data, labels (the problem), model,
tokens, the output directory and run record, the loop, calibration (on the best model), the results; the output directory, the run record
and the best-model saver are the run lifecycle (lifecycle.py). docs/architecture.md follows it step by step.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import __version__, artifacts, calibration, checkpoint, lifecycle, problems, reports, tracking
from roberta_ft.best_epoch import BestEpochRule
from roberta_ft.config import TrainConfig
from roberta_ft.data.files import is_file_source
from roberta_ft.data.sources import FILE_OPTIONS, load_source, stratified_split, subsample
from roberta_ft.data.tokens import Encoded, encode_dataset
from roberta_ft.errors import ConfigError
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
class TrainingRows:
    """Training rows read and picked by the caller (`train(config, rows=...)`): a table of the standard columns
    (text, text_pair, label, line) and what they are, for the run record."""

    table: Any  # datasets.Dataset
    description: str


@dataclass
class _Data:
    """The rows read for a run: training and validation tables, and where the validation rows came from."""

    train: Any  # datasets.Dataset
    validation: Any
    validation_source: str


@dataclass
class _Plan:
    """What the settings decide before any data is read: the task, the problem kind, the best-epoch rule, the
    device and precision, and the run (its --output checked against --resume/--overwrite)."""

    config: TrainConfig
    task: Task
    kind: type[problems.Problem]
    rule: BestEpochRule
    runtime: Any  # runtime.Runtime
    run: lifecycle.Run


@dataclass
class _Fit:
    """What the training phase works with: the model, its encoded rows, the run and how it scores."""

    config: TrainConfig
    plan: _Plan
    model: Any
    pad_id: int
    train: Encoded
    validation: Encoded
    accelerator: Any
    identity: dict[str, Any]
    watcher: reports.ValidationWatcher
    train_lines: Any
    progress: Any
    best_logits: Any = None  # the best epoch's validation logits (per text), kept by the best-model saver


def train(config: TrainConfig, progress=None, *, rows: TrainingRows | None = None) -> TrainResult:
    """Fine-tune on `config.data`, or on `rows` (training rows a caller read and picked: an audit's fold)."""
    from roberta_ft import fewshot, loop
    from roberta_ft.runtime import make_accelerator

    # --- settings: every default filled, the task, the problem kind, the rule; --output checked ---------
    given, plan = config, _plan(config)
    task, run = plan.task, plan.run

    # --- data, the method (fine-tune or few-shot) and labels ------------------------------------------
    reading = time.perf_counter()
    train_set = _read_training_rows(plan.config, task, plan.kind) if rows is None else rows.table
    method = _choose_method(plan, train_set)
    config = plan.config
    if method.method == "few-shot":  # its budget under the settings given (fewshot.BUDGET), windows for long texts
        config = given.resolved(budget={**fewshot.BUDGET, **_few_shot_windows(given, config, train_set)})
    data = _with_validation(config, task, plan.kind, train_set, hold_out=method.method == "fine-tune")
    timings = {"read_seconds": round(time.perf_counter() - reading, 3)}
    problem = plan.kind.fit(
        data.train,
        data.validation,
        task=task,
        config=config,
        source=str(config.data),
        validation_source=data.validation_source,
    )
    calibration.check_decision_threshold(problem, config.optimize_threshold)
    identity = checkpoint.run_identity(config.to_dict(), checkpoint.data_fingerprint(data.train, data.validation))
    run.check_identity(identity)

    # --- model and tokens ---------------------------------------------------------------------------
    model, tokenizer = _build_model(config, problem, data.train, method)
    accelerator = make_accelerator(plan.runtime, log_with=list(config.report_to) or None, project_dir=_logs_dir(config))
    logger.info("Device %s, precision %s (%s)", plan.runtime.device, plan.runtime.precision, plan.runtime.reason)
    tokenizing = time.perf_counter()
    train_encoded, validation_encoded = _encode(config, data, tokenizer, problem)
    timings["tokenize_seconds"] = round(time.perf_counter() - tokenizing, 3)
    if method.method == "few-shot":  # what the contrastive phase trains on: the rows, or their windows
        inputs = {str(label): int(n) for label, n in enumerate(np.bincount(np.asarray(train_encoded.targets)))}
        logger.info(
            "%s", fewshot.describe(len(train_encoded), config.batch_size, config.epochs, inputs, texts=len(data.train))
        )
    _check_batch_split(config, accelerator.num_processes)
    scorer = problem.scorer(task, config.metric)
    produced: list[str] = []
    if len(validation_encoded):
        produced = _metric_names(scorer, problem, validation_encoded)
        plan.rule.check_produced(produced, given=config.metric_for_best is not None)

    # --- the output directory and the run record (run_config.json, status "training") ------------------
    record = _run_record(config, task, problem, data, train_encoded, validation_encoded, identity, plan.runtime)
    record["method"] = {"name": method.method, "reason": method.reason}
    if rows is not None:
        record["training_rows"] = rows.description
    run.open(accelerator, {**record, "timings": timings}, tokenizer=tokenizer)
    _log_data_parallel(config, accelerator.num_processes)

    # --- training: fine-tuning, or the few-shot phases; the best model saved as it appears --------------
    if config.report_to:
        progress = tracking.TrackerProgress(accelerator, progress or loop.LogProgress(), config=config.to_dict())
    watcher = reports.ValidationWatcher(
        scorer, validation_encoded.per_text, validation_encoded.text_targets, problem.report
    )
    fit = _Fit(
        config, plan, model, tokenizer.pad_token_id, train_encoded, validation_encoded, accelerator, identity,
        watcher, _input_lines(data.train, train_encoded), progress,
    )  # fmt: skip
    _seed_everything(config.seed)
    with run.recording():
        history, extra = (_fine_tune if method.method == "fine-tune" else _few_shot)(fit, problem)

    # --- calibration and thresholds: fitted on the best model's validation logits, folded into its weights --
    problem, calibrated = _calibrate(fit, problem)

    # --- results: metrics.json, run_config.json complete, pictures, the model card --------------------
    metrics = {**_metrics(task, plan.rule, history), **extra, **calibrated}
    if "f1" in produced and problem.positive_label is not None:
        metrics["positive_label"] = problem.positive_label  # the label whose F1 `f1` is
    run.complete(metrics, card=lambda: _model_card(run, metrics, problem))
    best = history.best
    if plan.rule.metric in best:
        logger.info(
            "Best %s %.4f at epoch %s; model saved in %s",
            plan.rule.metric,
            best[plan.rule.metric],
            best["epoch"],
            run.output,
        )
    else:  # few-shot without --validation: nothing scored it
        logger.info("Trained %s epochs, no validation rows scored them; model saved in %s", best["epoch"], run.output)
    return TrainResult(
        run.output, metrics, history.train_samples_per_second, plan.runtime.device, plan.runtime.precision
    )


def _best_saver(fit: _Fit):
    """The run's on_best: the model, and the best epoch's validation report (validation_report.json, pictures)."""

    def save_best(output: Path, model_to_save, record: dict[str, Any]) -> None:
        artifacts.save_pretrained_files(output, model=model_to_save)
        reports.write_best_epoch(output, fit.watcher.best_report(), record)

    metric = fit.plan.rule.metric
    saver = fit.plan.run.best_model_saver(
        save_best, lambda r: f"epoch {r['epoch']}, {metric} {r[metric]:.4f}" if metric in r else f"epoch {r['epoch']}"
    )

    def on_best(model_to_save, record: dict[str, Any]) -> None:
        # On every process (the model is saved by the main one only): calibration then reads these logits on
        # all of them alike, instead of one process gathering logits the others never compute.
        fit.best_logits = fit.watcher.logits
        saver(model_to_save, record)

    return on_best


def _fine_tune(fit: _Fit, problem: problems.Problem):
    """Fine-tuning: the classifier's loss on every row, every epoch evaluated, the best epoch kept."""
    from roberta_ft import loop

    objective = loop.Classification(
        fit.train, fit.validation, fit.pad_id, problem.loss, fit.watcher.metrics, fit.config.eval_batch_size
    )
    history = loop.train(
        fit.model,
        fit.train,
        lifecycle.loop_settings(fit.config, fit.plan.rule),
        objective=objective,
        accelerator=fit.accelerator,
        on_best=_best_saver(fit),
        progress=fit.progress,
        checkpoints=fit.plan.run.checkpointer(keep=fit.config.keep_checkpoints, identity=fit.identity),
        resume=fit.plan.run.resume_from,
        train_lines=fit.train_lines,
    )
    return history, {}


def _few_shot(fit: _Fit, problem: problems.Problem):
    """Few-shot (fewshot.py): the contrastive phase through the loop (checkpoints, exact resume), then the head
    fitted on the frozen features; the result is scored on the validation rows when there are any."""
    from roberta_ft import fewshot, loop
    from roberta_ft.forward import predict_logits

    config, run = fit.config, fit.plan.run
    # The contrastive phase has no validation rows of its own and keeps its last state; its "best" epoch is
    # its lowest training loss, for the log only.
    rule = BestEpochRule("train_loss", greater_is_better=False)
    # Its epochs are a step or a few: checkpoints by --save-every or time only, not at each epoch's end.
    settings = lifecycle.loop_settings(config, rule, length_bucketing=False, checkpoint_epochs=False)
    with fewshot.contrastive_setup(fit.model):
        history = loop.train(
            fit.model,
            fit.train,
            settings,
            objective=fewshot.PairContrast(fit.train, fit.pad_id),
            accelerator=fit.accelerator,
            on_best=lambda model, record: None,
            progress=fit.progress,
            checkpoints=run.checkpointer(keep=config.keep_checkpoints, identity=fit.identity),
            resume=run.resume_from,
            train_lines=fit.train_lines,
        )
    started = time.perf_counter()
    head = fewshot.fit_head(
        fit.model, fit.train, accelerator=fit.accelerator, pad_id=fit.pad_id, batch_size=config.eval_batch_size,
        seed=config.seed,
    )  # fmt: skip
    logger.info(
        "Few-shot head: logistic regression on %d rows, training accuracy %.4f", head["rows"], head["train_accuracy"]
    )
    tuned = fewshot.end_to_end(fit.model, fit.train, accelerator=fit.accelerator, pad_id=fit.pad_id, seed=config.seed)
    history.train_seconds += time.perf_counter() - started
    logger.info(
        "Few-shot end to end: %d steps (%d epochs, batches of %d), last loss %.4f",
        tuned["steps"], tuned["epochs"], tuned["batch_size"], tuned["last_loss"],
    )  # fmt: skip
    last = history.epochs[-1] if history.epochs else {"epoch": 0, "step": 0, "train_loss": float("nan")}
    record = {"epoch": last["epoch"], "step": last["step"], "train_loss": last["train_loss"]}
    if len(fit.validation):
        logits = predict_logits(
            fit.model, fit.validation, config.eval_batch_size, accelerator=fit.accelerator, pad_id=fit.pad_id
        )
        record.update(fit.watcher.metrics(logits))
    history.best = record
    _best_saver(fit)(fit.accelerator.unwrap_model(fit.model), record)
    return history, {"few_shot": {"head": head, "contrastive_epochs": len(history.epochs), "end_to_end": tuned}}


def _calibrate(fit: _Fit, problem: problems.Problem) -> tuple[problems.Problem, dict[str, Any]]:
    """Calibration (--calibration) and decision thresholds (--threshold-metric, --optimize-threshold) on the
    best model's validation logits (calibration.py): the calibration folded into the saved model's output layer,
    the thresholds into the run record. Returns the problem with its thresholds and what metrics.json adds."""
    from roberta_ft.modeling import output_layer

    config, run = fit.config, fit.plan.run
    options = dict(
        calibration=config.calibration,
        threshold_metric=config.threshold_metric,
        optimize_threshold=config.optimize_threshold,
    )
    steps = calibration.what_applies(problem, **options)
    if not steps:
        return problem, {}
    if not len(fit.validation):
        logger.info("No validation rows: %s skipped (pass --validation to fit them)", " and ".join(steps))
        return problem, {}
    if options["calibration"] != "none" and output_layer(fit.accelerator.unwrap_model(fit.model)) is None:
        logger.warning("Calibration skipped: the model's head has no linear output layer to fold it into")
        options["calibration"] = "none"
    started = time.perf_counter()
    logits = fit.best_logits if fit.best_logits is not None else _saved_model_logits(fit)
    fitted = calibration.fit(problem, logits, fit.validation.text_targets, **options)
    if fitted.scale is not None and run.is_main_process:
        calibration.fold_into_saved_model(run.output, fitted, trust_remote_code=config.trust_remote_code)
    fitted.record["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("%s", calibration.describe(fitted))
    extra = {"calibration": fitted.record}
    if fitted.thresholds is not None:
        run.record["thresholds"] = fitted.thresholds
        extra["thresholds"] = fitted.thresholds
        problem = problem.with_chosen_thresholds(fitted.thresholds)
    return problem, extra


def _saved_model_logits(fit: _Fit):
    """The validation logits of the best model as saved (a resumed run whose best epoch came before it)."""
    from roberta_ft.forward import predict_logits
    from roberta_ft.modeling import load_trained

    model, _ = load_trained(fit.plan.run.output, trust_remote_code=fit.config.trust_remote_code)
    model = model.to(fit.accelerator.device)
    logits = predict_logits(
        model, fit.validation, fit.config.eval_batch_size, accelerator=fit.accelerator, pad_id=fit.pad_id
    )
    return fit.validation.per_text(logits)


def _metrics(task: Task, rule: BestEpochRule, history) -> dict[str, Any]:
    """metrics.json: every evaluation, the best one, and the speed."""
    return {
        "task": task.name,
        "primary_metric": rule.metric,
        "epochs": history.epochs,
        "best": history.best,
        "stopped_early": history.stopped_early,
        "train_seconds": history.train_seconds,
        "train_samples_per_second": history.train_samples_per_second,
        "steps": history.steps,
    }


def _plan(config: TrainConfig) -> _Plan:
    from roberta_ft.modeling import TINY_SHAPE
    from roberta_ft.runtime import resolve_runtime

    config = config.resolved()
    task = get_task(config.task)
    kind = problems.for_training(task, config)
    rule = BestEpochRule.for_training(task, kind, config)
    tracking.check_installed(config.report_to)
    runtime = resolve_runtime(
        config.device, config.precision, width=TINY_SHAPE["hidden_size"] if config.is_tiny else None
    )
    run = lifecycle.Run(config.output, overwrite=config.overwrite, resume=config.resume)
    return _Plan(config, task, kind, rule, runtime, run)


def _read_training_rows(config: TrainConfig, task: Task, kind: type[problems.Problem]):
    return load_source(config.data, "train", task, **_source_options(config, kind))


def read_training_rows(config: TrainConfig):
    """What `train(config)` reads before it trains: the resolved settings, the task, the problem kind and the
    training rows (the commands made of train runs, such as audit, read them once and give each run its rows)."""
    config = config.resolved()
    task = get_task(config.task)
    kind = problems.for_training(task, config)
    return config, task, kind, _read_training_rows(config, task, kind)


def read_rows(config: TrainConfig, source: str, role: str, task: Task, kind: type[problems.Problem], **options):
    """Another file (or split) read with the run's file options, as `train` reads --validation."""
    return load_source(source, role, task, **{**_source_options(config, kind), **options})


def _source_options(config: TrainConfig, kind: type[problems.Problem]) -> dict[str, Any]:
    return {"data_dir": config.data_dir, "scores": not kind.has_labels} | {
        name: getattr(config, name) for name in FILE_OPTIONS
    }


def _choose_method(plan: _Plan, train_set):
    """Fine-tuning or few-shot (--method), from the problem and the training rows per class; logged."""
    from roberta_ft import fewshot
    from roberta_ft.data.labels import label_codes

    class_rows = {}
    if plan.kind.has_labels and plan.kind.one_decision_per_text:
        codes, values = label_codes(train_set)
        counts = np.bincount(codes, minlength=len(values))
        class_rows = {str(value): int(count) for value, count in zip(values, counts, strict=True)}
    choice = fewshot.choose(
        plan.config.method,
        has_labels=plan.kind.has_labels,
        multi_label=not plan.kind.one_decision_per_text,
        pretrained=not plan.config.is_tiny,
        class_rows=class_rows,
    )
    logger.info("Method: %s (%s)", choice.method, choice.reason)
    return choice


def _few_shot_windows(given: TrainConfig, config: TrainConfig, train_set) -> dict[str, Any]:
    """Few-shot on long single texts with --long-text not given: the settings that read them as windows
    (fewshot.window_budget), logged; else nothing."""
    from roberta_ft import fewshot, modeling

    if given.long_text is not None or "text_pair" in train_set.column_names or config.is_tiny:
        return {}  # (tiny's tokenizer is learnt from the texts later)
    tokenizer = modeling.load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    found = fewshot.window_budget(tokenizer, list(train_set["text"]), config.max_length)
    if found is None:
        return {}
    settings, reason = found
    logger.info("%s", reason)
    return settings


def _with_validation(config: TrainConfig, task: Task, kind: type[problems.Problem], train_set, *, hold_out: bool):
    """Validation rows: --validation, the task's own split, or (when `hold_out`) a held-out share; else none."""
    options = _source_options(config, kind)
    if config.validation is not None:
        data = _Data(train_set, load_source(config.validation, "validation", task, **options), config.validation)
    elif not is_file_source(config.data) and task.load is not None:
        validation_set = load_source(config.data, "validation", task, **options)
        data = _Data(train_set, validation_set, f"{task.name} {task.splits.get('validation', 'validation')}")
    elif not hold_out:
        logger.info("No --validation file: no rows are held out (pass --validation to score the model)")
        data = _Data(train_set, train_set.select([]), "none")
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


def _build_model(config: TrainConfig, problem: problems.Problem, train_set, method):
    """The model with a head for the problem's labels, and its tokenizer (trained on the texts for `tiny`); for
    few-shot training, with the mean-pooling layer on top (fewshot.py)."""
    from roberta_ft import fewshot, modeling

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
    lifecycle.check_max_length(model, config.max_length, config.model)
    if method.method == "few-shot":
        fewshot.check_family(model, config.model)
        fewshot.add_mean_pooling_layer(model)
        logger.info("Few-shot: one more encoder layer pools the mean of the token states into the first token")
    lifecycle.describe_model(model, config.model)
    return model, tokenizer


def _encode(config: TrainConfig, data: _Data, tokenizer, problem: problems.Problem) -> tuple[Encoded, Encoded]:
    """The training and validation rows as token ids (through the token cache) with their targets."""
    long = dict(strategy=config.long_text, stride=config.stride, workers=config.workers)
    labels = problem.labels
    train_encoded = encode_dataset(data.train, tokenizer, config.max_length, labels, source=str(config.data), **long)
    validation_encoded = encode_dataset(
        data.validation, tokenizer, config.max_length, labels, source=data.validation_source, **long
    )
    return train_encoded, validation_encoded


def _check_batch_split(config: TrainConfig, processes: int) -> None:
    if config.batch_size % (config.gradient_accumulation * processes):
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be split over {processes} processes "
            f"x {config.gradient_accumulation} accumulation steps",
            "make the batch size a multiple of processes x --gradient-accumulation",
        )


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


def _run_record(
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
        "positive_label": problem.positive_label,  # binary: the label whose F1 is `f1`
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
    }


def _input_lines(train_set, encoded: Encoded):
    """The file line of each model input (a long text's windows share their text's line), for error messages."""
    if "line" not in train_set.column_names:
        return None
    lines = train_set.with_format("arrow")["line"].to_numpy()
    return lines[encoded.owners] if encoded.owners is not None else lines


def _model_card(run: lifecycle.Run, metrics: dict[str, Any], problem: problems.Problem) -> str:
    from roberta_ft.modelcard import render_model_card

    report = reports.read_validation_report(run.output)
    return render_model_card(run.record, metrics, report, pictures=run.pictures(), notes=problem.card_notes())


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
