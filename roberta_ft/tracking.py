"""Experiment tracking through Accelerate's trackers (`--report-to tensorboard,wandb,mlflow`).

`TrackerProgress` is a loop `Progress` that logs what the loop reports (the training loss, learning
rate and throughput per step; the validation metrics per epoch) to the trackers, then hands every
call on to the progress display it wraps. The loop itself knows nothing of tracking.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable
from typing import Any

from roberta_ft.errors import ConfigError

TRACKERS = ("tensorboard", "wandb", "mlflow")
LOGS_DIR = "logs"  # under the output directory: TensorBoard event files, the MLflow store
PROJECT = "roberta-ft"  # the project (wandb) / experiment (mlflow) / run folder (tensorboard) name
# The package each tracker needs (TensorBoard: torch's SummaryWriter needs the `tensorboard` package).
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def parse_report_to(value: Any) -> tuple[str, ...]:
    """ "tensorboard,wandb" or a list of names -> a tuple of distinct tracker names; "none" -> ()."""
    if value is None:
        return ()
    items: Iterable[str] = value.split(",") if isinstance(value, str) else value
    names = [str(item).strip().lower() for part in items for item in str(part).split(",") if str(item).strip()]
    names = [name for name in names if name != "none"]
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--report-to {name!r} is not a known tracker", f"use one of {', '.join(TRACKERS)}")
    return tuple(dict.fromkeys(names))


def check_installed(names: Iterable[str]) -> None:
    """Accelerate silently drops a tracker whose package is missing; say so instead."""
    for name in names:
        package = _PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"--report-to {name} needs the {package!r} package, which is not installed",
                f"pip install {package}, or drop {name} from --report-to",
            )


def tracker_config(config: dict[str, Any]) -> dict[str, Any]:
    """Settings as trackers accept them (TensorBoard's hparams take numbers, strings and booleans only)."""
    flat = {}
    for key, value in config.items():
        if value is None:
            continue
        flat[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


class TrackerProgress:
    """A loop Progress that logs to Accelerate's trackers and forwards to another Progress."""

    def __init__(self, accelerator, inner, *, config: dict[str, Any], project: str = PROJECT) -> None:
        self.accelerator = accelerator
        self.inner = inner
        self.config = tracker_config(config)
        self.project = project
        self.last_loss: float | None = None

    def start(self, total_steps: int, epochs: int) -> None:
        self.accelerator.init_trackers(self.project, config=self.config)
        self.inner.start(total_steps, epochs)

    def step(self, step, epoch, loss, learning_rate, samples_per_second) -> None:
        # The loss is the epoch's running mean, re-read every few steps on a GPU: log it when it is new.
        if math.isfinite(loss) and loss != self.last_loss:
            self.last_loss = loss
            values = {"train/loss": loss, "train/learning_rate": learning_rate, "train/epoch": epoch}
            if samples_per_second:
                values["train/samples_per_second"] = samples_per_second
            self.accelerator.log(values, step=step)
        self.inner.step(step, epoch, loss, learning_rate, samples_per_second)

    def epoch_end(self, epoch, metrics, best) -> None:
        values = {
            f"eval/{name}": value
            for name, value in metrics.items()
            if isinstance(value, float) and name not in ("epoch", "step", "train_loss")
        }
        values["train/epoch_loss"] = metrics.get("train_loss", math.nan)
        self.accelerator.log(values, step=metrics.get("step"))
        self.inner.epoch_end(epoch, metrics, best)

    def stop(self) -> None:
        try:
            self.accelerator.end_training()
        finally:
            self.inner.stop()
