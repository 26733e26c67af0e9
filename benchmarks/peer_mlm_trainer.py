"""Peer: masked-LM pretraining as Hugging Face's run_mlm.py does it, with ``Trainer``.

The corpus (one document per line) is tokenized, concatenated and cut into blocks of
``--block-size`` tokens (run_mlm.py's ``group_texts``); ``DataCollatorForLanguageModeling`` masks
15% of tokens per batch (80/10/10); ``AutoModelForMaskedLM`` computes the LM head on every
position. bf16 autocast with ``--precision bf16``, fused AdamW with RoBERTa's betas.

Timed: the optimizer steps after the first (a callback sums the wall time of each step), so neither
start-up nor the first step's allocations count; the same definition as ours (benchmarks/pretrain_bench.py).
Prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peer_main, self_peak_rss_mb  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    from itertools import chain

    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(args.model_dir))
    lines = [line.strip() for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    raw = Dataset.from_dict({"text": lines})
    tokenized = raw.map(lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"])

    def group_texts(examples):  # run_mlm.py's
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = (len(concatenated["input_ids"]) // args.block_size) * args.block_size
        return {
            k: [t[i : i + args.block_size] for i in range(0, total, args.block_size)] for k, t in concatenated.items()
        }

    blocks = tokenized.map(group_texts, batched=True, batch_size=1000)
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=0.15)

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.started = 0.0
            self.times: list[float] = []

        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.started)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as output:
        training_args = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=max(1, round(0.06 * args.steps)),
            weight_decay=0.01,
            adam_beta2=0.98,
            adam_epsilon=1e-6,
            optim="adamw_torch_fused",
            bf16=args.precision == "bf16",
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10,
            report_to=[],
            dataloader_num_workers=0,
            seed=args.seed,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=blocks, data_collator=collator, callbacks=[timer]
        )
        started = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - started
    timed = timer.times[1:]
    tokens = len(timed) * args.batch_size * args.block_size
    return {
        "steps": len(timer.times),
        "timed_steps": len(timed),
        "train_seconds": sum(timed),
        "tokens_per_second": tokens / sum(timed) if timed else None,
        "train_wall_seconds": wall,
        "final_loss": result.training_loss,
        "blocks": len(blocks),
        "peak_rss_mb": self_peak_rss_mb(),
    }


if __name__ == "__main__":
    sys.exit(peer_main(parse_args, run))
