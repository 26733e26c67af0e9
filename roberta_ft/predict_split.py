"""`predict_split(config)`: predict a split of a task's own dataset, e.g. the GLUE test sets.

Used by `roberta-ft predict MODEL_DIR glue/sst2 --split test`: the split is loaded through the
task's loader (unlabelled test splits included), predictions are mapped into the task's label
order by name (whatever order the model uses), and written as rows (``--output`` or stdout) and,
with ``--submission DIR``, as the task's leaderboard file through ``task.extras["write_submission"]``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from roberta_ft import artifacts
from roberta_ft.config import PredictConfig
from roberta_ft.data import encode_dataset, is_file_source, load_source
from roberta_ft.errors import ConfigError
from roberta_ft.predict import OUTPUT_FORMATS, PredictResult, RowWriter, _softmax, output_path
from roberta_ft.registry import Task

logger = logging.getLogger(__name__)


def input_task(source: str) -> Task | None:
    """The task whose dataset ``source`` names (``glue/sst2``), or None for a file."""
    from roberta_ft.registry import available_tasks

    if is_file_source(source):
        return None
    task = available_tasks().get(source)
    return task if task is not None and task.load is not None else None


def predict_split(config: PredictConfig, stdout: TextIO | None = None) -> PredictResult:
    from roberta_ft.evaluate import align_model_to_task, to_task_order
    from roberta_ft.loop import predict_logits
    from roberta_ft.modeling import load_trained
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    config.validate()
    task = input_task(config.input)
    if task is None:
        raise ConfigError(f"{config.input!r} does not name a task dataset", "pass e.g. glue/sst2")
    writer = task.extras.get("write_submission")
    if config.submission is not None and writer is None:
        raise ConfigError(f"task {task.name!r} has no leaderboard file format", "drop --submission; use --output")
    out_path = output_path(config)
    model_dir = artifacts.check_model_dir(config.model_dir)
    run = artifacts.read_run_config(model_dir)
    trained = run.get("config", {})

    dataset = load_source(
        config.input, config.split, task, data_dir=config.data_dir or trained.get("data_dir"), need_label=False
    )
    if "label" in dataset.column_names:  # a labelled split (e.g. validation): predicted like a test split
        dataset = dataset.remove_columns("label")
    pair = "text_pair" in dataset.column_names
    if run and bool(run.get("text_pair")) != pair:
        raise ConfigError(
            f"the model was trained on {'text pairs' if run.get('text_pair') else 'single texts'} but "
            f"{task.name} gives {'text pairs' if pair else 'single texts'}",
            "predict with a model trained for this task",
        )

    runtime = resolve_runtime(config.device, config.precision)
    model, tokenizer = load_trained(model_dir, trust_remote_code=config.trust_remote_code)
    label_map, permutation = align_model_to_task(model.config, task)
    regression = label_map is None
    max_length = config.max_length or trained.get("max_length") or min(512, tokenizer.model_max_length)
    encoded = encode_dataset(dataset, tokenizer, max_length, None, source=f"{task.name} {config.split}")

    accelerator = make_accelerator(runtime)
    model = model.to(accelerator.device).eval()
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)
    started = time.perf_counter()
    logits = predict_logits(model, encoded, config.batch_size, accelerator=accelerator, pad_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    logits = to_task_order(logits, permutation)

    idx = dataset["idx"] if "idx" in dataset.column_names else [line - 1 for line in dataset["line"]]
    if regression:
        predictions = logits[:, 0]
        values = [{"score": round(float(score), 6)} for score in predictions]
    else:
        probabilities = _softmax(logits)
        predictions = probabilities.argmax(-1)
        values = [
            {"label": label_map.names[k], "probability": round(float(p[k]), 6)}
            for k, p in zip(predictions, probabilities, strict=True)
        ]

    submission = None
    if config.submission is not None:
        submission = str(writer(task, list(idx), predictions.tolist(), config.submission))
        logger.info("Wrote %d predictions to %s", len(idx), submission)
    if out_path is not None or submission is None:
        output_fields = ["score"] if regression else ["label", "probability"]
        fields = ["idx", "text"] + (["text_pair"] if pair else []) + output_fields

        def write(handle: TextIO, fmt: str) -> None:
            rows = RowWriter(handle, fmt, ["idx", *output_fields] if fmt == "plain" else fields)
            texts, pairs = dataset["text"], dataset["text_pair"] if pair else None
            for i, value in enumerate(values):
                row = {"idx": int(idx[i]), "text": texts[i], **({"text_pair": pairs[i]} if pair else {}), **value}
                rows.write(row)

        if out_path is None:
            write(stdout or sys.stdout, "plain")
        else:
            artifacts.atomic_write(out_path, lambda handle: write(handle, OUTPUT_FORMATS[out_path.suffix.lower()]))
            logger.info("Wrote %d predictions to %s", len(values), out_path)
    return PredictResult(len(dataset), len(dataset), seconds, str(out_path) if out_path else None, submission)
