"""Peer: ``transformers.pipeline("text-classification")`` over the lines of a text file.

Times only the one call over all texts, after a warm-up call on the first 64. Writes the
predicted label of each line to --labels-out (one per line) and prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peer_main, read_lines, self_peak_rss_mb  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="text file, one input per line")
    parser.add_argument("--labels-out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=64, help="texts in the untimed warm-up call")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import torch
    from transformers import pipeline

    texts = read_lines(args.texts)
    classifier = pipeline("text-classification", model=str(args.model_dir), batch_size=args.batch_size, device=-1)
    if args.warmup:
        classifier(texts[: args.warmup])

    started = time.perf_counter()
    outputs = classifier(texts)
    seconds = time.perf_counter() - started

    labels = [output["label"] for output in outputs]
    args.labels_out.parent.mkdir(parents=True, exist_ok=True)
    args.labels_out.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return {
        "peer": "pipeline",
        "texts": len(texts),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "peak_rss_mb": self_peak_rss_mb(),
        # transformers 5 pipelines default to dtype="auto": the dtype the checkpoint was saved in.
        "dtype": str(classifier.model.dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    return peer_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
