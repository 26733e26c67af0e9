"""One frozen settings object per command: validated once, written to run_config.json, read back later.

Every setting is declared one way, beside its field: `name: type = setting(default, *checks)`. The default
and the range checks live there; `_Settings.validate` runs every field's checks, then the few checks that
relate two settings (`check_together`). The settings of a command that trains (`TrainConfig`,
`PretrainConfig`) are layered: a field is None until given (a flag, a --config file or Python), and
`resolved()` fills what was not given from the declared defaults (some depend on the model: `by_model`),
under the recipe, under what was given.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roberta_ft.errors import ConfigError
from roberta_ft.runtime import BACKENDS, DEVICES, PRECISIONS

if TYPE_CHECKING:
    from roberta_ft.registry import Task

# Without --save-every, a checkpoint every epoch and at least this often.
SAVE_EVERY_SECONDS = 600.0


# ------------------------------------------------------------------------------------ declaring settings


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Check:
    """A range check declared beside a setting: `test(value)` must hold, else one error line:
    "--flag must be DESCRIPTION, got VALUE" with the hint "pass e.g. --flag EXAMPLE" (or `hint`)."""

    test: Callable[[Any], bool]
    description: str
    example: Any = None
    hint: str | None = None
    optional: bool = False  # None passes (a setting whose None means "as trained", "not given", "none")
    problem: str = "{flag} must be {description}, got {value!r}"  # the error line's problem part

    def __call__(self, flag: str, value: Any) -> None:
        if value is None and self.optional:
            return
        if value is None or not self.test(value):
            problem = self.problem.format(flag=flag, description=self.description, value=value)
            raise ConfigError(problem, self.hint or f"pass e.g. {flag} {self.example}")


@dataclass(frozen=True)
class OneOf:
    """A setting with a fixed set of values."""

    choices: tuple[str, ...]
    optional: bool = False

    def __call__(self, flag: str, value: Any) -> None:
        if (value is None and self.optional) or value in self.choices:
            return
        raise ConfigError(f"{flag} {value!r} is not valid", f"use one of {', '.join(map(str, self.choices))}")


def positive(example: Any = 2e-5, *, optional: bool = False) -> Check:
    return Check(lambda v: _number(v) and v > 0, "a positive number", example, optional=optional)


def positive_int(example: Any = 16, *, optional: bool = False) -> Check:
    return Check(lambda v: _integer(v) and v > 0, "a positive integer", example, optional=optional)


def non_negative_int(example: Any, *, optional: bool = False) -> Check:
    return Check(lambda v: _integer(v) and v >= 0, "a non-negative integer", example, optional=optional)


def at_least(bound: float, example: Any, *, hint: str | None = None, description: str | None = None) -> Check:
    return Check(lambda v: _number(v) and v >= bound, description or f">= {bound:g}", example, hint=hint)


def between(low: float, high: float, example: Any, *, closed: str = "", description: str | None = None, **kw) -> Check:
    """low < value < high; `closed` names the ends that are allowed ("low", "high", "both")."""
    low_ok = closed in ("low", "both")
    high_ok = closed in ("high", "both")

    def test(value) -> bool:
        return (
            _number(value)
            and (low <= value if low_ok else low < value)
            and (value <= high if high_ok else value < high)
        )

    return Check(test, description or f"between {low:g} and {high:g}", example, **kw)


@dataclass(frozen=True)
class ByModel:
    """A default that depends on the model: a pretrained one, or `tiny` (from random weights)."""

    pretrained: Any
    tiny: Any

    def for_model(self, model: str | None) -> Any:
        return self.tiny if model == "tiny" else self.pretrained


def setting(default: Any = None, *checks: Check | OneOf, flag: bool = True) -> Any:
    """A settings field: its default and its checks, declared together (`flag`: False for a setting that
    has no command-line flag, so its messages name the setting itself)."""
    metadata = {"default": default, "checks": checks, "flag": flag}
    value = None if isinstance(default, ByModel) else default
    if isinstance(value, (list, dict, set)):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    return dataclasses.field(default=value, metadata=metadata)


# What a settings object cannot be made without, and how the user gives it.
_REQUIRED = {"output": ("no output directory given", "pass --output DIR")}


def _closest_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def flag_name(name: str) -> str:
    return f"--{name.replace('_', '-')}"


class _Settings:
    """Shared behaviour: dict/JSON round trip with unknown keys named, the declared defaults and checks."""

    # Layered settings (the commands that train): a field is None until given; `resolved()` fills the rest.
    layered = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("layered"):
            # None means "not given": the declared default is applied by resolved(), under recipes and flags.
            for value in list(cls.__dict__.values()):
                if isinstance(value, dataclasses.Field) and "default" in value.metadata:
                    value.default = None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def declared_defaults(cls, model: str | None = None) -> dict[str, Any]:
        """Each field's declared default (for `model`, where it depends on the model); None where there is none."""
        defaults = {}
        for f in fields(cls):  # type: ignore[arg-type]
            default = f.metadata.get("default")
            defaults[f.name] = default.for_model(model) if isinstance(default, ByModel) else default
        return defaults

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
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and values.get(f.name) in (None, ""):
                problem, hint = _REQUIRED.get(f.name, (f"no {f.name} given", f"pass {flag_name(f.name)}"))
                raise ConfigError(problem, hint)
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

    def given(self) -> dict[str, Any]:
        """The settings given explicitly (not None)."""
        return {key: value for key, value in self.to_dict().items() if value is not None}

    def validate(self) -> None:
        """Every field's declared checks, then the checks that relate settings to each other."""
        for f in fields(self):  # type: ignore[arg-type]
            for check in f.metadata.get("checks", ()):
                check(flag_name(f.name) if f.metadata.get("flag", True) else f.name, getattr(self, f.name))
        self.check_together()

    def check_together(self) -> None:
        """Checks that relate two or more settings (a subclass adds its own)."""


