"""Peer: a plain Hugging Face ``Trainer`` fine-tuning script, as most users would write it.

Modes:
  static128  pad every example to 128 tokens at tokenization time (run_glue.py's default)
  dynamic    DataCollatorWithPadding: pad each batch to its longest example
  tuned      dynamic padding + bf16 autocast + length-grouped batches + fused AdamW
             (``--precision fp32`` drops bf16 autocast, for CPUs without native bf16)

Only ``trainer.train()`` is timed (not imports, model loading or tokenization). Prints one JSON
line on stdout at the end; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peer_main, self_peak_rss_mb  # noqa: E402

MODES = ("static128", "dynamic", "tuned")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="CSV with columns sentence,label")
    parser.add_argument("--dev", type=Path, required=True, help="CSV with columns sentence,label")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="tuned mode only")
    parser.add_argument("--save-model", type=Path, default=None, help="save the trained model here (untimed)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from datasets import load_dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    set_seed(args.seed)  # before loading: a fresh classifier head is initialised from this seed
    raw = load_dataset("csv", data_files={"train": str(args.train), "validation": str(args.dev)})
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(args.model_dir), num_labels=2)

    static = args.mode == "static128"
    tuned = args.mode == "tuned"

    def tokenize(batch: dict) -> dict:
        if static:
            return tokenizer(batch["sentence"], padding="max_length", max_length=args.max_length, truncation=True)
        return tokenizer(batch["sentence"], max_length=args.max_length, truncation=True)

    encoded = raw.map(tokenize, batched=True, remove_columns=["sentence"])
    encoded = encoded.rename_column("label", "labels")
    train_dataset, dev_dataset = encoded["train"], encoded["validation"]
    mean_real_tokens = float(np.mean([sum(mask) for mask in train_dataset["attention_mask"]]))

    options: dict = {}
    if tuned:
        # transformers 5: `group_by_length=True` became `train_sampling_strategy="group_by_length"`.
        options = {
            "bf16": args.precision == "bf16",
            "train_sampling_strategy": "group_by_length",
            "optim": "adamw_torch_fused",
        }

    with tempfile.TemporaryDirectory(prefix="peer-trainer-") as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.eval_batch_size,
            learning_rate=args.lr,
            num_train_epochs=args.epochs,
            seed=args.seed,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            # transformers 5 refuses bf16=True on a CUDA-less machine unless use_cpu=True.
            use_cpu=not torch.cuda.is_available(),
            **options,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            processing_class=tokenizer,
            data_collator=default_data_collator if static else DataCollatorWithPadding(tokenizer),
        )
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started

        prediction = trainer.predict(dev_dataset)
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.asarray(logits).argmax(axis=-1)
        references = np.asarray(dev_dataset["labels"])
        accuracy = float((predicted == references).mean())

        if args.save_model is not None:
            trainer.save_model(str(args.save_model))

    rows = len(train_dataset)
    name = f"trainer-{args.mode}" + ("-fp32" if tuned and args.precision == "fp32" else "")
    return {
        "peer": name,
        "train_samples_per_s": rows * args.epochs / train_seconds,
        "train_seconds": train_seconds,
        "dev_accuracy": accuracy,
        "peak_rss_mb": self_peak_rss_mb(),
        "mean_tokens": mean_real_tokens,
        "train_rows": rows,
        "optim": str(training_args.optim.value if hasattr(training_args.optim, "value") else training_args.optim),
        "bf16": bool(training_args.bf16),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    return peer_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
