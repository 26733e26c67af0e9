"""One frozen settings object per command: validated once, written to run_config.json, read back later."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roberta_ft.errors import ConfigError

if TYPE_CHECKING:
    from roberta_ft.registry import Task

# Every training default, in one place. A TrainConfig field is None until given (a flag, a --config
# file or Python); `TrainConfig.resolved` fills what was not given from the task's --recipe, then from
# the model defaults below, then from these.
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": "roberta-base",
    "validation_split": 0.1,
    "encoding": "utf-8",
    "batch_size": 32,
    "max_length": 256,
    "warmup_ratio": 0.06,
    "weight_decay": 0.1,
    "adam_betas": (0.9, 0.98),  # RoBERTa's Adam settings
    "adam_epsilon": 1e-6,
    "gradient_accumulation": 1,
    "max_grad_norm": 1.0,
    "eval_batch_size": 128,
    "seed": 42,
    "device": "auto",
    "precision": "auto",
    "drop_invalid": False,
    "overwrite": False,
    "trust_remote_code": False,
    "resume": False,
    "keep_checkpoints": 2,
    "skip_nonfinite": 0,
    "multi_label": False,
    "label_separator": "|",
    "threshold": 0.5,
    "long_text": "truncate",
    "report_to": (),
    "length_bucketing": True,
}
# Settings suited to fine-tuning a pretrained RoBERTa (the RoBERTa paper's GLUE ranges), and to training
# the `tiny` model from scratch, which needs a much higher learning rate and more epochs.
PRETRAINED_DEFAULTS = {"learning_rate": 2e-5, "epochs": 3}
TINY_DEFAULTS = {"learning_rate": 1e-3, "epochs": 10}
# Without --save-every, a checkpoint every epoch and at least this often.
SAVE_EVERY_SECONDS = 600.0


def _closest_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Settings:
    """Shared behaviour: dict/JSON round trip with unknown keys named, and field validation."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings"):
        known = cls.field_names()
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"unknown setting {key!r} in {source}",
                    f"{_closest_key(key, known)}known settings: {', '.join(known)}",
                )
        converted = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in values:
                value = values[f.name]
                if isinstance(value, list):
                    value = tuple(value)
                converted[f.name] = value
        return cls(**converted)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _check_positive(name: str, value, *, allow_none: bool = False, integer: bool = False) -> None:
    if value is None and allow_none:
        return
    bad = (
        value is None
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
        or not math.isfinite(value)
        or value <= 0
    )
    if bad:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(
            f"--{name.replace('_', '-')} must be {kind}, got {value!r}",
            f"pass e.g. --{name.replace('_', '-')} {2e-5 if not integer else 16}",
        )


def _check_skip_nonfinite(value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"--skip-nonfinite must be a non-negative integer, got {value!r}", "pass e.g. --skip-nonfinite 3"
        )


def _check_tiny_length(max_length: int) -> None:
    from roberta_ft.modeling import TINY_MAX_LENGTH

    if max_length > TINY_MAX_LENGTH:
        raise ConfigError(
            f"--max-length {max_length} is more than model 'tiny' supports ({TINY_MAX_LENGTH} tokens)",
            f"pass --max-length {TINY_MAX_LENGTH} or less",
        )


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(
            f"--{name.replace('_', '-')} {value!r} is not valid", f"use one of {', '.join(map(str, choices))}"
        )