# ------------------------------------------------------------------------------------ shared checks

# Any number 0 < t < 1: multi-label's decision threshold (train, eval, predict, serve).
THRESHOLD = between(0, 1, 0.5, optional=True)
# predict/serve --min-confidence P: rows whose label's probability is under P abstain (calibration.py).
MIN_CONFIDENCE = between(
    0,
    1,
    0.9,
    closed="high",
    optional=True,
    description="a probability in (0, 1]",
    hint="pass e.g. --min-confidence 0.9",
)
# What calibration fits after training, and the F-scores a decision threshold may be chosen for.
CALIBRATIONS = ("temperature", "none")
THRESHOLD_METRICS = ("f1", "f0.5", "f2")


def _check_tiny_length(max_length: int) -> None:
    from roberta_ft.modeling import TINY_MAX_LENGTH

    if max_length > TINY_MAX_LENGTH:
        raise ConfigError(
            f"--max-length {max_length} is more than model 'tiny' supports ({TINY_MAX_LENGTH} tokens)",
            f"pass --max-length {TINY_MAX_LENGTH} or less",
        )


def _check_run(settings) -> None:
    """What every command that trains requires together: an output directory, a tiny model's length limit,
    and not both --resume and --overwrite."""
    if not settings.output:
        raise ConfigError("no output directory given", "pass --output DIR")
    if settings.resume and settings.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other", "pass one of them, not both")
    if settings.is_tiny:
        _check_tiny_length(settings.max_length)


def _check_reading(settings) -> None:
    """--long-text and --stride against --max-length (train, eval, predict, serve)."""
    if settings.long_text is not None or settings.stride is not None:
        from roberta_ft.data.tokens import check_options

        check_options(settings.long_text or "sliding", settings.stride, settings.max_length)


