"""One run's lifecycle, shared by every command that trains (train, pretrain; a seed, a trial or a fold is a
train run). A command composes it in this order; docs/architecture.md shows where a new kind of run plugs in.

1. `Run(output, overwrite=..., resume=...)`: --output checked against --overwrite/--resume before any work
   (nothing written yet); the checkpoint a resumed run continues from.
2. `run.check_identity(identity)`: a resumed run must have the checkpoint's settings and data
   (`checkpoint.run_identity`).
3. `run.open(accelerator, record, tokenizer=...)`: the output directory prepared by the main process while
   the others wait, then the tokenizer files and the run record (run_config.json: status "training",
   when it started, which checkpoint it resumed from).
4. `run.best_model_saver(save, describe)`: the loop's `on_best`, saving the best model as it appears.
5. `with run.recording():` around the loop: a run that stops records why (status "stopped" with its
   error, "pruned" or another status of `RunStopped`, "interrupted" on Ctrl-C) before the error goes on.
6. `run.complete(metrics, card=..., curves=...)`: metrics.json, the record "complete", the training curves
   and the model card.

`loop_settings` turns a command's settings into the loop's, and `describe_model` logs what was loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from roberta_ft import artifacts, checkpoint, reports
from roberta_ft.best_epoch import BestEpochRule
from roberta_ft.config import SAVE_EVERY_SECONDS
from roberta_ft.errors import ConfigError, RunStopped, TrainingError

logger = logging.getLogger(__name__)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Run:
    """A training run's output directory and its record (run_config.json), from the first check to the end."""

    def __init__(self, output: str | Path, *, overwrite: bool, resume: bool) -> None:
        self.output = Path(output)
        self.overwrite = overwrite
        # Checked now; created (or cleared, with --overwrite) in `open`, once the inputs are known to be good.
        self.resume_from = checkpoint.check_output_dir(output, overwrite=overwrite, resume=resume)
        self.record: dict[str, Any] = {}
        self.accelerator = None

    @property
    def resuming(self) -> bool:
        return self.resume_from is not None

    @property
    def is_main_process(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def check_identity(self, identity: dict[str, Any]) -> None:
        """A resumed run must be the run its checkpoint was made by: same settings, same data."""
        if self.resume_from is not None:
            self.resume_from.check_identity(identity)

    def open(self, accelerator, record: dict[str, Any], *, tokenizer=None) -> None:
        """Prepare the output directory (main process; every process checked it and waits), then write the
        tokenizer files and the run record with status "training"."""
        self.accelerator = accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            checkpoint.prepare_output_dir(self.output, overwrite=self.overwrite, resume=self.resume_from)
        accelerator.wait_for_everyone()
        self.record = {**record, "status": "training", "started": _now()}
        if self.resume_from is not None:
            self.record["resumed_from"] = self.resume_from.path.name
        if self.is_main_process:
            if tokenizer is not None:
                artifacts.save_pretrained_files(self.output, tokenizer=tokenizer)
            self._write_record()

    def previous_record(self) -> dict[str, Any]:
        """The record as the run being resumed left it (empty for a new run)."""
        return artifacts.read_run_config(self.output) if self.resume_from is not None else {}

    def checkpointer(self, *, keep: int, identity: dict[str, Any]) -> checkpoint.Checkpointer:
        return checkpoint.Checkpointer(self.output, keep=keep, identity=identity, enabled=self.is_main_process)

    def best_model_saver(
        self, save: Callable[[Path, Any, dict[str, Any]], None], describe: Callable[[dict[str, Any]], str]
    ) -> Callable[[Any, dict[str, Any]], None]:
        """The loop's on_best: `save(output, model, record)` on the main process, then one log line
        (`describe(record)`)."""

        def on_best(model, record: dict[str, Any]) -> None:
            if self.is_main_process:
                save(self.output, model, record)
                logger.info("Saved the best model so far (%s)", describe(record))

        return on_best

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Around the loop: how a run that does not complete ended goes into its record, then the error goes on."""
        try:
            yield
        except TrainingError as error:
            self._end("stopped", error=error.one_line())
            raise
        except RunStopped as stop:  # stopped by the caller (a search pruning the run): the best model is saved
            self._end(stop.status, stopped=stop.one_line())
            raise
        except KeyboardInterrupt:
            self._end("interrupted")
            raise

    def complete(self, metrics: dict[str, Any], *, card: Callable[[], str], curves: dict[str, Any] | None = None):
        """The results: metrics.json, the record "complete", the best epoch's confusion matrix, the training
        curves (`curves`, default `metrics`) and the model card (`card()`, rendered once the rest is written);
        every process waits for them."""
        if self.is_main_process:
            self.record.update(status="complete", finished=_now())
            artifacts.write_json(self.output / artifacts.METRICS, metrics)
            self._write_record()
            reports.draw_best_epoch(self.output)
            reports.write_training_curves(self.output, curves if curves is not None else metrics)
            artifacts.write_text(self.output / "README.md", card())
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def pictures(self) -> list[str]:
        return reports.pictures(self.output)

    def _end(self, status: str, **details: Any) -> None:
        if self.is_main_process and self.record:
            self.record.update(status=status, finished=_now(), **details)
            self._write_record()
            reports.draw_best_epoch(self.output)  # the best model so far is saved: its picture beside it

    def _write_record(self) -> None:
        artifacts.write_json(self.output / artifacts.RUN_CONFIG, self.record)


def loop_settings(settings, rule: BestEpochRule, **overrides: Any):
    """The loop's settings from a command's (TrainConfig, PretrainConfig): each loop setting is the command
    setting of the same name, unless `overrides` gives it."""
    from roberta_ft.loop import LoopSettings

    values = {"rule": rule, "save_every_seconds": SAVE_EVERY_SECONDS, **overrides}
    for field in dataclasses.fields(LoopSettings):
        if field.name not in values and field.default is dataclasses.MISSING:
            values[field.name] = getattr(settings, field.name)
    return LoopSettings(**{**values, "adam_betas": tuple(values["adam_betas"])})


def check_max_length(model, max_length: int, model_name: str) -> None:
    """--max-length must fit the model's position embeddings."""
    from roberta_ft.modeling import position_limit

    limit = position_limit(model)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"--max-length {max_length} is more than model {model_name!r} supports ({limit} tokens)",
            f"pass --max-length {limit} or less",
        )


def describe_model(model, model_name: str) -> None:
    logger.info("Model %s (%s), %.1fM parameters", model_name, type(model).__name__, model.num_parameters() / 1e6)