@dataclass(frozen=True)
class TrainConfig(_Settings):
    """The settings of one training run. None means "not given": see TRAIN_DEFAULTS and `resolved`."""

    data: str
    output: str
    task: str | None = None  # None: the task DATA names (glue/rte), else classification
    model: str | None = None  # roberta-base
    validation: str | None = None
    validation_split: float | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    format: str | None = None
    encoding: str | None = None
    data_dir: str | None = None
    epochs: int | None = None  # 3 for a pretrained model, 10 for tiny
    batch_size: int | None = None  # samples per optimizer step, over all processes and accumulation steps
    learning_rate: float | None = None  # 2e-5 for a pretrained model, 1e-3 for tiny
    max_length: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    adam_betas: tuple[float, float] | None = None
    adam_epsilon: float | None = None
    gradient_accumulation: int | None = None
    max_grad_norm: float | None = None  # 0: no clipping
    eval_batch_size: int | None = None
    seed: int | None = None
    split_seed: int | None = None  # the held-out validation rows (no --validation); None: --seed
    early_stopping_patience: int | None = None  # None: never stop early
    device: str | None = None
    precision: str | None = None
    metric: str | None = None  # an extra evaluate metric
    drop_invalid: bool | None = None
    overwrite: bool | None = None
    trust_remote_code: bool | None = None
    recipe: str | None = None
    resume: bool | None = None  # continue the run in --output from its last checkpoint
    save_every: int | None = None  # optimizer steps between checkpoints; None: every epoch and every ~10 minutes
    keep_checkpoints: int | None = None
    skip_nonfinite: int | None = None  # steps with a non-finite loss skipped before the run stops
    # Data people really have: imbalance, several labels per row, long texts (see docs/data-formats.md).
    class_weights: str | tuple[float, ...] | None = None  # "auto" (inverse frequency) or one weight per label
    metric_for_best: str | None = None  # None: the task's primary metric (micro_f1 with multi_label)
    multi_label: bool | None = None
    label_separator: str | None = None
    threshold: float | None = None  # multi_label: a label is predicted when its probability reaches it
    long_text: str | None = None  # truncate | head-tail | sliding
    stride: int | None = None  # sliding: tokens consecutive windows share; None: max_length // 2
    report_to: tuple[str, ...] | None = None  # experiment trackers: tensorboard, wandb, mlflow
    # Batches of similar-length rows (docs/performance.md); no flag: off only to measure what it gives.
    length_bucketing: bool | None = None
    # Data bigger than memory (docs/data-formats.md#large-files).
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule spans them)
    eval_every: int | None = None  # evaluate (and pick the best model) every N steps instead of every epoch
    max_eval_samples: int | None = None  # validate on a seeded, stratified sample of this many rows
    workers: int | None = None  # processes tokenizing large data; None: one per usable CPU

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    def given(self) -> dict[str, Any]:
        """The settings given explicitly (not None)."""
        return {key: value for key, value in self.to_dict().items() if value is not None}

    def resolved(self) -> TrainConfig:
        """Every setting filled, for the CLI and Python alike, then validated once.

        The task comes from --task or DATA; then the precedence is TRAIN_DEFAULTS < the model's
        defaults (pretrained or tiny) < the task's --recipe < what was given.
        """
        from roberta_ft.imbalance import parse_class_weights
        from roberta_ft.registry import resolve_task
        from roberta_ft.tracking import parse_report_to

        task = resolve_task(self.task, self.data)
        values = apply_recipe({**self.given(), "task": task.name}, task)
        model = values.get("model", TRAIN_DEFAULTS["model"])
        defaults = {**TRAIN_DEFAULTS, **(TINY_DEFAULTS if model == "tiny" else PRETRAINED_DEFAULTS)}
        config = TrainConfig.from_dict({**defaults, **values})
        config = config.replace(
            class_weights=parse_class_weights(config.class_weights), report_to=parse_report_to(config.report_to)
        )
        config.validate()
        return config

    def validate(self) -> None:
        from roberta_ft.runtime import DEVICES, PRECISIONS

        _check_positive("learning_rate", self.learning_rate, allow_none=True)
        _check_positive("epochs", self.epochs, allow_none=True, integer=True)
        _check_positive("batch_size", self.batch_size, integer=True)
        _check_positive("max_length", self.max_length, integer=True)
        _check_positive("gradient_accumulation", self.gradient_accumulation, integer=True)
        _check_positive("eval_batch_size", self.eval_batch_size, integer=True)
        _check_positive("early_stopping_patience", self.early_stopping_patience, allow_none=True, integer=True)
        _check_positive("adam_epsilon", self.adam_epsilon)
        _check_positive("save_every", self.save_every, allow_none=True, integer=True)
        _check_positive("keep_checkpoints", self.keep_checkpoints, integer=True)
        for name in ("max_steps", "eval_every", "max_eval_samples", "workers"):
            _check_positive(name, getattr(self, name), allow_none=True, integer=True)
        _check_skip_nonfinite(self.skip_nonfinite)
        if self.max_length < 8:
            raise ConfigError(f"--max-length must be at least 8, got {self.max_length}", "pass e.g. --max-length 256")
        if self.is_tiny:
            _check_tiny_length(self.max_length)
        if not 0 < self.validation_split < 1:
            raise ConfigError(
                f"--validation-split must be between 0 and 1, got {self.validation_split!r}", "pass e.g. 0.1"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}", "pass e.g. 0.06")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay!r}", "pass e.g. 0.1")
        if self.max_grad_norm < 0:
            raise ConfigError(f"--max-grad-norm must be >= 0, got {self.max_grad_norm!r}", "pass 0 to disable clipping")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}", "e.g. [0.9, 0.98]")
        if self.batch_size % self.gradient_accumulation:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not a multiple of --gradient-accumulation {self.gradient_accumulation}",
                "the batch size counts samples per optimizer step; make it a multiple",
            )
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            if (value is not None or name == "seed") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                flag = f"--{name.replace('_', '-')}"
                raise ConfigError(f"{flag} must be a non-negative integer, got {value!r}", f"pass e.g. {flag} 42")
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        if not self.output:
            raise ConfigError("no output directory given", "pass --output DIR")
        _check_data_options(self)