def _check_runtime(settings) -> None:
    """--backend with --precision (eval, predict and serve): int8 exists only as an exported ONNX model."""
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
        OneOf(PRECISIONS)("--precision", settings.precision)


# The settings of a run that trains, with the same meaning in train and pretrain (their defaults may differ).
WARMUP_RATIO = between(0, 1, 0.06, closed="low", description="in [0, 1)")
ADAM_BETAS = Check(
    lambda v: isinstance(v, (tuple, list)) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v),
    "two numbers in [0, 1)",
    hint="e.g. [0.9, 0.98]",
)
MAX_GRAD_NORM = at_least(0, 1.0, hint="pass 0 to disable clipping")
SEED = non_negative_int(42)
NOT_EMPTY = Check(lambda v: bool(v) and bool(str(v).strip()), "not empty", "'|'", problem="{flag} must not be empty")


# ------------------------------------------------------------------------------------ train


@dataclass(frozen=True)
class TrainConfig(_Settings):
    """The settings of one training run. None means "not given": `resolved()` fills it (see the module doc)."""

    layered = True

    data: str
    output: str
    task: str | None = setting(None)  # None: the task DATA names (glue/rte), else classification
    model: str | None = setting("roberta-base")  # a Hub id, a local directory, or "tiny"
    validation: str | None = setting(None)
    validation_split: float | None = setting(0.1, between(0, 1, 0.1))
    text_column: str | None = setting(None)
    text_pair_column: str | None = setting(None)
    label_column: str | None = setting(None)
    format: str | None = setting(None)
    encoding: str | None = setting("utf-8")
    data_dir: str | None = setting(None)
    epochs: int | None = setting(ByModel(pretrained=3, tiny=10), positive_int(3))
    batch_size: int | None = setting(
        32, positive_int(16)
    )  # samples per optimizer step, over processes and accumulation
    learning_rate: float | None = setting(ByModel(pretrained=2e-5, tiny=1e-3), positive(2e-5))
    max_length: int | None = setting(256, positive_int(256), at_least(8, 256, description="at least 8"))
    warmup_ratio: float | None = setting(0.06, WARMUP_RATIO)
    weight_decay: float | None = setting(0.1, at_least(0, 0.1))
    adam_betas: tuple[float, float] | None = setting((0.9, 0.98), ADAM_BETAS, flag=False)  # RoBERTa's Adam settings
    adam_epsilon: float | None = setting(1e-6, positive(1e-6))
    gradient_accumulation: int | None = setting(1, positive_int(2))
    max_grad_norm: float | None = setting(1.0, MAX_GRAD_NORM)  # 0: no clipping
    eval_batch_size: int | None = setting(128, positive_int(128))
    seed: int | None = setting(42, SEED)
    split_seed: int | None = setting(None, non_negative_int(42, optional=True))  # held-out rows' seed; None: --seed
    early_stopping_patience: int | None = setting(None, positive_int(3, optional=True))  # None: never stop early
    device: str | None = setting("auto", OneOf(DEVICES))
    precision: str | None = setting("auto", OneOf(PRECISIONS))
    metric: str | None = setting(None)  # an extra evaluate metric
    drop_invalid: bool | None = setting(False)
    overwrite: bool | None = setting(False)
    trust_remote_code: bool | None = setting(False)
    recipe: str | None = setting(None)
    resume: bool | None = setting(False)  # continue the run in --output from its last checkpoint
    save_every: int | None = setting(None, positive_int(500, optional=True))  # None: every epoch and ~10 minutes
    keep_checkpoints: int | None = setting(2, positive_int(2))
    skip_nonfinite: int | None = setting(0, non_negative_int(3))  # steps with a non-finite loss skipped
    # Data people really have: imbalance, several labels per row, long texts (see docs/data-formats.md).
    class_weights: str | tuple[float, ...] | None = setting(None)  # "auto" (inverse frequency) or one weight per label
    metric_for_best: str | None = setting(None)  # None: the task's primary metric (micro_f1 with multi_label)
    multi_label: bool | None = setting(False)
    label_separator: str | None = setting("|", NOT_EMPTY)
    threshold: float | None = setting(0.5, THRESHOLD)  # multi_label: a label is predicted from this probability
    # After the best epoch, on the validation rows (docs/calibration.md): temperature scaling (a scale and bias per
    # label for multi-label) folded into the output layer; per-label thresholds for multi-label (none: --threshold);
    # a binary task's decision threshold, off unless asked for.
    calibration: str | None = setting("temperature", OneOf(CALIBRATIONS))
    threshold_metric: str | None = setting("f1", OneOf((*THRESHOLD_METRICS, "none")))
    optimize_threshold: str | None = setting(None, OneOf(THRESHOLD_METRICS, optional=True))
    long_text: str | None = setting("truncate")  # truncate | head-tail | sliding
    stride: int | None = setting(None)  # sliding: tokens consecutive windows share; None: max_length // 2
    report_to: tuple[str, ...] | None = setting(())  # experiment trackers: tensorboard, wandb, mlflow
    # Batches of similar-length rows (docs/performance.md); no flag: off only to measure what it gives.
    length_bucketing: bool | None = setting(True)
    # Data bigger than memory (docs/data-formats.md#large-files).
    max_steps: int | None = setting(None, positive_int(1000, optional=True))  # stop after N optimizer steps
    eval_every: int | None = setting(None, positive_int(500, optional=True))  # evaluate every N steps
    max_eval_samples: int | None = setting(None, positive_int(2000, optional=True))  # validate on a sample
    workers: int | None = setting(None, positive_int(2, optional=True))  # tokenizing processes; None: one per CPU
    # fine-tune, few-shot (a handful of rows per class: fewshot.py), or auto: few-shot with a pretrained model
    # when no class has more than 64 training rows.
    method: str | None = setting("auto", OneOf(("auto", "few-shot", "fine-tune")))
    # Binary classifiers: the label whose F1 is `f1`; None: the second label (id 1, alphabetically second).
    positive_label: str | None = setting(None)

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    def resolved(self, budget: Mapping[str, Any] | None = None) -> TrainConfig:
        """Every setting filled, for the CLI and Python alike, then validated once.

        The task comes from --task or DATA; then the precedence is the declared defaults (for the model:
        pretrained or tiny) < a method's `budget` (few-shot training's) < the task's --recipe < what was given.
        """
        from roberta_ft.data.sources import resolve_task
        from roberta_ft.imbalance import parse_class_weights
        from roberta_ft.tracking import parse_report_to

        task = resolve_task(self.task, self.data)
        values = apply_recipe({**self.given(), "task": task.name}, task)
        model = values.get("model", TrainConfig.declared_defaults()["model"])
        defaults = {k: v for k, v in TrainConfig.declared_defaults(model).items() if v is not None}
        config = TrainConfig.from_dict({**defaults, **(budget or {}), **values})
        config = config.replace(
            class_weights=parse_class_weights(config.class_weights), report_to=parse_report_to(config.report_to)
        )
        config.validate()
        return config

    def check_together(self) -> None:
        _check_run(self)
        if self.batch_size % self.gradient_accumulation:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not a multiple of --gradient-accumulation {self.gradient_accumulation}",
                "the batch size counts samples per optimizer step; make it a multiple",
            )
        if self.optimize_threshold is not None and self.multi_label:
            raise ConfigError(
                "--optimize-threshold chooses a binary task's threshold; a multi-label model's come from "
                "--threshold-metric",
                f"drop --optimize-threshold; --threshold-metric {self.optimize_threshold} chooses per-label thresholds",
            )
        _check_reading(self)


