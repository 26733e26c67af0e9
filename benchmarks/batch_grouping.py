"""Length-grouped inference batches (data/batches.py) against plain runs of --batch-size, side by side.

    python benchmarks/batch_grouping.py                       # MiniLM from run.py, its 8,000 predict texts
    python benchmarks/batch_grouping.py --model-dir DIR --texts FILE

Two cases, alternating the variants in one process (`--repeats` times, the median reported):
- served: `--sets` batches of `--served-batch` random texts each (a served batch of concurrent
  requests, in arrival order), each run through `logits` on its own; overheads None (plain runs),
  128 and 256 (the default);
- predict: all the texts at once (sorted by length over the whole set), grouped vs plain.
Tokenizing is outside the timed part. texts/s.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK_DIR  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_WORK_DIR / "runs" / "minilm" / "ours-model")
    parser.add_argument("--texts", type=Path, default=DEFAULT_WORK_DIR / "predict_8000.txt")
    parser.add_argument("--served-batch", type=int, default=32)
    parser.add_argument("--sets", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)

    from roberta_ft import loop
    from roberta_ft.data import batches
    from roberta_ft.inference import load

    model = load(args.model_dir)
    texts = args.texts.read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    served = [model.encode([rng.choice(texts) for _ in range(args.served_batch)]) for _ in range(args.sets)]
    everything = model.encode(texts)
    grouped = batches.sorted_batches

    def timed(encoded_sets, overhead) -> float:
        loop.sorted_batches = grouped if overhead == "default" else functools.partial(grouped, overhead_tokens=overhead)
        started = time.perf_counter()
        for encoded in encoded_sets:
            model.logits(encoded, 64)
        return sum(len(encoded) for encoded in encoded_sets) / (time.perf_counter() - started)

    results: dict[str, dict[str, list[float]]] = {"served": {}, "predict": {}}
    for _ in range(args.repeats):
        for overhead in (None, 128, "default"):
            results["served"].setdefault(str(overhead), []).append(timed(served, overhead))
        for overhead in (None, "default"):
            results["predict"].setdefault(str(overhead), []).append(timed([everything], overhead))
    loop.sorted_batches = grouped
    summary = {
        case: {name: statistics.median(values) for name, values in runs.items()} for case, runs in results.items()
    }
    print(
        json.dumps(
            {
                "default_overhead_tokens": batches.FORWARD_OVERHEAD_TOKENS,
                "median_texts_per_s": summary,
                "runs": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