@dataclass(frozen=True)
class EvalConfig(_Settings):
    model_dir: str
    data: str
    task: str | None = None  # None: the task in the model dir's run_config.json
    split: str = "validation"
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    format: str | None = None
    encoding: str = "utf-8"
    data_dir: str | None = None
    max_length: int | None = None  # None: the training max length
    batch_size: int = 128
    device: str = "auto"
    precision: str = "auto"
    metric: str | None = None
    drop_invalid: bool = False
    trust_remote_code: bool = False
    threshold: float | None = None  # multi-label models; None: the training threshold
    long_text: str | None = None  # None: the training --long-text (and --stride)
    stride: int | None = None
    report: str | None = None  # eval_report.json path; None: into the model directory
    backend: str = "torch"  # what runs the network (inference.BACKENDS)

    def validate(self) -> None:
        _check_positive("batch_size", self.batch_size, integer=True)
        _check_positive("max_length", self.max_length, allow_none=True, integer=True)
        _check_runtime(self)
        _check_data_options(self)


@dataclass(frozen=True)
class PredictConfig(_Settings):
    model_dir: str
    input: str
    output: str | None = None  # None: stdout
    batch_size: int = 64
    max_length: int | None = None
    device: str = "auto"
    precision: str = "auto"
    encoding: str = "utf-8"
    chunk_lines: int = 8192  # lines read, sorted and predicted at a time: memory stays flat
    overwrite: bool = False
    trust_remote_code: bool = False
    # When INPUT names a task dataset (e.g. glue/sst2): its split, data folder, and a submission folder.
    split: str = "test"
    data_dir: str | None = None  # None: the data dir the model was trained with
    submission: str | None = None  # a folder for the task's leaderboard file (GLUE: SST-2.tsv ...)
    top_k: int | None = None  # the K best labels with their probabilities
    threshold: float | None = None  # multi-label models; None: the training threshold
    long_text: str | None = None  # None: the training --long-text (and --stride)
    stride: int | None = None
    backend: str = "torch"  # what runs the network (inference.BACKENDS)

    def validate(self) -> None:
        _check_positive("batch_size", self.batch_size, integer=True)
        _check_positive("max_length", self.max_length, allow_none=True, integer=True)
        _check_positive("chunk_lines", self.chunk_lines, integer=True)
        _check_runtime(self)
        _check_positive("top_k", self.top_k, allow_none=True, integer=True)
        _check_data_options(self)