# ------------------------------------------------------------------------------------ eval, predict


@dataclass(frozen=True)
class EvalConfig(_Settings):
    model_dir: str
    data: str
    task: str | None = setting(None)  # None: the task in the model dir's run_config.json
    split: str = setting("validation")
    text_column: str | None = setting(None)
    text_pair_column: str | None = setting(None)
    label_column: str | None = setting(None)
    format: str | None = setting(None)
    encoding: str = setting("utf-8")
    data_dir: str | None = setting(None)
    max_length: int | None = setting(None, positive_int(256, optional=True))  # None: the training max length
    batch_size: int = setting(128, positive_int(128))
    device: str = setting("auto", OneOf(DEVICES))
    precision: str = setting("auto")  # checked with the backend (_check_runtime)
    metric: str | None = setting(None)
    drop_invalid: bool = setting(False)
    trust_remote_code: bool = setting(False)
    threshold: float | None = setting(None, THRESHOLD)  # multi-label models; None: the training threshold
    long_text: str | None = setting(None)  # None: the training --long-text (and --stride)
    stride: int | None = setting(None)
    report: str | None = setting(None)  # eval_report.json path; None: into the model directory
    positive_label: str | None = setting(None)  # binary: the label whose F1 is `f1`; None: as trained
    backend: str = setting("torch", OneOf(BACKENDS))  # what runs the network (inference.BACKENDS)

    def check_together(self) -> None:
        _check_runtime(self)
        _check_reading(self)


