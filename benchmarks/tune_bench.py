"""`roberta-ft tune` on a synthetic task where the learning rate decides success.

The task: each text holds a few cue words among filler words, its label is the polarity most of its
cues share, and a share of the labels is flipped (so no run reaches 100%). The `tiny` model learns it
within a few epochs in a narrow band of learning rates; below the band it does not learn in time,
above it the training diverges or stalls at chance. Everything but the learning rate is fixed
(seed, batch size, epochs, warm-up), so the learning rate alone decides a run.

Three studies, on the same data and settings (all through `roberta_ft.tune.tune`):

1. the grid: every learning rate of a log grid over the range (no pruning): each point's accuracy;
2. `--trials 12` of TPE over the same range, log-uniform, with the median pruner;
3. the same study without pruning (same sampler seed).

It reports the best grid point, the best tuned trial and the gap in points, the epochs run with and
without pruning (and the cut), and the overhead per trial: a trial's wall time less its training
loop's `train_seconds` (model and tokenizer set-up, evaluation, checkpoints and saving the model).
The accuracies and epoch counts do not depend on the machine's load; the seconds do.

    nice -n 19 python benchmarks/tune_bench.py                 # the real run (~15-60 min on 2 shared cores)
    nice -n 19 python benchmarks/tune_bench.py --quick         # a few seconds' smoke test
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
DEFAULT_WORK_DIR = BENCHMARKS_DIR / "results" / "tune"

FILLER = [f"w{i}" for i in range(300)]
POSITIVE = [f"up{i}" for i in range(12)]
NEGATIVE = [f"down{i}" for i in range(12)]


def write_task(path: Path, rows: int, *, seed: int, noise: float, cues: int = 3, length: int = 14) -> Path:
    """Texts of `length` words holding `cues` cue words; the label is the majority cue's polarity."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            polarities = [rng.random() < 0.5 for _ in range(cues)]
            words = [rng.choice(FILLER) for _ in range(length - cues)]
            for positive in polarities:
                words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if positive else NEGATIVE))
            label = sum(polarities) * 2 > cues
            if rng.random() < noise:
                label = not label
            writer.writerow([" ".join(words), "pos" if label else "neg"])
    return path


def space_file(path: Path, low: float, high: float, grid: list[float] | None) -> str:
    if grid is not None:
        text = "grid = true\n[learning_rate]\nchoices = [" + ", ".join(f"{v:g}" for v in grid) + "]\n"
    else:
        text = f"[learning_rate]\nlow = {low:g}\nhigh = {high:g}\nlog = true\n"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_study(name: str, work: Path, train_settings: dict, space: str, *, trials: int | None, pruner: str, seed: int):
    from roberta_ft.config import TrainConfig, TuneConfig
    from roberta_ft.tune import tune

    started = time.perf_counter()
    config = TuneConfig(
        train=TrainConfig(**train_settings, output=str(work / name)),
        trials=trials,
        space=space,
        pruner=pruner,
        sampler_seed=seed,
        overwrite=True,
    )
    document = tune(config).to_dict()
    document["wall_seconds"] = time.perf_counter() - started
    print(f"{name}: {len(document['trials'])} trials, {document['epochs_run']} epochs", file=sys.stderr)
    return document