@dataclass(frozen=True)
class ExportConfig(_Settings):
    model_dir: str
    output: str | None = None  # None: into model_dir, beside its config.json and tokenizer
    # int8: model.onnx and model_quantized.onnx (the residual projections kept in fp32, export.py);
    # int8-full: every matrix product in int8 (faster, less accurate); none: model.onnx only
    quantize: str = "int8"
    verify_texts: str | None = None  # a text file (one text per line) to check the export on; None: built-in samples
    overwrite: bool = False
    trust_remote_code: bool = False

    def validate(self) -> None:
        _check_choice("quantize", self.quantize, ("int8", "int8-full", "none"))


# `roberta-ft pretrain --recipe`: the published settings (docs/pretraining.md). Without a recipe: RoBERTa's
# optimizer and masking with a TAPT-sized batch, 10 epochs (PRETRAIN_DEFAULTS).
PRETRAIN_RECIPES = {
    # Gururangan et al. 2020, task-adaptive pretraining: 100 epochs over the task's own texts.
    "tapt": {"epochs": 100, "batch_size": 256, "learning_rate": 1e-4, "warmup_ratio": 0.06},
    # Domain-adaptive pretraining: 12.5k steps of 2,048 sequences on the domain's corpus.
    "dapt": {"max_steps": 12500, "batch_size": 2048, "learning_rate": 5e-4, "warmup_ratio": 0.06},
}
PRETRAIN_DEFAULTS = {"epochs": 10, "batch_size": 256, "warmup_ratio": 0.06}
PRETRAIN_LEARNING_RATE = {"pretrained": 1e-4, "tiny": 1e-3}  # without a recipe or --learning-rate
# The share of the steps over which attention's bias toward nearby tokens fades (masking.LocalityWarmup):
# a model from random weights needs it to leave the masked LM's word-frequency plateau; a pretrained one does not.
PRETRAIN_LOCALITY_WARMUP = {"pretrained": 0.0, "tiny": 0.3}
MICRO_BATCH_TOKENS = {"cpu": 8192, "cuda": 32768, "mps": 8192}  # tokens per forward pass when not given


