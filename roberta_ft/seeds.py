"""`train_seeds(config, seeds)`: one training per seed, and the spread of their best-epoch scores.

Small GLUE sets (RTE, MRPC, STS-B, CoLA) scatter by several points from seed to seed; published
RoBERTa dev numbers are medians over five seeds. Each run is a full model directory
``<output>/seed-<N>``; ``<output>/seeds.json`` holds the per-seed scores and their summary, and is
rewritten after every run, so a stopped sweep still leaves the finished runs' numbers.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft import artifacts
from roberta_ft.config import TrainConfig
from roberta_ft.errors import ConfigError

logger = logging.getLogger(__name__)

SEEDS_FILE = "seeds.json"
# Keys of a best-epoch record that are bookkeeping, not validation scores.
_NOT_SCORES = ("epoch", "step", "train_loss")


def parse_seeds(text: str) -> list[int]:
    """ "1,2,3" -> [1, 2, 3]; every seed a distinct non-negative integer."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is not a list of integers", "pass e.g. --seeds 1,2,3,4,5") from None
    check_seeds(seeds)
    return seeds


def check_seeds(seeds: Sequence[int]) -> None:
    if not seeds:
        raise ConfigError("--seeds names no seed", "pass e.g. --seeds 1,2,3,4,5")
    bad = [seed for seed in seeds if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0]
    if bad:
        raise ConfigError(f"seeds must be non-negative integers, got {bad[0]!r}", "pass e.g. --seeds 1,2,3,4,5")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds repeats a seed ({', '.join(map(str, seeds))})", "give each seed once")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, mean, sample standard deviation (0 for one run), min, max and the values themselves."""
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


@dataclass
class SeedsResult:
    output_dir: Path
    task: str
    primary_metric: str
    runs: list[dict[str, Any]]  # per seed: seed, output_dir, best_epoch, metrics (the best epoch's scores)
    complete: bool = True

    @property
    def seeds(self) -> list[int]:
        return [run["seed"] for run in self.runs]

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        if not self.runs:
            return {}
        names = [name for name in self.runs[0]["metrics"] if all(name in run["metrics"] for run in self.runs)]
        return {name: summarize([run["metrics"][name] for run in self.runs]) for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "task": self.task,
            "primary_metric": self.primary_metric,
            "seeds": self.seeds,
            "status": "complete" if self.complete else "running",
            "summary": self.summary,
            "runs": self.runs,
        }


def _is_complete(output: Path) -> bool:
    run = artifacts.read_run_config(output)
    return run.get("status") == "complete" and (output / artifacts.METRICS).exists()


def train_seeds(
    config: TrainConfig,
    seeds: Sequence[int],
    *,
    progress: Callable[[], Any] | None = None,
) -> SeedsResult:
    """Train ``config`` once per seed into ``<config.output>/seed-<N>`` and write ``seeds.json``.

    ``progress`` makes a fresh progress display for each run (e.g. ``RichProgress``); None logs.
    ``config.seed`` is ignored: each run uses its own seed. With ``config.resume``, seeds whose run is
    complete are kept, a stopped run is resumed from its last checkpoint, and missing seeds are trained.
    """
    from roberta_ft import problems
    from roberta_ft.best_epoch import BestEpochRule
    from roberta_ft.registry import get_task
    from roberta_ft.train import train

    check_seeds(seeds)
    given = config  # each run resolves the settings given itself (a method's budget comes under them)
    config = config.resolved()  # an unknown task or a bad setting fails before the output dir is touched
    task = get_task(config.task)
    rule = BestEpochRule.for_training(task, problems.for_training(task, config), config)  # as each run picks
    if config.resume:
        root = Path(config.output)
        if not root.is_dir():
            raise ConfigError(f"--resume: {root} holds no --seeds runs to resume", "drop --resume to start them")
    else:
        root = artifacts.prepare_output_dir(config.output, overwrite=config.overwrite)
    result = SeedsResult(root, task.name, rule.metric, runs=[], complete=False)
    for number, seed in enumerate(seeds, start=1):
        output = root / f"seed-{seed}"
        if config.resume and _is_complete(output):
            logger.info("Seed %d (%d of %d): %s is complete, kept as is", seed, number, len(seeds), output)
            best = json.loads((output / artifacts.METRICS).read_text(encoding="utf-8"))["best"]
        else:
            logger.info("Seed %d (%d of %d) -> %s", seed, number, len(seeds), output)
            # --resume continues a seed's stopped run; a seed not started yet starts afresh.
            resume = config.resume and output.is_dir() and any(output.iterdir())
            run = train(
                given.replace(seed=seed, output=str(output), overwrite=False, resume=resume),
                progress=progress() if progress else None,
            )
            best = run.metrics["best"]
        scores = {k: float(v) for k, v in best.items() if k not in _NOT_SCORES and isinstance(v, (int, float))}
        result.runs.append({"seed": seed, "output_dir": str(output), "best_epoch": best["epoch"], "metrics": scores})
        result.complete = number == len(seeds)
        artifacts.write_json(root / SEEDS_FILE, result.to_dict())
    primary = result.summary.get(result.primary_metric)
    if primary:
        logger.info(
            "%s over %d seeds: median %.4f, mean %.4f +- %.4f",
            result.primary_metric,
            len(seeds),
            primary["median"],
            primary["mean"],
            primary["std"],
        )
    return result