@dataclass(frozen=True)
class PredictConfig(_Settings):
    model_dir: str
    input: str
    output: str | None = setting(None)  # None: stdout
    batch_size: int = setting(64, positive_int(64))
    max_length: int | None = setting(None, positive_int(256, optional=True))
    device: str = setting("auto", OneOf(DEVICES))
    precision: str = setting("auto")  # checked with the backend (_check_runtime)
    encoding: str = setting("utf-8")
    chunk_lines: int = setting(8192, positive_int(8192))  # lines read, sorted and predicted at a time
    overwrite: bool = setting(False)
    trust_remote_code: bool = setting(False)
    # When INPUT names a task dataset (e.g. glue/sst2): its split, data folder, and a submission folder.
    split: str = setting("test")
    data_dir: str | None = setting(None)  # None: the data dir the model was trained with
    submission: str | None = setting(None)  # a folder for the task's leaderboard file (GLUE: SST-2.tsv ...)
    top_k: int | None = setting(None, positive_int(3, optional=True))  # the K best labels with their probabilities
    threshold: float | None = setting(None, THRESHOLD)  # multi-label models; None: the training threshold
    min_confidence: float | None = setting(None, MIN_CONFIDENCE)  # rows under it abstain (no label)
    long_text: str | None = setting(None)  # None: the training --long-text (and --stride)
    stride: int | None = setting(None)
    backend: str = setting("torch", OneOf(BACKENDS))  # what runs the network (inference.BACKENDS)

    def check_together(self) -> None:
        _check_runtime(self)
        _check_reading(self)


@dataclass(frozen=True)
class ExportConfig(_Settings):
    model_dir: str
    output: str | None = setting(None)  # None: into model_dir, beside its config.json and tokenizer
    # int8: model.onnx and model_quantized.onnx (blockwise for a few-shot model, else dynamic with the residual
    # projections in fp32: export.int8_scheme); int8-blockwise: blockwise for any model; int8-full: dynamic int8
    # everywhere (faster, less accurate); none: model.onnx only
    quantize: str = setting("int8", OneOf(("int8", "int8-blockwise", "int8-full", "none")))
    verify_texts: str | None = setting(None)  # a text file (one text per line) to check on; None: built-in samples
    overwrite: bool = setting(False)
    trust_remote_code: bool = setting(False)


# ------------------------------------------------------------------------------------ pretrain