@dataclass(frozen=True)
class PretrainConfig(_Settings):
    """`roberta-ft pretrain`: masked-LM pretraining on a corpus (roberta_ft/pretrain.py). None: from the recipe."""

    corpus: str
    output: str
    model: str = "roberta-base"  # a model id or directory to continue from, or "tiny": a small RoBERTa from scratch
    recipe: str | None = None  # tapt | dapt (PRETRAIN_RECIPES); None: PRETRAIN_DEFAULTS
    text_column: str | None = None  # CSV/TSV/JSONL corpora; None: the "text" column
    format: str | None = None
    encoding: str = "utf-8"
    blank_line_documents: bool = False  # .txt: documents are paragraphs separated by blank lines
    validation_split: float = 0.05  # a seeded share of the documents held out for the masked-LM loss
    max_length: int = 512  # tokens per block
    batch_size: int | None = None  # sequences per optimizer step, over processes and accumulation
    micro_batch_size: int | None = None  # sequences per forward pass; None: MICRO_BATCH_TOKENS // max_length
    learning_rate: float | None = None
    epochs: int | None = None
    max_steps: int | None = None  # the steps decide instead of the epochs
    warmup_ratio: float | None = None
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_epsilon: float = 1e-6
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    whole_word_masking: bool = False  # mask whole words (all of a word's tokens or none) instead of single tokens
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    eval_every: int | None = None  # evaluate every N optimizer steps instead of every epoch
    eval_batch_size: int | None = None  # None: the micro-batch size
    save_every: int | None = None  # optimizer steps between checkpoints; None: every epoch and every ~10 minutes
    keep_checkpoints: int = 2
    skip_nonfinite: int = 0
    overwrite: bool = False
    resume: bool = False
    vocab_size: int = 8192  # --model tiny: the BPE vocabulary trained on the corpus
    trust_remote_code: bool = False
    sparse_head: bool = True  # the LM head only at masked positions (masking.py); False: on every position
    locality_warmup: float | None = None  # share of the steps; None: PRETRAIN_LOCALITY_WARMUP

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    def resolved(self) -> PretrainConfig:
        """Every None filled: PRETRAIN_DEFAULTS < the --recipe < what was given."""
        if self.recipe is not None:
            _check_choice("recipe", self.recipe, tuple(PRETRAIN_RECIPES))
        given = {key: value for key, value in self.to_dict().items() if value is not None}
        recipe = PRETRAIN_RECIPES.get(self.recipe, {}) if self.recipe else {}
        start = "tiny" if self.is_tiny else "pretrained"
        values = {
            **PRETRAIN_DEFAULTS,
            "learning_rate": PRETRAIN_LEARNING_RATE[start],
            "locality_warmup": PRETRAIN_LOCALITY_WARMUP[start],
            **recipe,
            **given,
        }
        if values.get("max_steps") is not None and "epochs" not in given:
            values["epochs"] = 1  # the steps decide; the loop runs as many epochs as they need
        config = PretrainConfig.from_dict(values)
        config.validate()
        return config

    def validate(self) -> None:
        from roberta_ft.runtime import DEVICES, PRECISIONS

        for name in ("learning_rate", "adam_epsilon"):
            _check_positive(name, getattr(self, name))
        for name in ("epochs", "batch_size", "max_length", "keep_checkpoints", "vocab_size"):
            _check_positive(name, getattr(self, name), integer=True)
        for name in ("micro_batch_size", "max_steps", "eval_every", "eval_batch_size", "save_every"):
            _check_positive(name, getattr(self, name), allow_none=True, integer=True)
        if self.max_length < 16:
            raise ConfigError(f"--max-length must be at least 16, got {self.max_length}", "pass e.g. --max-length 512")
        _check_skip_nonfinite(self.skip_nonfinite)
        if self.is_tiny:
            _check_tiny_length(self.max_length)
            if self.vocab_size < 300:
                raise ConfigError(
                    f"--vocab-size {self.vocab_size} is too small for a byte-level BPE",
                    "pass --vocab-size 1000 or more",
                )
        if not 0 < self.validation_split < 1:
            raise ConfigError(
                f"--validation-split must be between 0 and 1, got {self.validation_split!r}", "pass e.g. 0.05"
            )
        if self.locality_warmup is not None and not 0 <= self.locality_warmup <= 1:
            raise ConfigError(
                f"--locality-warmup must be between 0 and 1 (a share of the steps), got {self.locality_warmup!r}",
                "pass e.g. 0.3, or 0 for none",
            )
        if not 0 < self.mlm_probability < 1:
            raise ConfigError(
                f"--mlm-probability must be between 0 and 1, got {self.mlm_probability!r}", "pass e.g. 0.15"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio!r}", "pass e.g. 0.06")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("--weight-decay and --max-grad-norm must be >= 0", "pass e.g. 0.01 and 1.0")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}", "e.g. [0.9, 0.98]")
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size {self.micro_batch_size}",
                "the batch size counts sequences per optimizer step; make it a multiple",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}", "pass e.g. --seed 42")
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite contradict each other", "pass one of them, not both")
        if not self.output:
            raise ConfigError("no output directory given", "pass --output DIR")


