"""`roberta_ft.pretrain(config)`: masked-LM pretraining on a corpus, written as a `...ForMaskedLM` directory.

One call reads top to bottom like train.py: settings, the output directory check, the model and
tokenizer (a tiny RoBERTa with a tokenizer trained on the corpus, or a checkpoint to continue), the
corpus packed into blocks (data/corpus.py), the masked-LM objective (masking.py), the shared loop
(loop.py: checkpoints, exact --resume, the best model by validation loss), then the results:
metrics.json with the perplexity curve, training_curves.png and a model card.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft import __version__, artifacts, checkpoint, lifecycle
from roberta_ft.config import MICRO_BATCH_TOKENS, PretrainConfig
from roberta_ft.data.corpus import CorpusSpec, corpus_files, iter_documents, load_or_pack
from roberta_ft.errors import ConfigError
from roberta_ft.modelcard import render_pretraining_card

logger = logging.getLogger(__name__)

SCRATCH = ".blocks"  # the packed corpus inside --output when the cache is off; removed when the run completes


@dataclass
class PretrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    device: str
    precision: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "device": self.device,
            "precision": self.precision,
            **{key: value for key, value in self.metrics.items() if key != "steps"},
        }


def pretrain(config: PretrainConfig, progress=None) -> PretrainResult:
    import torch

    from roberta_ft import loop
    from roberta_ft.best_epoch import BestEpochRule
    from roberta_ft.masking import MaskedLanguageModeling, SparseMaskedLM
    from roberta_ft.modeling import TINY_SHAPE
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    # --- settings and the run (--output checked, not yet touched) -----------------------------------
    config = config.resolved()
    runtime = resolve_runtime(
        config.device, config.precision, width=TINY_SHAPE["hidden_size"] if config.is_tiny else None
    )
    run = lifecycle.Run(config.output, overwrite=config.overwrite, resume=config.resume)
    spec = CorpusSpec(config.corpus, config.text_column, config.format, config.encoding, config.blank_line_documents)
    files = corpus_files(config.corpus)

    # --- model, tokenizer and masker -----------------------------------------------------------------
    model, tokenizer = _build_model(config, spec, files, run)
    masker = _masker(config, model, tokenizer)
    accelerator = make_accelerator(runtime)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)

    # --- the corpus, packed into blocks --------------------------------------------------------------
    packed, timings = _pack(config, spec, tokenizer, run)
    micro_batch, accumulation = _micro_batch(config, runtime.device, accelerator.num_processes)
    data_sha256 = packed.info["train"]["sha256"] + packed.info["validation"]["sha256"]
    identity = checkpoint.run_identity(config.to_dict(), data_sha256)
    run.check_identity(identity)
    blocks = packed.info["train"]["blocks"]
    _log_plan(config, packed.info, micro_batch, accumulation, accelerator.num_processes)

    # --- the masked-LM objective, and the validation loss before any training -----------------------
    eval_batch_size = config.eval_batch_size or micro_batch
    locality = _locality_warmup(config, model, blocks)
    objective = MaskedLanguageModeling(packed.train, packed.validation, masker, eval_batch_size, locality=locality)
    wrapped = SparseMaskedLM(model, sparse=config.sparse_head)
    wrapped.to(accelerator.device)
    initial = (
        run.previous_record().get("initial_evaluation") if run.resuming else objective.evaluate(wrapped, accelerator)
    )
    if not run.resuming:
        logger.info(
            "Before pretraining: validation loss %.4f, perplexity %.1f", initial["eval_loss"], initial["perplexity"]
        )

    # --- the output directory and the run record (run_config.json, status "training") ------------------
    batch = {"sequences": config.batch_size, "per_forward_pass": micro_batch, "accumulation": accumulation}
    run.open(
        accelerator, _run_record(config, packed.info, files, batch, runtime, timings, initial), tokenizer=tokenizer
    )

    # --- the loop: checkpoints, exact --resume, the best model by validation loss ----------------------
    rule = BestEpochRule("eval_loss", greater_is_better=False)
    settings = lifecycle.loop_settings(
        config,
        rule,
        gradient_accumulation=accumulation,
        eval_batch_size=eval_batch_size,
        length_bucketing=False,  # blocks have one length: plain shuffled batches
    )
    on_best = run.best_model_saver(
        lambda output, model_to_save, record: artifacts.save_pretrained_files(output, model=model_to_save.model),
        lambda r: f"epoch {r['epoch']}, validation loss {r['eval_loss']:.4f}, perplexity {r['perplexity']:.1f}",
    )
    torch.manual_seed(config.seed)
    tokens_per_block = packed.info["train"]["tokens"] / max(1, blocks)
    with run.recording():
        history = loop.train(
            wrapped,
            packed.train,
            settings,
            objective=objective,
            accelerator=accelerator,
            on_best=on_best,
            progress=_TokensProgress(progress or loop.LogProgress(), tokens_per_block),
            checkpoints=run.checkpointer(keep=config.keep_checkpoints, identity=identity),
            resume=run.resume_from,
        )

    # --- results: metrics.json (the perplexity curve), the picture, the model card --------------------
    metrics = _metrics(history, initial, tokens_per_block)
    run.complete(
        metrics,
        card=lambda: render_pretraining_card(run.record, metrics, config, run.pictures()),
        curves=_perplexity_curve(metrics),
    )
    if accelerator.is_main_process:
        shutil.rmtree(run.output / SCRATCH, ignore_errors=True)
    best = history.best
    logger.info(
        "Best validation loss %.4f (perplexity %.1f) at epoch %s; %.0f tokens/s; model saved in %s",
        *(best["eval_loss"], best["perplexity"], best["epoch"], metrics["train_tokens_per_second"], run.output),
    )
    return PretrainResult(run.output, metrics, runtime.device, runtime.precision)


def _run_record(config: PretrainConfig, info, files, batch, runtime, timings, initial) -> dict[str, Any]:
    """run_config.json of a pretraining run: the corpus, the batch, the device, and the loss before training."""
    return {
        "roberta_ft_version": __version__,
        "kind": "pretraining",
        "config": config.to_dict(),
        "corpus": {**{k: v for k, v in info.items() if k != "seconds"}, "files": [str(p) for p in files[:20]]},
        "batch": batch,
        "device": runtime.device,
        "precision": runtime.precision,
        "timings": timings,
        **({"initial_evaluation": initial} if initial is not None else {}),  # kept through every resume
    }


def _pack(config: PretrainConfig, spec: CorpusSpec, tokenizer, run: lifecycle.Run):
    """The corpus packed into blocks (or read back from the corpus cache), and how long that took."""
    started = time.perf_counter()
    packed = load_or_pack(
        spec,
        tokenizer,
        max_length=config.max_length,
        validation_split=config.validation_split,
        seed=config.seed,
        scratch=run.output / SCRATCH,
    )
    return packed, {"corpus_seconds": round(time.perf_counter() - started, 3)}


def _metrics(history, initial: dict[str, Any] | None, tokens_per_block: float) -> dict[str, Any]:
    """metrics.json: the perplexity before and after each epoch, and the speed in blocks and tokens."""
    return {
        "kind": "pretraining",
        "primary_metric": "eval_loss",
        "initial": initial,
        "epochs": history.epochs,
        "best": history.best,
        "train_seconds": history.train_seconds,
        "train_blocks_per_second": history.train_samples_per_second,
        "train_tokens_per_second": history.train_samples_per_second * tokens_per_block,
        "steps": history.steps,
    }


def _masker(config: PretrainConfig, model, tokenizer):
    from roberta_ft.masking import Masker, MaskingError

    try:
        masker = Masker.for_tokenizer(
            tokenizer, model.config.vocab_size, config.seed, config.mlm_probability, config.whole_word_masking
        )
    except MaskingError as error:  # a missing mask token is refused earlier, as the model loads
        raise ConfigError(str(error), "drop --whole-word-masking to mask single tokens") from None
    if config.whole_word_masking:
        logger.info("Whole-word masking: %.0f%% of the tokens, in whole words", config.mlm_probability * 100)
    return masker


def _log_plan(config: PretrainConfig, info: dict[str, Any], micro_batch: int, accumulation: int, processes: int):
    steps_per_epoch = math.ceil(info["train"]["blocks"] / config.batch_size)
    logger.info(
        "Pretraining on %d blocks of up to %d tokens (%d tokens; %d validation blocks): batch %d sequences = "
        "%d per forward pass x %d accumulation steps x %d processes, %s, learning rate %.1e, warm-up %.0f%%",
        info["train"]["blocks"],
        config.max_length,
        info["train"]["tokens"],
        info["validation"]["blocks"],
        config.batch_size,
        micro_batch,
        accumulation,
        processes,
        f"{config.max_steps} steps" if config.max_steps else f"{config.epochs} epochs x {steps_per_epoch} steps",
        config.learning_rate,
        config.warmup_ratio * 100,
    )


def _locality_warmup(config: PretrainConfig, model, blocks: int):
    """The attention's fading bias toward nearby tokens (masking.LocalityWarmup), or None when off."""
    from roberta_ft.loop import planned_steps
    from roberta_ft.masking import LocalityWarmup

    total = planned_steps(blocks, config.batch_size, config.epochs, config.max_steps)
    steps = round(config.locality_warmup * total)
    if steps == 0:
        return None
    heads = model.config.num_attention_heads
    logger.info(
        "Locality warm-up: attention biased toward nearby tokens (-distance x 2, 1, 1/2, ... over %d heads), "
        "fading to none over the first %d of %d steps; evaluation and the saved model have no bias",
        heads,
        steps,
        total,
    )
    return LocalityWarmup(steps=steps, heads=heads)