# `roberta-ft pretrain --recipe`: the published settings (docs/pretraining.md). Without a recipe: RoBERTa's
# optimizer and masking with a TAPT-sized batch, 10 epochs (the declared defaults).
PRETRAIN_RECIPES = {
    # Gururangan et al. 2020, task-adaptive pretraining: 100 epochs over the task's own texts.
    "tapt": {"epochs": 100, "batch_size": 256, "learning_rate": 1e-4, "warmup_ratio": 0.06},
    # Domain-adaptive pretraining: 12.5k steps of 2,048 sequences on the domain's corpus.
    "dapt": {"max_steps": 12500, "batch_size": 2048, "learning_rate": 5e-4, "warmup_ratio": 0.06},
}
MICRO_BATCH_TOKENS = {"cpu": 8192, "cuda": 32768, "mps": 8192}  # tokens per forward pass when not given


@dataclass(frozen=True)
class PretrainConfig(_Settings):
    """`roberta-ft pretrain`: masked-LM pretraining on a corpus (roberta_ft/pretrain.py). None: not given."""

    layered = True

    corpus: str
    output: str
    model: str | None = setting("roberta-base")  # a model id or directory to continue from, or "tiny"
    recipe: str | None = setting(None, OneOf(tuple(PRETRAIN_RECIPES), optional=True))  # tapt | dapt
    text_column: str | None = setting(None)  # CSV/TSV/JSONL corpora; None: the "text" column
    format: str | None = setting(None)
    encoding: str | None = setting("utf-8")
    blank_line_documents: bool | None = setting(False)  # .txt: documents are paragraphs between blank lines
    validation_split: float | None = setting(0.05, between(0, 1, 0.05))  # documents held out for the loss
    max_length: int | None = setting(512, positive_int(512), at_least(16, 512, description="at least 16"))  # per block
    batch_size: int | None = setting(256, positive_int(256))  # sequences per optimizer step
    micro_batch_size: int | None = setting(
        None, positive_int(8, optional=True)
    )  # None: MICRO_BATCH_TOKENS // max_length
    learning_rate: float | None = setting(ByModel(pretrained=1e-4, tiny=1e-3), positive(1e-4))
    epochs: int | None = setting(10, positive_int(10))
    max_steps: int | None = setting(None, positive_int(1000, optional=True))  # the steps decide instead of the epochs
    warmup_ratio: float | None = setting(0.06, WARMUP_RATIO)
    weight_decay: float | None = setting(0.01, at_least(0, 0.01))
    adam_betas: tuple[float, float] | None = setting((0.9, 0.98), ADAM_BETAS, flag=False)
    adam_epsilon: float | None = setting(1e-6, positive(1e-6))
    max_grad_norm: float | None = setting(1.0, MAX_GRAD_NORM)
    mlm_probability: float | None = setting(0.15, between(0, 1, 0.15))
    whole_word_masking: bool | None = setting(False)  # mask whole words (all of a word's tokens or none)
    seed: int | None = setting(42, SEED)
    device: str | None = setting("auto", OneOf(DEVICES))
    precision: str | None = setting("auto", OneOf(PRECISIONS))
    eval_every: int | None = setting(None, positive_int(500, optional=True))  # evaluate every N steps
    eval_batch_size: int | None = setting(None, positive_int(8, optional=True))  # None: the micro-batch size
    save_every: int | None = setting(None, positive_int(500, optional=True))  # None: every epoch and ~10 minutes
    keep_checkpoints: int | None = setting(2, positive_int(2))
    skip_nonfinite: int | None = setting(0, non_negative_int(3))
    overwrite: bool | None = setting(False)
    resume: bool | None = setting(False)
    vocab_size: int | None = setting(8192, positive_int(8192))  # --model tiny: the BPE vocabulary trained on the corpus
    trust_remote_code: bool | None = setting(False)
    sparse_head: bool | None = setting(True)  # the LM head only at masked positions (masking.py)
    # The share of the steps over which attention's bias toward nearby tokens fades (masking.LocalityWarmup):
    # a model from random weights needs it to leave the masked LM's word-frequency plateau; a pretrained one does not.
    locality_warmup: float | None = setting(
        ByModel(pretrained=0.0, tiny=0.3),
        between(
            0,
            1,
            0.3,
            closed="both",
            description="between 0 and 1 (a share of the steps)",
            hint="pass e.g. 0.3, or 0 for none",
        ),
    )

    @property
    def is_tiny(self) -> bool:
        return self.model == "tiny"

    def resolved(self) -> PretrainConfig:
        """Every None filled: the declared defaults (for the model) < the --recipe < what was given."""
        if self.recipe is not None:
            OneOf(tuple(PRETRAIN_RECIPES))("--recipe", self.recipe)
        given = self.given()
        model = given.get("model", PretrainConfig.declared_defaults()["model"])
        values = {
            **{k: v for k, v in PretrainConfig.declared_defaults(model).items() if v is not None},
            **PRETRAIN_RECIPES.get(self.recipe, {}),
            **given,
        }
        if values.get("max_steps") is not None and "epochs" not in given:
            values["epochs"] = 1  # the steps decide; the loop runs as many epochs as they need
        config = PretrainConfig.from_dict(values)
        config.validate()
        return config

    def check_together(self) -> None:
        _check_run(self)
        if self.is_tiny and self.vocab_size < 300:
            raise ConfigError(
                f"--vocab-size {self.vocab_size} is too small for a byte-level BPE", "pass --vocab-size 1000 or more"
            )
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size {self.micro_batch_size}",
                "the batch size counts sequences per optimizer step; make it a multiple",
            )