# The addresses `serve` binds without a warning: this machine only.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig(_Settings):
    """`roberta-ft serve`: an HTTP prediction service over one model directory (see roberta_ft/serve.py)."""

    model_dir: str
    host: str = "127.0.0.1"  # this machine only; anything else is the user's explicit choice (logged)
    port: int = 8000
    backend: str = "torch"  # what runs the network (inference.BACKENDS)
    device: str = "auto"
    precision: str = "auto"
    trust_remote_code: bool = False
    max_length: int | None = None  # None: the training max length
    long_text: str | None = None  # None: the training --long-text (and --stride)
    stride: int | None = None
    threshold: float | None = None  # multi-label models; None: the training threshold (a request may pass its own)
    max_batch_size: int = 64  # texts per forward pass, gathered from concurrent requests; 1: no batching
    max_wait_ms: float = 5.0  # how long the oldest waiting text may wait for others to fill a batch
    max_texts: int = 256  # texts (or pairs) in one request
    max_body_kb: int = 1024  # request body size limit, KiB
    access_log: bool = False  # one log line per request (uvicorn's access log)

    def validate(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(f"--host must be an address, got {self.host!r}", "pass e.g. --host 127.0.0.1")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ConfigError(
                f"--port must be a port number from 1 to 65535, got {self.port!r}", "pass e.g. --port 8000"
            )
        _check_positive("max_batch_size", self.max_batch_size, integer=True)
        _check_positive("max_texts", self.max_texts, integer=True)
        _check_positive("max_body_kb", self.max_body_kb, integer=True)
        _check_positive("max_length", self.max_length, allow_none=True, integer=True)
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait) or wait < 0:
            raise ConfigError(f"--max-wait-ms must be a number >= 0, got {wait!r}", "pass e.g. --max-wait-ms 5")
        _check_runtime(self)
        _check_data_options(self)

    @property
    def is_local(self) -> bool:
        """Whether the service is reachable from this machine only."""
        return self.host in LOCAL_HOSTS


# `roberta-ft tune`: the named search spaces (search_space.py) and the pruners that stop hopeless trials.
TUNE_SPACES = ("roberta-paper", "wide")
PRUNERS = ("median", "successive-halving", "none")
# Trials of a study whose space is not a grid, when --trials is not given.
TUNE_TRIALS = 20


@dataclass(frozen=True)
class TuneConfig(_Settings):
    """A hyperparameter search: the training settings every trial starts from, and how to search.

    ``train.output`` is the study's directory (DIR/trials/NNN, DIR/best, DIR/tune.json). Settings given
    in ``train`` (not None) are fixed: the space searches the others.
    """

    train: TrainConfig
    trials: int | None = None  # finished trials the study should hold; None: the grid's size, else TUNE_TRIALS
    timeout: float | None = None  # seconds after which no new trial starts (the running one finishes)
    space: str = "wide"  # roberta-paper | wide | a .toml file
    storage: str | None = None  # an Optuna RDB URL; None: a SQLite file in the output directory
    study_name: str = "roberta-ft"
    pruner: str = "median"
    sampler_seed: int | None = None  # None: a fresh random search each process
    overwrite: bool = False  # start a new study: clear the output directory (and the study in --storage)

    @property
    def output(self) -> str:
        return self.train.output

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings") -> TuneConfig:
        values = dict(values)
        train = values.pop("train", None)
        if not isinstance(train, dict):
            raise ConfigError(f"no training settings in {source}", "give a 'train' table with at least data and output")
        known = [name for name in cls.field_names() if name != "train"]
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"unknown tune setting {key!r} in {source}", f"{_closest_key(key, known)}known: {', '.join(known)}"
                )
        return cls(train=TrainConfig.from_dict(train, source=source), **values)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "train"},
            "train": self.train.to_dict(),
        }

    def validate(self) -> None:
        _check_positive("trials", self.trials, allow_none=True, integer=True)
        _check_positive("timeout", self.timeout, allow_none=True)
        _check_choice("pruner", self.pruner, PRUNERS)
        if self.space not in TUNE_SPACES and not str(self.space).lower().endswith(".toml"):
            raise ConfigError(
                f"--space {self.space!r} is neither a named space nor a .toml file",
                f"use one of {', '.join(TUNE_SPACES)}, or a FILE.toml of ranges (see docs/tuning.md)",
            )
        if self.storage is not None and "://" not in self.storage:
            raise ConfigError(
                f"--storage {self.storage!r} is not a database URL",
                "pass e.g. sqlite:///study.db or postgresql://user:password@host/database",
            )
        if not self.study_name or not str(self.study_name).strip():
            raise ConfigError("--study-name must not be empty", "pass e.g. --study-name sst2-wide")
        seed = self.sampler_seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ConfigError(
                f"--sampler-seed must be a non-negative integer, got {seed!r}", "pass e.g. --sampler-seed 0"
            )
        if not self.train.output:
            raise ConfigError("no output directory given", "pass --output DIR")
        if self.train.resume:
            raise ConfigError(
                "tune has no --resume: re-running the same command continues its study",
                "drop --resume (pass --overwrite to start a new study instead)",
            )
        if self.train.overwrite:
            raise ConfigError(
                "overwrite is tune's own setting, not the trials'",
                "pass --overwrite (TuneConfig(overwrite=True)) to start a new study",
            )


