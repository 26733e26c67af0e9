"""Why TAPT on SST-2 gains so little for the tiny model: what the corpus holds, and what fine-tuning can draw out.

    python benchmarks/pretrain_diagnose.py corpus --model-dir DIR       # SST-2's train texts, measured with DIR's tokenizer
    python benchmarks/pretrain_diagnose.py finetune --model-dir DIR --scratch-dir DIR2 --variant NAME ...

corpus: how many of SST-2's 67,349 training texts are phrases inside a longer one (they come from the
parse trees of far fewer sentences), the tokens of the texts that are not (the corpus's distinct
content), the share of tokens that continue a word, and the share of dev words the first 1,000 rows
never show.

finetune: fine-tuning variants that `train` does not have, on a masked-LM directory (--model-dir,
pretrained) and on the same network with fresh random weights and --scratch-dir's tokenizer (a
`train --model tiny` output: its tokenizer learned from the 1,000 rows). A plain torch loop like
`train`'s (AdamW betas (0.9, 0.98), weight decay 0.1, 6% warm-up then linear decay, batch 32, max
length 64, the best epoch on a seeded held-out 10% of the first 1,000 rows), scored on SST-2 train rows
1,000-2,999 (not the dev set: nothing here is chosen on dev). Variants: plain (the <s> head, as
`train`), frozen-embeddings, llrd (layer-wise learning-rate decay 0.5), mean-pool (the classifier on
the mean of the last hidden states), long (30 epochs).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_SHARED_DIR, SST2_RELATIVE, read_sst2_tsv, require_shared  # noqa: E402

VARIANTS = {
    "plain": {},
    "frozen-embeddings": {"freeze_embeddings": True},
    "llrd": {"layer_decay": 0.5},
    "mean-pool": {"mean_pool": True},
    "long": {"epochs": 30},
}


def corpus(args) -> dict:
    from transformers import AutoTokenizer

    shared = require_shared(args.shared)
    texts = [t for t, _ in read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")]
    dev = [t for t, _ in read_sst2_tsv(shared / SST2_RELATIVE / "dev.tsv")]
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    distinct = sorted({t.strip() for t in texts}, key=len, reverse=True)
    outer, seen = [], ""
    for text in distinct:  # longest first: a text is kept when no longer one contains it
        if text not in seen:
            outer.append(text)
            seen += "\n" + text

    def tokens(items):
        return sum(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in items)

    pieces = tokenizer.convert_ids_to_tokens(
        [i for t in texts[:5000] for i in tokenizer(" " + t, add_special_tokens=False)["input_ids"]]
    )
    shown = {w for t in texts[: args.labelled] for w in t.split()}
    every = {w for t in texts for w in t.split()}
    dev_words = [w for t in dev for w in t.split()]
    result = {
        "texts": len(texts),
        "distinct_texts": len(distinct),
        "texts_in_no_longer_text": len(outer),
        "tokens": tokens(texts),
        "tokens_of_texts_in_no_longer_text": tokens(outer),
        "share_of_tokens_continuing_a_word": sum(not p.startswith("Ġ") for p in pieces) / len(pieces),
        "dev_words_unseen_in_labelled_rows": sum(w not in shown for w in dev_words) / len(dev_words),
        "dev_words_unseen_in_corpus": sum(w not in every for w in dev_words) / len(dev_words),
    }
    for key, value in result.items():
        print(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value:,} |")
    return result


def _fine_tune(args, arm: str, rate: float, seed: int, variant: dict, rows, test) -> tuple[float, float]:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    directory = args.model_dir if arm == "pretrained" else args.scratch_dir
    tokenizer = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(seed)
    if arm == "pretrained":
        model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=2)
    else:
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(directory))
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    held = len(rows) // 10
    train_rows, held_rows = [rows[i] for i in order[held:]], [rows[i] for i in order[:held]]
    layers = model.config.num_hidden_layers
    decay = variant.get("layer_decay", 1.0)
    groups = []
    for name, parameter in model.named_parameters():
        if "embeddings" in name:
            scale = 0.0 if variant.get("freeze_embeddings") else decay**layers
        elif ".layer." in name:
            scale = decay ** (layers - 1 - int(name.split(".layer.")[1].split(".")[0]))
        else:
            scale = 1.0
        if scale == 0.0:
            parameter.requires_grad_(False)
            continue
        groups.append({"params": [parameter], "lr": rate * scale, "weight_decay": 0.1 if parameter.ndim > 1 else 0.0})
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)
    peaks = [g["lr"] for g in optimizer.param_groups]
    epochs = variant.get("epochs", 10)
    steps = epochs * math.ceil(len(train_rows) / 32)
    warmup = max(1, int(0.06 * steps))

    def encode(items):
        batch = tokenizer([t for t, _ in items], padding=True, truncation=True, max_length=64, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"], torch.tensor([y for _, y in items])

    def logits(ids, mask):
        if not variant.get("mean_pool"):
            return model(input_ids=ids, attention_mask=mask).logits
        hidden = model.roberta(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask[..., None].float()
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        head = model.classifier
        return head.out_proj(torch.tanh(head.dense(head.dropout(pooled))))

    def accuracy(items):
        model.eval()
        right = 0
        with torch.no_grad():
            for start in range(0, len(items), 256):
                ids, mask, labels = encode(items[start : start + 256])
                right += int((logits(ids, mask).argmax(-1) == labels).sum())
        model.train()
        return right / len(items)

    best, best_state, step = -1.0, None, 0
    for _ in range(epochs):
        shuffled = list(range(len(train_rows)))
        rng.shuffle(shuffled)
        for start in range(0, len(shuffled), 32):
            ids, mask, labels = encode([train_rows[i] for i in shuffled[start : start + 32]])
            step += 1
            factor = step / warmup if step <= warmup else max(0.0, (steps - step) / (steps - warmup))
            for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                group["lr"] = peak * factor
            loss = torch.nn.functional.cross_entropy(logits(ids, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        held_accuracy = accuracy(held_rows)
        if held_accuracy > best:
            best, best_state = held_accuracy, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return best, accuracy(test)


def finetune(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    shared = require_shared(args.shared)
    train = read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")
    rows, test = train[: args.labelled], train[args.labelled : args.labelled + 2000]
    results = []
    for variant in args.variant:
        for arm in args.arms:
            for rate in args.lrs:
                runs = [_fine_tune(args, arm, rate, seed, VARIANTS[variant], rows, test) for seed in args.seeds]
                row = {
                    "variant": variant,
                    "arm": arm,
                    "lr": rate,
                    "held_out_median": statistics.median(r[0] for r in runs),
                    "test_median": statistics.median(r[1] for r in runs),
                    "test": [r[1] for r in runs],
                }
                results.append(row)
                tests = " / ".join(f"{r[1]:.4f}" for r in runs)
                print(
                    f"| {variant} | {arm} | {rate:g} | {row['held_out_median']:.2f} | {tests} | {row['test_median']:.4f} |",
                    flush=True,
                )
    return {"test_rows": len(test), "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("corpus", "finetune"))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--model-dir", required=True, help="the pretrained masked-LM directory")
    parser.add_argument("--scratch-dir", help="finetune: a `train --model tiny` output (its tokenizer and shape)")
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--variant", type=lambda s: s.split(","), default=["plain"], help=", ".join(VARIANTS))
    parser.add_argument("--arms", type=lambda s: s.split(","), default=["pretrained", "scratch"])
    parser.add_argument("--lrs", type=lambda s: [float(x) for x in s.split(",")], default=[1e-3])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.mode == "finetune" and (not args.scratch_dir or any(v not in VARIANTS for v in args.variant)):
        parser.error(f"finetune needs --scratch-dir and --variant among {', '.join(VARIANTS)}")
    import logging

    from transformers.utils import logging as transformers_logging

    logging.disable(logging.WARNING)
    transformers_logging.set_verbosity_error()
    result = corpus(args) if args.mode == "corpus" else finetune(args)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