# ------------------------------------------------------------------------------------ serve

# The addresses `serve` binds without a warning: this machine only.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig(_Settings):
    """`roberta-ft serve`: an HTTP prediction service over one model directory (see roberta_ft/serve.py)."""

    model_dir: str
    # This machine only; anything else is the user's explicit choice (logged).
    host: str = setting("127.0.0.1", Check(lambda v: isinstance(v, str) and bool(v.strip()), "an address", "127.0.0.1"))
    port: int = setting(8000, Check(lambda v: _integer(v) and 1 <= v <= 65535, "a port number from 1 to 65535", 8000))
    backend: str = setting("torch", OneOf(BACKENDS))  # what runs the network (inference.BACKENDS)
    device: str = setting("auto", OneOf(DEVICES))
    precision: str = setting("auto")  # checked with the backend (_check_runtime)
    trust_remote_code: bool = setting(False)
    max_length: int | None = setting(None, positive_int(256, optional=True))  # None: the training max length
    long_text: str | None = setting(None)  # None: the training --long-text (and --stride)
    stride: int | None = setting(None)
    # Multi-label models; None: the training threshold (a request may pass its own).
    threshold: float | None = setting(None, THRESHOLD)
    min_confidence: float | None = setting(None, MIN_CONFIDENCE)  # rows under it abstain (a request may pass its own)
    max_batch_size: int = setting(64, positive_int(64))  # texts per forward pass from concurrent requests; 1: none
    # How long the oldest waiting text may wait for others to fill a batch.
    max_wait_ms: float = setting(5.0, Check(lambda v: _number(v) and v >= 0, "a number >= 0", 5))
    max_texts: int = setting(256, positive_int(256))  # texts (or pairs) in one request
    max_body_kb: int = setting(1024, positive_int(1024))  # request body size limit, KiB
    access_log: bool = setting(False)  # one log line per request (uvicorn's access log)

    def check_together(self) -> None:
        _check_runtime(self)
        _check_reading(self)

    @property
    def is_local(self) -> bool:
        """Whether the service is reachable from this machine only."""
        return self.host in LOCAL_HOSTS


# ------------------------------------------------------------------------------------ tune