def parse_duration(text: str | float | int) -> float:
    """ "90s", "30m", "2h", "1h30m" or a number of seconds -> seconds."""
    import re

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        spec = str(text).strip().lower().replace(" ", "")
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", spec)
        if not spec or parts is None or not any(parts.groups()):
            raise ConfigError(f"--timeout {text!r} is not a duration", "pass e.g. --timeout 2h, 90m, 1h30m or 3600")
        hours, minutes, seconds = (float(part) if part else 0.0 for part in parts.groups())
        value = hours * 3600 + minutes * 60 + seconds
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--timeout must be a positive duration, got {text!r}", "pass e.g. --timeout 2h")
    return value


def _check_runtime(settings) -> None:
    """--backend, --device and --precision of eval, predict and serve (inference.load's options)."""
    from roberta_ft.runtime import BACKENDS, DEVICES, PRECISIONS

    _check_choice("backend", settings.backend, BACKENDS)
    _check_choice("device", settings.device, DEVICES)
    if settings.backend == "onnx":
        from roberta_ft.onnx_model import PRECISIONS as ONNX_PRECISIONS

        if settings.precision not in ONNX_PRECISIONS:
            raise ConfigError(
                f"--precision {settings.precision} is not available with --backend onnx",
                f"use one of {', '.join(ONNX_PRECISIONS)} (int8 and fp32 are the exported files)",
            )
    elif settings.precision == "int8":
        raise ConfigError("--precision int8 needs --backend onnx", "export the model with `roberta-ft export`")
    else:
        _check_choice("precision", settings.precision, PRECISIONS)


def _check_data_options(settings) -> None:
    """--threshold, --long-text and --stride, shared by train, eval, predict and serve."""
    threshold = settings.threshold
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1
    ):
        raise ConfigError(f"--threshold must be between 0 and 1, got {threshold!r}", "pass e.g. --threshold 0.5")
    if not getattr(settings, "label_separator", "|"):
        raise ConfigError("--label-separator must not be empty", "pass e.g. --label-separator '|'")
    if settings.long_text is not None or settings.stride is not None:
        from roberta_ft.data.tokens import check_options

        check_options(settings.long_text or "sliding", settings.stride, settings.max_length)


def apply_recipe(values: Mapping[str, Any], task: Task) -> dict[str, Any]:
    """Settings with the recipe named by ``values["recipe"]`` filled in under them.

    ``values`` holds only the settings given explicitly (a --config file's, then the flags', or the
    non-None fields of a TrainConfig), so the precedence is: defaults < recipe < config file < flags.
    A recipe may name the base model (``model``); it is used when no model was given. Without a
    recipe, ``values`` is returned as is. `TrainConfig.resolved` applies it, for the CLI and Python alike.
    """
    name = values.get("recipe")
    if name is None:
        return dict(values)
    from roberta_ft.recipes import recipe_settings

    settings = recipe_settings(task, name)
    unknown = [key for key in settings if key not in TrainConfig.field_names()]
    if unknown:
        raise ConfigError(
            f"recipe {name!r} of task {task.name!r} sets unknown setting(s) {', '.join(map(repr, unknown))}",
            "fix the task plugin's recipe: keys must be TrainConfig settings",
        )
    return {**settings, **values}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML settings file as plain data (never executed)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}", "check the --config path")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            values = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            raise ConfigError(f"cannot tell the format of config file {path}", "use a .toml, .yaml or .json file")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot parse config file {path}: {str(exc).splitlines()[0]}", "fix its syntax") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} does not hold a table of settings", "write key = value lines")
    return {key.replace("-", "_"): value for key, value in values.items()}
