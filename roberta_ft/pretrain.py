"""`roberta_ft.pretrain(config)`: masked-LM pretraining on a corpus, written as a `...ForMaskedLM` directory.

One call reads top to bottom like train.py: settings, the output directory check, the model and
tokenizer (a tiny RoBERTa with a tokenizer trained on the corpus, or a checkpoint to continue), the
corpus packed into blocks (data/corpus.py), the masked-LM objective (masking.py), the shared loop
(loop.py: checkpoints, exact --resume, the best model by validation loss), then the results:
metrics.json with the perplexity curve, training_curves.png and a model card.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft import __version__, artifacts, checkpoint
from roberta_ft.config import MICRO_BATCH_TOKENS, SAVE_EVERY_SECONDS, PretrainConfig
from roberta_ft.data.corpus import CorpusSpec, corpus_files, iter_documents, load_or_pack
from roberta_ft.errors import ConfigError, TrainingError

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
    from roberta_ft.masking import MaskedLanguageModeling, Masker, MaskingError, SparseMaskedLM
    from roberta_ft.runtime import make_accelerator, resolve_runtime

    # --- settings and the output directory (checked, not yet touched) -------------------------------
    config = config.resolved()
    runtime = resolve_runtime(config.device, config.precision)
    resume_from = checkpoint.check_output_dir(config.output, overwrite=config.overwrite, resume=config.resume)
    output = Path(config.output)
    spec = CorpusSpec(config.corpus, config.text_column, config.format, config.encoding, config.blank_line_documents)
    files = corpus_files(config.corpus)

    # --- model and tokenizer -------------------------------------------------------------------------
    model, tokenizer = _build_model(config, spec, files, resume_from)
    _check_length(config, model)
    try:
        masker = Masker.for_tokenizer(
            tokenizer, model.config.vocab_size, config.seed, config.mlm_probability, config.whole_word_masking
        )
    except MaskingError as error:  # a missing mask token is refused earlier, as the model loads
        raise ConfigError(str(error), "drop --whole-word-masking to mask single tokens") from None
    if config.whole_word_masking:
        logger.info("Whole-word masking: %.0f%% of the tokens, in whole words", config.mlm_probability * 100)
    accelerator = make_accelerator(runtime)
    logger.info("Device %s, precision %s (%s)", runtime.device, runtime.precision, runtime.reason)

    # --- the corpus, packed into blocks --------------------------------------------------------------
    started = time.perf_counter()
    packed = load_or_pack(
        spec,
        tokenizer,
        max_length=config.max_length,
        validation_split=config.validation_split,
        seed=config.seed,
        scratch=output / SCRATCH,
    )
    timings = {"corpus_seconds": round(time.perf_counter() - started, 3)}
    micro_batch, accumulation = _micro_batch(config, runtime.device, accelerator.num_processes)
    identity = {
        "settings": json.loads(
            json.dumps({k: v for k, v in sorted(config.to_dict().items()) if k not in checkpoint.HARMLESS_SETTINGS})
        ),
        "data_sha256": packed.info["train"]["sha256"] + packed.info["validation"]["sha256"],
    }
    if resume_from is not None:
        resume_from.check_identity(identity)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoint.prepare_output_dir(config.output, overwrite=config.overwrite, resume=resume_from)
    accelerator.wait_for_everyone()
    blocks = packed.info["train"]["blocks"]
    steps_per_epoch = math.ceil(blocks / config.batch_size)
    logger.info(
        "Pretraining on %d blocks of up to %d tokens (%d tokens; %d validation blocks): batch %d sequences = "
        "%d per forward pass x %d accumulation steps x %d processes, %s, learning rate %.1e, warm-up %.0f%%",
        blocks,
        config.max_length,
        packed.info["train"]["tokens"],
        packed.info["validation"]["blocks"],
        config.batch_size,
        micro_batch,
        accumulation,
        accelerator.num_processes,
        f"{config.max_steps} steps" if config.max_steps else f"{config.epochs} epochs x {steps_per_epoch} steps",
        config.learning_rate,
        config.warmup_ratio * 100,
    )
    # --- the masked-LM objective, and the validation loss before any training -----------------------
    locality = _locality_warmup(config, model, blocks)
    objective = MaskedLanguageModeling(
        packed.train, packed.validation, masker, config.eval_batch_size or micro_batch, locality=locality
    )
    wrapped = SparseMaskedLM(model, sparse=config.sparse_head)
    wrapped.to(accelerator.device)
    initial = None
    if resume_from is None:
        initial = objective.evaluate(wrapped, accelerator)
        logger.info(
            "Before pretraining: validation loss %.4f, perplexity %.1f", initial["eval_loss"], initial["perplexity"]
        )
    run_config = {
        "roberta_ft_version": __version__,
        "kind": "pretraining",
        "config": config.to_dict(),
        "corpus": {**{k: v for k, v in packed.info.items() if k != "seconds"}, "files": [str(p) for p in files[:20]]},
        "batch": {"sequences": config.batch_size, "per_forward_pass": micro_batch, "accumulation": accumulation},
        "device": runtime.device,
        "precision": runtime.precision,
        "timings": timings,
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if initial is not None:
        run_config["initial_evaluation"] = initial
    else:  # resumed: the record of the run's start
        initial = artifacts.read_run_config(output).get("initial_evaluation")
    if resume_from is not None:
        run_config["resumed_from"] = resume_from.path.name
    if accelerator.is_main_process:
        artifacts.save_pretrained_files(output, tokenizer=tokenizer)
        artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)

    # --- the loop: checkpoints, exact --resume, the best model by validation loss ----------------------
    rule = BestEpochRule("eval_loss", greater_is_better=False)
    settings = loop.LoopSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        gradient_accumulation=accumulation,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        eval_batch_size=config.eval_batch_size or micro_batch,
        rule=rule,
        adam_betas=tuple(config.adam_betas),
        adam_epsilon=config.adam_epsilon,
        save_every=config.save_every,
        save_every_seconds=SAVE_EVERY_SECONDS,
        skip_nonfinite=config.skip_nonfinite,
        length_bucketing=False,  # blocks have one length: plain shuffled batches
        max_steps=config.max_steps,
        eval_every=config.eval_every,
    )

    def on_best(model_to_save, record: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            artifacts.save_pretrained_files(output, model=model_to_save.model)
            logger.info(
                "Saved the best model so far (epoch %s, validation loss %.4f, perplexity %.1f)",
                record["epoch"],
                record["eval_loss"],
                record["perplexity"],
            )

    torch.manual_seed(config.seed)
    tokens_per_block = packed.info["train"]["tokens"] / max(1, blocks)
    try:
        history = loop.train(
            wrapped,
            packed.train,
            None,
            settings,
            accelerator=accelerator,
            objective=objective,
            on_best=on_best,
            progress=_TokensProgress(progress or loop.LogProgress(), tokens_per_block),
            checkpoints=checkpoint.Checkpointer(
                output, keep=config.keep_checkpoints, identity=identity, enabled=accelerator.is_main_process
            ),
            resume=resume_from,
        )
    except TrainingError as error:
        if accelerator.is_main_process:
            run_config.update(status="stopped", error=error.one_line())
            artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
        raise

    # --- results: metrics.json (the perplexity curve), the picture, the model card --------------------
    metrics = {
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
    if accelerator.is_main_process:
        _write_results(output, run_config, metrics, config)
        scratch = output / SCRATCH
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    accelerator.wait_for_everyone()
    best = history.best
    logger.info(
        "Best validation loss %.4f (perplexity %.1f) at epoch %s; %.0f tokens/s; model saved in %s",
        best["eval_loss"],
        best["perplexity"],
        best["epoch"],
        metrics["train_tokens_per_second"],
        output,
    )
    return PretrainResult(output, metrics, runtime.device, runtime.precision)


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


def _build_model(config: PretrainConfig, spec: CorpusSpec, files, resume_from):
    from roberta_ft import modeling

    if not config.is_tiny:
        model, tokenizer = modeling.load_masked_lm(config.model, trust_remote_code=config.trust_remote_code)
    else:
        tokenizer = None
        if resume_from is not None:  # the tokenizer the run started with, as saved in --output
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(Path(config.output)))
        else:
            logger.info("--model tiny: training a %d-token byte-level BPE tokenizer on the corpus", config.vocab_size)
        model, tokenizer = modeling.build_tiny_masked_lm(
            iter_documents(spec, files), seed=config.seed, vocab_size=config.vocab_size, tokenizer=tokenizer
        )
    logger.info("Model %s (%s), %.1fM parameters", config.model, type(model).__name__, model.num_parameters() / 1e6)
    return model, tokenizer


def _check_length(config: PretrainConfig, model) -> None:
    from roberta_ft.modeling import position_limit

    limit = position_limit(model)
    if limit is not None and config.max_length > limit:
        raise ConfigError(
            f"--max-length {config.max_length} is more than model {config.model!r} supports ({limit} tokens)",
            f"pass --max-length {limit} or less",
        )


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


def _write_results(output: Path, run_config: dict[str, Any], metrics: dict[str, Any], config: PretrainConfig) -> None:
    from roberta_ft import reports

    run_config.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    artifacts.write_json(output / artifacts.METRICS, metrics)
    artifacts.write_json(output / artifacts.RUN_CONFIG, run_config)
    # The picture: the training loss and the validation perplexity (the other metrics are in metrics.json).
    curve = (
        [{"epoch": 0, "train_loss": math.nan, "perplexity": metrics["initial"]["perplexity"]}]
        if metrics.get("initial")
        else []
    )
    curve += [
        {"epoch": e["epoch"], "train_loss": e["train_loss"], "perplexity": e["perplexity"]} for e in metrics["epochs"]
    ]
    reports.write_training_curves(
        output, {"epochs": curve, "primary_metric": "perplexity", "best": metrics["best"], "steps": metrics["steps"]}
    )
    artifacts.write_text(output / "README.md", _model_card(run_config, metrics, config, reports.pictures(output)))


def _model_card(run_config: dict[str, Any], metrics: dict[str, Any], config: PretrainConfig, pictures) -> str:
    corpus = run_config["corpus"]
    best = metrics["best"]
    rows = []
    if metrics.get("initial"):
        rows.append(
            f"| 0 (before) | | {metrics['initial']['eval_loss']:.4f} | {metrics['initial']['perplexity']:.1f} |"
        )
    for e in metrics["epochs"]:
        rows.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {e['eval_loss']:.4f} | {e['perplexity']:.1f} |")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "tags: [roberta-ft, masked-lm, pretraining]",
        "---",
        "",
        f"# Masked LM pretrained with roberta-ft {run_config['roberta_ft_version']}",
        "",
        f"- Started from: `{config.model}`"
        + (" (random weights, tokenizer trained on the corpus)" if config.is_tiny else ""),
        f"- Corpus: `{config.corpus}`: {corpus['documents']} documents, {corpus['train']['tokens']} training tokens in "
        f"{corpus['train']['blocks']} blocks of up to {corpus['max_length']} tokens; "
        f"{corpus['validation']['blocks']} validation blocks ({config.validation_split:.0%} of the documents)",
        f"- Recipe: {config.recipe or 'default'}; batch {config.batch_size} sequences, learning rate "
        f"{config.learning_rate:g}, "
        + (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs} epochs")
        + f", AdamW betas {tuple(config.adam_betas)}, eps {config.adam_epsilon:g}, weight decay {config.weight_decay:g}",
        f"- Masking: dynamic, {config.mlm_probability:.0%} of tokens "
        + (
            "in whole words (80% <mask>, 10% random, 10% unchanged, per word)"
            if config.whole_word_masking
            else "(80% <mask>, 10% random, 10% unchanged)"
        )
        + (
            f"; attention biased toward nearby tokens over the first {config.locality_warmup:.0%} of the steps, "
            "fading to none (locality warm-up)"
            if config.locality_warmup
            else ""
        ),
        f"- Best validation loss {best['eval_loss']:.4f} (perplexity {best['perplexity']:.1f}) at epoch {best['epoch']}",
        f"- {metrics['train_tokens_per_second']:.0f} training tokens/s on {run_config['device']} "
        f"({run_config['precision']})",
        "",
        "| epoch | train loss | validation loss | perplexity |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        *[f"![{name}]({name})" for name in pictures],
        "",
        "Fine-tune it: `roberta-ft train DATA --model THIS_DIR` (the LM head is dropped, a classifier head is added).",
        "",
    ]
    return "\n".join(lines)