# `roberta-ft tune`: the named search spaces (search_space.py) and the pruners that stop hopeless trials.
TUNE_SPACES = ("roberta-paper", "wide")
PRUNERS = ("median", "successive-halving", "none")
# Trials of a study whose space is not a grid, when --trials is not given.
TUNE_TRIALS = 20


def _space(value) -> bool:
    return value in TUNE_SPACES or str(value).lower().endswith(".toml")


class _AroundTrain(_Settings):
    """A command whose settings wrap a TrainConfig (`train`, whose output is the command's directory): tune,
    audit."""

    @property
    def output(self) -> str:
        return self.train.output

    def to_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "train"},
            "train": self.train.to_dict(),
        }

    def _check_output(self) -> None:
        if not self.train.output:
            raise ConfigError("no output directory given", "pass --output DIR")


@dataclass(frozen=True)
class TuneConfig(_AroundTrain):
    """A hyperparameter search: the training settings every trial starts from, and how to search.

    ``train.output`` is the study's directory (DIR/trials/NNN, DIR/best, DIR/tune.json). Settings given
    in ``train`` (not None) are fixed: the space searches the others.
    """

    train: TrainConfig
    trials: int | None = setting(None, positive_int(20, optional=True))  # None: the grid's size, else TUNE_TRIALS
    timeout: float | None = setting(None, positive(3600, optional=True))  # seconds after which no new trial starts
    space: str = setting(
        "wide",
        Check(
            _space,
            "a named space or a .toml file",
            hint=f"use one of {', '.join(TUNE_SPACES)}, or a FILE.toml of ranges (see docs/tuning.md)",
            problem="{flag} {value!r} is neither a named space nor a .toml file",
        ),
    )
    storage: str | None = setting(
        None,
        Check(
            lambda v: "://" in str(v),
            "a database URL",
            hint="pass e.g. sqlite:///study.db or postgresql://user:password@host/database",
            optional=True,
            problem="{flag} {value!r} is not a database URL",
        ),
    )
    study_name: str = setting("roberta-ft", NOT_EMPTY)
    pruner: str = setting("median", OneOf(PRUNERS))
    sampler_seed: int | None = setting(None, non_negative_int(0, optional=True))  # None: a fresh random search
    overwrite: bool = setting(False)  # start a new study: clear the output directory (and the study in --storage)

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

    def check_together(self) -> None:
        self._check_output()
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


# ------------------------------------------------------------------------------------ audit


@dataclass(frozen=True)
class AuditConfig(_AroundTrain):
    """`roberta-ft audit`: k fold train runs over a training file, then confident learning on the out-of-fold
    probabilities (roberta_ft/audit.py). ``train.output`` is the audit's directory; each fold's run is
    DIR/folds/fold-N. ``train.resume`` continues a stopped audit; ``train.overwrite`` starts it over."""

    train: TrainConfig
    folds: int = setting(
        5, Check(lambda v: _integer(v) and v >= 2, "an integer of at least 2", hint="pass e.g. --folds 5")
    )
    clean: str | None = setting(None)  # a copy of the data file without the flagged rows (or relabelled)
    relabel: bool = setting(False)  # --clean writes the suggested labels instead of dropping the rows
    test: str | None = setting(None)  # a test file checked for rows that are also in the training file

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings") -> AuditConfig:
        values = dict(values)
        own = {name: values.pop(name) for name in cls.field_names() if name != "train" and name in values}
        train = values.pop("train", values)
        return cls(train=TrainConfig.from_dict(train, source=source), **{k: v for k, v in own.items() if v is not None})

    def check_together(self) -> None:
        self._check_output()
        if self.relabel and not self.clean:
            raise ConfigError("--relabel needs --clean OUT", "pass --clean OUT.csv to write the relabelled file")
        if self.clean and Path(self.clean).expanduser().resolve() == Path(self.train.data).expanduser().resolve():
            raise ConfigError(f"--clean {self.clean} is the training file itself", "write the clean copy elsewhere")


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