def overhead(document: dict, first_study: dict) -> dict:
    """Per complete trial: wall seconds, training-loop seconds and the rest (the overhead)."""
    trials = [t for t in document["trials"] if t["state"] == "complete" and t["train_seconds"] is not None]
    walls = [t["seconds"] for t in trials]
    loops = [t["train_seconds"] for t in trials]
    rest = [wall - loop for wall, loop in zip(walls, loops, strict=True)]
    return {
        "trials": len(trials),
        "trial_seconds_median": statistics.median(walls),
        "train_seconds_median": statistics.median(loops),
        "overhead_seconds_median": statistics.median(rest),
        "overhead_share": sum(rest) / sum(walls),
        # The process's first trial also pays the imports and the first tokenization.
        "first_trial_overhead_seconds": first_study["trials"][0]["seconds"] - first_study["trials"][0]["train_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke test (numbers meaningless)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every study's tune.json content and the summary here")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ROBERTA_FT_CACHE", str(args.work_dir / "token-cache"))
    import logging

    from roberta_ft.console import quiet_libraries

    logging.basicConfig(level=logging.WARNING)
    quiet_libraries(verbose=False)  # no progress bars of the libraries
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    rows, validation_rows, epochs, trials = (1200, 400, args.epochs, args.trials)
    low, high = 1e-5, 1e-1
    grid = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    if args.quick:
        rows, validation_rows, epochs, trials, grid = 80, 40, 1, 2, [1e-3]
    data = write_task(work / "train.csv", rows, seed=1, noise=0.1)
    validation = write_task(work / "validation.csv", validation_rows, seed=2, noise=0.1)
    train_settings = {
        "data": str(data),
        "validation": str(validation),
        "model": "tiny",
        "device": "cpu",
        "precision": "fp32",
        "epochs": epochs,
        "batch_size": 32,
        "seed": 1,
        "max_length": 48,
    }
    grid_study = run_study(
        "grid",
        work,
        train_settings,
        space_file(work / "grid.toml", low, high, grid),
        trials=None,
        pruner="none",
        seed=0,
    )
    tuned_space = space_file(work / "range.toml", low, high, None)
    pruned = run_study(
        "tuned-pruned", work, train_settings, tuned_space, trials=trials, pruner="median", seed=args.sampler_seed
    )
    unpruned = run_study(
        "tuned-unpruned", work, train_settings, tuned_space, trials=trials, pruner="none", seed=args.sampler_seed
    )

    by_rate = sorted((t["params"]["learning_rate"], t["value"]) for t in grid_study["trials"] if t["value"] is not None)
    best_rate, best_grid = max(by_rate, key=lambda item: item[1])
    summary = {
        "grid": [{"learning_rate": rate, "accuracy": value} for rate, value in by_rate],
        "best_grid": {"learning_rate": best_rate, "accuracy": best_grid},
        "studies": {},
        "epochs_per_trial": epochs,
    }
    for name, document in (("pruned", pruned), ("unpruned", unpruned)):
        best = document["best"]
        summary["studies"][name] = {
            "best_learning_rate": best["params"]["learning_rate"],
            "best_accuracy": best["value"],
            "gap_points": 100 * (best_grid - best["value"]),
            "epochs_run": document["epochs_run"],
            "counts": document["counts"],
            "wall_seconds": document["wall_seconds"],
        }
    cut = 1 - pruned["epochs_run"] / unpruned["epochs_run"]
    summary["epochs_cut"] = cut
    summary["overhead"] = overhead(unpruned, grid_study)

    print()
    print(f"Grid ({len(by_rate)} learning rates, {epochs} epochs each, no pruning):")
    print()
    print("| learning rate | " + " | ".join(f"{rate:g}" for rate, _ in by_rate) + " |")
    print("| --- |" + " --- |" * len(by_rate))
    print("| accuracy | " + " | ".join(f"{value:.3f}" for _, value in by_rate) + " |")
    print()
    print(f"| study ({trials} trials) | best learning rate | best accuracy | gap to the best grid point | epochs run |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| grid best | {best_rate:g} | {best_grid:.3f} | | {grid_study['epochs_run']} |")
    for name in ("pruned", "unpruned"):
        study = summary["studies"][name]
        label = "TPE, median pruning" if name == "pruned" else "TPE, no pruning"
        counts = study["counts"]
        print(
            f"| {label} | {study['best_learning_rate']:.3g} | {study['best_accuracy']:.3f} | "
            f"{study['gap_points']:+.1f} points | {study['epochs_run']} "
            f"({counts['complete']} complete, {counts['pruned']} pruned) |"
        )
    print()
    print(f"Pruning cut the epochs run by {100 * cut:.0f}% ({pruned['epochs_run']} vs {unpruned['epochs_run']}).")
    o = summary["overhead"]
    print(
        f"Overhead per trial (median over {o['trials']} complete trials of the unpruned study): "
        f"{o['overhead_seconds_median']:.1f} s of {o['trial_seconds_median']:.1f} s "
        f"({100 * o['overhead_share']:.0f}% of the trials' time; the first trial: {o['first_trial_overhead_seconds']:.1f} s)."
    )
    if args.json:
        document = {"summary": summary, "grid": grid_study, "pruned": pruned, "unpruned": unpruned}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if math.isfinite(best_grid) else 1


if __name__ == "__main__":
    sys.exit(main())