def _build_model(config: PretrainConfig, spec: CorpusSpec, files, run: lifecycle.Run):
    """The masked LM to pretrain and its tokenizer (for `tiny`: trained on the corpus, or as the resumed run saved it)."""
    from roberta_ft import modeling

    if not config.is_tiny:
        model, tokenizer = modeling.load_masked_lm(config.model, trust_remote_code=config.trust_remote_code)
    else:
        tokenizer = None
        if run.resuming:  # the tokenizer the run started with, as saved in --output
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(run.output))
        else:
            logger.info("--model tiny: training a %d-token byte-level BPE tokenizer on the corpus", config.vocab_size)
        model, tokenizer = modeling.build_tiny_masked_lm(
            iter_documents(spec, files), seed=config.seed, vocab_size=config.vocab_size, tokenizer=tokenizer
        )
    lifecycle.check_max_length(model, config.max_length, config.model)
    lifecycle.describe_model(model, config.model)
    return model, tokenizer


def _micro_batch(config: PretrainConfig, device: str, processes: int) -> tuple[int, int]:
    """Sequences per forward pass and accumulation steps: --micro-batch-size, else a token budget per device."""
    if config.batch_size % processes:
        raise ConfigError(
            f"--batch-size {config.batch_size} cannot be split over {processes} processes",
            "make the batch size a multiple of the number of processes",
        )
    local = config.batch_size // processes
    if config.micro_batch_size is not None:
        micro = config.micro_batch_size
        if local % micro:
            raise ConfigError(
                f"--micro-batch-size {micro} does not divide the {local} sequences per process of --batch-size "
                f"{config.batch_size}",
                "pick a micro-batch size that divides it",
            )
    else:
        micro = max(1, min(local, MICRO_BATCH_TOKENS.get(device, 8192) // config.max_length))
        while local % micro:
            micro -= 1
    return micro, local // micro


class _TokensProgress:
    """The loop's progress (samples/s) shown as tokens/s."""

    def __init__(self, inner, tokens_per_sample: float) -> None:
        self.inner, self.scale = inner, tokens_per_sample
        if hasattr(inner, "unit"):
            inner.unit = "tokens/s"

    def start(self, total_steps, epochs):
        self.inner.start(total_steps, epochs)

    def step(self, step, epoch, loss, learning_rate, samples_per_second):
        self.inner.step(step, epoch, loss, learning_rate, samples_per_second * self.scale)

    def epoch_end(self, epoch, metrics, best):
        self.inner.epoch_end(epoch, metrics, best)

    def stop(self):
        self.inner.stop()


def _perplexity_curve(metrics: dict[str, Any]) -> dict[str, Any]:
    """The picture's curves: the training loss and the validation perplexity (the rest is in metrics.json)."""
    initial = metrics.get("initial")
    curve = [{"epoch": 0, "train_loss": math.nan, "perplexity": initial["perplexity"]}] if initial else []
    curve += [
        {"epoch": e["epoch"], "train_loss": e["train_loss"], "perplexity": e["perplexity"]} for e in metrics["epochs"]
    ]
    return {"epochs": curve, "primary_metric": "perplexity", "best": metrics["best"], "steps": metrics["steps"]}
