"""Two installations of our CLI side by side (before and after a change), alternating, on the benchmark's inputs.

    python benchmarks/ab.py --a "/path/to/old-venv/bin/roberta-ft" --b roberta-ft --repeats 3
    python benchmarks/ab.py --a ... --b ... --train-rows all      # every SST-2 training row (67,349)

Each repeat trains MiniLM once with each command (the benchmark's settings: 4,000 SST-2 rows, or
--train-rows, 1 epoch, batch 32, lr 5e-5, max length 128) and predicts the 8,000 benchmark lines (with
`all`, they are among the training rows) with each trained model, A first on even repeats and B first on
odd ones. It prints the medians, B ÷ A, whether the two gave the same dev accuracy and the same predicted
labels, the training method each side's run_config.json records (fine-tune or few-shot; none before there
was a choice), and writes `ab.json` in the work dir.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_SHARED_DIR,
    DEFAULT_WORK_DIR,
    FULL_TRAIN_ROWS,
    require_shared,
    resolve_model,
    write_inputs,
)
from run import read_ours_labels, run_ours_predict, run_ours_train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="command of the first installation (e.g. the one before)")
    parser.add_argument("--b", required=True, help="command of the second installation (e.g. the one after)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--train-rows",
        type=_train_rows,
        default=FULL_TRAIN_ROWS,
        help=f"SST-2 training rows to train on, or 'all' (default {FULL_TRAIN_ROWS})",
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "ab")
    parser.add_argument("--timeout", type=float, default=3600)
    settings = parser.parse_args(argv)
    shared = require_shared(settings.shared)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        inputs = write_inputs(shared, settings.work_dir, train_rows=settings.train_rows, predict_lines=8000)
    except ValueError as error:
        parser.error(f"--train-rows: {error}")
    model_dir = resolve_model(settings.model, shared, settings.work_dir)
    commands = {"a": shlex.split(settings.a), "b": shlex.split(settings.b)}
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for repeat in range(settings.repeats):
        for side in ("a", "b") if repeat % 2 == 0 else ("b", "a"):
            settings.ours_command = commands[side]
            output = settings.work_dir / f"model-{side}"
            trained = run_ours_train(settings, model_dir, inputs, output)
            labels = settings.work_dir / f"pred-{side}.jsonl"
            predicted = run_ours_predict(settings, output, inputs.predict_txt, labels)
            runs[side].append(
                {
                    "method": _method(output),
                    "train": trained,
                    "predict": predicted,
                    "labels": read_ours_labels(labels) if labels.exists() else None,
                }
            )
            print(
                f"[{repeat}] {side}: train {trained['speed']:.1f} samples/s, acc {trained['dev_accuracy']}, "
                f"predict {predicted['speed']:.1f} texts/s, method {runs[side][-1]['method']}",
                flush=True,
            )
    summary = {}
    for phase in ("train", "predict"):
        medians = {side: statistics.median(run[phase]["speed"] for run in runs[side]) for side in runs}
        summary[phase] = {**medians, "b_over_a": medians["b"] / medians["a"]}
    summary["dev_accuracy"] = {side: [run["train"]["dev_accuracy"] for run in runs[side]] for side in runs}
    summary["method"] = {side: sorted({str(run["method"]) for run in runs[side]}) for side in runs}
    summary["train_rows"] = inputs.train_rows
    last_a, last_b = runs["a"][-1]["labels"], runs["b"][-1]["labels"]
    summary["labels_agree"] = (
        sum(x == y for x, y in zip(last_a, last_b, strict=True)) / len(last_a) if last_a and last_b else None
    )
    print(json.dumps(summary, indent=2))
    (settings.work_dir / "ab.json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=2, default=str))
    return 0


def _train_rows(value: str) -> int | None:
    """--train-rows: a positive count, or 'all' (None: every training row)."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of rows or 'all', got {value!r}")
    return int(value)


def _method(model_dir: Path) -> str | None:
    """The method the run recorded in run_config.json (None where the installation had no choice of method)."""
    try:
        record = json.loads((model_dir / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (record.get("method") or {}).get("name")


if __name__ == "__main__":
    raise SystemExit(main())
