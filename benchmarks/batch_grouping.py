"""Inference batching side by side: plain runs of --batch-size, length-grouped cuts (data/batches.py), packed rows.

    python benchmarks/batch_grouping.py                       # MiniLM from run.py, its 8,000 predict texts
    python benchmarks/batch_grouping.py --model-dir DIR --texts FILE

Two cases, alternating the variants in one process (`--repeats` times, the median reported):
- served: `--sets` batches of `--served-batch` random texts each (a served batch of concurrent
  requests, in arrival order), each run through `logits` on its own;
- predict: all the texts at once (sorted by length over the whole set).
Variants: `plain` (sorted, cut every --batch-size rows), `grouped` (cut where padding costs more than a
pass: FORWARD_OVERHEAD_TOKENS, or 128), each padded or `packed` (speed/packing.py: short texts share
rows; the default for models that support it is plain + packed, else grouped + padded). Tokenizing is outside the timed
part. texts/s.
"""

from __future__ import annotations

import argparse
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

    from roberta_ft import forward
    from roberta_ft.data import batches
    from roberta_ft.inference import load
    from roberta_ft.speed import packing

    model = load(args.model_dir)
    texts = args.texts.read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    served = [model.encode([rng.choice(texts) for _ in range(args.served_batch)]) for _ in range(args.sets)]
    everything = model.encode(texts)
    grouped = batches.sorted_batches
    packer = packing.packer

    def timed(encoded_sets, variant: str) -> float:
        cuts, _, layout = variant.partition("/")
        overhead = {"plain": None, "grouped": batches.FORWARD_OVERHEAD_TOKENS, "grouped128": 128}[cuts]
        packing.packer = packer if layout == "packed" else (lambda model: None)
        # forward.predict_logits picks the cuts from whether the model packs; the variant overrides them.
        forward.sorted_batches = lambda lengths, size, overhead_tokens=None: grouped(
            lengths, size, overhead_tokens=overhead
        )
        started = time.perf_counter()
        for encoded in encoded_sets:
            model.logits(encoded, 64)
        return sum(len(encoded) for encoded in encoded_sets) / (time.perf_counter() - started)

    cases = {
        "served": (served, ("plain/padded", "grouped/padded", "grouped128/padded", "plain/packed", "grouped/packed")),
        "predict": ([everything], ("grouped/padded", "plain/packed", "grouped/packed")),
    }
    results: dict[str, dict[str, list[float]]] = {case: {} for case in cases}
    for _ in range(args.repeats):
        for case, (encoded_sets, variants) in cases.items():
            for variant in variants:
                results[case].setdefault(variant, []).append(timed(encoded_sets, variant))
    forward.sorted_batches, packing.packer = grouped, packer
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
