"""The `roberta-ft` command line: parse options into one config, call the library, print the result.

Heavy libraries (torch, transformers) are imported inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

import inspect
import itertools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from roberta_ft import __version__
from roberta_ft.errors import RobertaFtError


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) as one `error:` line like every other error.

    Typer would print the usage, a "Try --help" line and a boxed message; this keeps its exit code (2).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from typer._click import exceptions as click_errors

        args = self.global_flags_first(sys.argv[1:] if args is None else list(args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # the help was printed already; keep typer's exit code
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            where = getattr(getattr(exc, "ctx", None), "command_path", None)
            hint = f" (see '{where} --help')" if where and isinstance(exc, click_errors.UsageError) else ""
            message = " ".join(exc.format_message().split()).rstrip(".")
            _print_error(_escape(f"{message[:1].lower()}{message[1:]}{hint}"))
            sys.exit(exc.exit_code)
        except typer.Abort:
            _print_error("aborted")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def global_flags_first(self, args: list[str]) -> list[str]:
        """`roberta-ft train ... -q` as `roberta-ft -q train ...`: -q/--quiet and -v/--verbose are the app's
        options, accepted after the command too. A token that is an option's value (`--label-separator -q`)
        or comes after `--` stays where it is."""
        position = next((i for i, token in enumerate(args) if not token.startswith("-")), None)
        if position is None or args[:position].count("--"):
            return args
        command = self.commands.get(args[position])
        if command is None:
            return args
        takes_value = {
            name
            for param in command.params
            if getattr(param, "param_type_name", "") == "option" and not param.is_flag and not param.count
            for name in param.opts
        }
        moved, kept = [], []
        tokens = iter(args[position + 1 :])
        for token in tokens:
            if token == "--":
                kept.extend([token, *tokens])
                break
            if token in GLOBAL_FLAGS:
                moved.append(token)
                continue
            kept.append(token)
            if token in takes_value:
                kept.extend(itertools.islice(tokens, 1))
        return [*args[:position], *moved, args[position], *kept]


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="roberta-ft",
    help="Fine-tune RoBERTa for text classification: train on a CSV/TSV/JSONL file, evaluate (GLUE included), predict.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,
    rich_markup_mode="rich",
)


class Device(str, Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class Precision(str, Enum):
    auto = "auto"
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"
    int8 = "int8"


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"


class Quantize(str, Enum):
    int8 = "int8"
    int8_blockwise = "int8-blockwise"
    int8_full = "int8-full"
    none = "none"


class Format(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class Method(str, Enum):
    auto = "auto"
    few_shot = "few-shot"
    fine_tune = "fine-tune"


class Calibration(str, Enum):
    temperature = "temperature"
    none = "none"


class ThresholdMetric(str, Enum):
    f1 = "f1"
    f0_5 = "f0.5"
    f2 = "f2"


# --threshold-metric also takes "none" (no per-label thresholds); --optimize-threshold is off unless given.
ThresholdMetricOrNone = Enum(
    "ThresholdMetricOrNone", {**{m.name: m.value for m in ThresholdMetric}, "none": "none"}, type=str
)


class LongText(str, Enum):
    truncate = "truncate"
    head_tail = "head-tail"
    sliding = "sliding"


class State:
    verbose = False
    quiet = False


# Shared options. Every default is None: a value comes from the flag, else the --config file, else the
# settings dataclass, so the dataclass is the one place defaults live.
TaskOption = Annotated[str | None, typer.Option("--task", "-t", help="Task plugin (see `roberta-ft tasks`).")]
TextColumn = Annotated[str | None, typer.Option(help="Column holding the text (default: picked by name).")]
TextPairColumn = Annotated[str | None, typer.Option(help="Column holding the second text of a pair.")]
LabelColumn = Annotated[str | None, typer.Option(help="Column holding the label (default: picked by name).")]
FormatOption = Annotated[Format | None, typer.Option("--format", help="File format (default: from the extension).")]
EncodingOption = Annotated[str | None, typer.Option(help="Text encoding of the input file \\[default: utf-8].")]
DataDir = Annotated[
    str | None, typer.Option(help="Local dataset folder for task datasets (e.g. GLUE; default: $GLUE_DIR or the Hub).")
]
DeviceOption = Annotated[Device | None, typer.Option(help="Device \\[default: auto: cuda, then mps, then cpu].")]
PrecisionOption = Annotated[
    Precision | None,
    typer.Option(
        help="Precision \\[default: auto: bf16 where native, fp16 on older GPUs, else fp32; "
        "--backend onnx: int8 when exported, else fp32]."
    ),
]
BackendOption = Annotated[
    Backend | None,
    typer.Option(help="What runs the model: torch, or onnx (after `roberta-ft export`) \\[default: torch]."),
]
MaxLength = Annotated[
    int | None,
    typer.Option(
        help="Maximum tokens per text (pair); longer texts: see --long-text \\[default: 256; eval/predict: as trained]."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.")]
TrustRemoteCode = Annotated[
    bool | None, typer.Option("--trust-remote-code", help="Allow model code from the Hub to run (off by default).")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML/YAML/JSON file of settings; flags override it.")
]
LongTextOption = Annotated[
    LongText | None,
    typer.Option(
        help="Texts over --max-length: keep the start, the head and tail, or average sliding windows "
        "\\[default: truncate; few-shot on long texts: sliding; eval/predict: as trained]."
    ),
]
StrideOption = Annotated[
    int | None, typer.Option(help="--long-text sliding: tokens consecutive windows share \\[default: max-length/2].")
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        help="Multi-label: probability from which a label is predicted \\[default: 0.5; eval/predict: as trained]."
    ),
]
MinConfidenceOption = Annotated[
    float | None,
    typer.Option(
        help="Single-label: rows whose label's probability is under P get no label (they keep their probabilities "
        "and are marked abstained); P in (0, 1]."
    ),
]

# The options of every command that trains (train, tune, pretrain): the run's optimisation, checkpoints
# and runtime, with the same meaning everywhere.
WarmupRatioOption = Annotated[float | None, typer.Option(help="Linear warm-up share of steps \\[default: 0.06].")]
SeedOption = Annotated[int | None, typer.Option(help="Random seed \\[default: 42].")]
SaveEveryOption = Annotated[
    int | None, typer.Option(help="Checkpoint every N optimizer steps \\[default: every epoch and ~10 minutes].")
]
KeepCheckpointsOption = Annotated[
    int | None, typer.Option(help="Checkpoints kept in --output/checkpoints \\[default: 2].")
]
OverwriteOption = Annotated[bool | None, typer.Option("--overwrite", help="Replace a non-empty --output directory.")]
ResumeOption = Annotated[
    bool | None, typer.Option("--resume", help="Continue the stopped run in --output from its last checkpoint.")
]
SkipNonfiniteOption = Annotated[
    int | None, typer.Option(help="Skip up to N steps whose loss is NaN/inf (with a warning) \\[default: 0].")
]
MaxStepsOption = Annotated[
    int | None, typer.Option(help="Stop after N optimizer steps (the schedule spans them; overrides --epochs).")
]
EvalEveryOption = Annotated[
    int | None, typer.Option(help="Evaluate and keep the best model every N steps instead of every epoch.")
]
RUN_OPTIONS: dict[str, Any] = {
    "warmup_ratio": WarmupRatioOption,
    "max_steps": MaxStepsOption,
    "eval_every": EvalEveryOption,
    "seed": SeedOption,
    "device": DeviceOption,
    "precision": PrecisionOption,
    "overwrite": OverwriteOption,
    "resume": ResumeOption,
    "save_every": SaveEveryOption,
    "keep_checkpoints": KeepCheckpointsOption,
    "skip_nonfinite": SkipNonfiniteOption,
    "trust_remote_code": TrustRemoteCode,
}

# The options of a fine-tuning run, declared once: `train` takes them all, and so do the commands made of
# train runs (`tune`, less TUNE_EXCLUDED). Each is the TrainConfig setting of the same name.
FINE_TUNING_OPTIONS: dict[str, Any] = {
    "model": Annotated[
        str | None,
        typer.Option(help="Hub id or local dir of the model to fine-tune, or `tiny` \\[default: roberta-base]."),
    ],
    "task": TaskOption,
    "validation": Annotated[str | None, typer.Option(help="Validation file (default: a held-out split).")],
    "validation_split": Annotated[
        float | None, typer.Option(help="Share of the training file held out when no --validation \\[default: 0.1].")
    ],
    "text_column": TextColumn,
    "text_pair_column": TextPairColumn,
    "label_column": LabelColumn,
    "format": FormatOption,
    "encoding": EncodingOption,
    "data_dir": DataDir,
    "epochs": Annotated[int | None, typer.Option(help="Epochs \\[default: 3; 10 with --model tiny].")],
    "batch_size": Annotated[int | None, typer.Option(help="Samples per optimizer step \\[default: 32].")],
    "learning_rate": Annotated[
        float | None,
        typer.Option("--learning-rate", "--lr", help="Peak learning rate \\[default: 2e-5; 1e-3 for tiny]."),
    ],
    "max_length": MaxLength,
    "weight_decay": Annotated[float | None, typer.Option(help="AdamW weight decay \\[default: 0.1].")],
    "gradient_accumulation": Annotated[
        int | None, typer.Option(help="Micro-batches per optimizer step (same --batch-size, less memory).")
    ],
    "early_stopping_patience": Annotated[
        int | None, typer.Option(help="Stop after this many epochs without improvement.")
    ],
    "split_seed": Annotated[
        int | None, typer.Option(help="Seed of the held-out validation rows (no --validation) \\[default: --seed].")
    ],
    "metric": Annotated[
        str | None, typer.Option(help="Extra metric: anything evaluate.load accepts (a local module path offline).")
    ],
    "drop_invalid": Annotated[
        bool | None, typer.Option("--drop-invalid", help="Skip rows with an empty text or label instead of stopping.")
    ],
    "class_weights": Annotated[
        str | None,
        typer.Option(help="Loss weight per label: `auto` (inverse frequency) or W1,W2,... in label order."),
    ],
    "metric_for_best": Annotated[
        str | None, typer.Option(help="Validation metric that picks the best epoch \\[default: the task's].")
    ],
    "multi_label": Annotated[
        bool | None,
        typer.Option("--multi-label", help="Several labels per row, joined by --label-separator; one sigmoid each."),
    ],
    "label_separator": Annotated[
        str | None, typer.Option(help="Separator of a multi-label cell's labels \\[default: |].")
    ],
    "threshold": ThresholdOption,
    "calibration": Annotated[
        Calibration | None,
        typer.Option(
            help="After the best epoch, fit calibration on the validation rows and fold it into the output layer: "
            "a temperature (single-label), a scale and bias per label (multi-label); none: leave the weights "
            "\\[default: temperature]."
        ),
    ],
    "threshold_metric": Annotated[
        ThresholdMetricOrNone | None,
        typer.Option(
            help="Multi-label: choose each label's threshold for this F-score on the validation rows; none: one "
            "--threshold for all \\[default: f1]."
        ),
    ],
    "optimize_threshold": Annotated[
        ThresholdMetric | None,
        typer.Option(
            help="Binary tasks: choose the decision threshold on the second label's probability for this F-score "
            "on the validation rows (off by default)."
        ),
    ],
    "long_text": LongTextOption,
    "stride": StrideOption,
    "report_to": Annotated[
        str | None,
        typer.Option(help="Experiment trackers, comma-separated: tensorboard, wandb, mlflow (logs in OUTPUT/logs)."),
    ],
    "recipe": Annotated[
        str | None,
        typer.Option(
            help="Published settings for the task (GLUE: roberta-base, roberta-large); --config and flags win."
        ),
    ],
    "max_eval_samples": Annotated[
        int | None, typer.Option(help="Validate on a seeded, stratified sample of N validation rows.")
    ],
    "workers": Annotated[
        int | None, typer.Option(help="Processes tokenizing large data \\[default: one per usable CPU].")
    ],
    "method": Annotated[
        Method | None,
        typer.Option(
            help="fine-tune, few-shot (contrastive pairs, then the head: for a handful of rows per class), or auto: "
            "few-shot with a pretrained model when no class has more than 64 training rows \\[default: auto]."
        ),
    ],
    "positive_label": Annotated[
        str | None,
        typer.Option(
            help="Two labels: the one whose F1 is reported as `f1` \\[default: the second in sorted order, id 1]."
        ),
    ],
    **RUN_OPTIONS,
}
# What tune does not take of train's options (docs/tuning.md): a study continues when its command is run
# again (no --resume), and its --overwrite starts a new study; --seeds and --print-config are train's own.
TUNE_EXCLUDED = ("resume", "seeds", "print_config")


def _with_options(options: dict[str, Any], *, exclude: tuple[str, ...] = ()):
    """Give a command the shared `options` (declared once above) after its own parameters: it takes them as
    keyword arguments (`**options`). A parameter of its own with the same name wins."""

    def decorate(function):
        signature = inspect.signature(function, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own} | set(exclude)
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for name, annotation in options.items()
            if name not in taken
        ]
        function.__signature__ = signature.replace(parameters=[*own, *shared])
        return function

    return decorate


def _version(value: bool) -> None:
    if value:
        typer.echo(f"roberta-ft {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging and full tracebacks (before or after the command).")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Warnings and errors only; no progress bar (before or after the command)."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    State.verbose, State.quiet = verbose, quiet


def _setup() -> None:
    from roberta_ft.console import quiet_libraries, setup_logging

    setup_logging(State.verbose, State.quiet)
    quiet_libraries(State.verbose)


def _print_error(message: str) -> None:
    """`message` (rich markup already escaped) as the one `error:` line on stderr."""
    from roberta_ft.console import stderr

    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)


def _fail(message: str, code: int) -> None:
    _print_error(message)
    raise typer.Exit(code)


def _run(function, *args, **kwargs):
    """Run a library call; user errors become one line on stderr and an exit code (traceback with --verbose)."""
    return _run_reporting(function, args, kwargs)


def _run_reporting(function, args, kwargs, *, interrupted=lambda: "interrupted"):
    """`_run`; `interrupted()` is the line Ctrl-C prints (a training run's says how to go on)."""
    try:
        return function(*args, **kwargs)
    except RobertaFtError as exc:
        if State.verbose:
            raise
        _fail(_escape(exc.one_line()), exc.exit_code)
    except KeyboardInterrupt:
        _fail(_escape(interrupted()), 130)
    except MemoryError:
        if State.verbose:
            raise
        _fail("out of memory (try a smaller --batch-size or --max-length)", 1)
    except OSError as exc:
        if State.verbose:
            raise
        _fail(
            _escape(f"{exc.strerror or exc}: {exc.filename or ''}".strip(": ") + " (run with --verbose for details)"), 1
        )
    except Exception as exc:  # an unexpected failure: still one line unless --verbose
        if State.verbose:
            raise
        _fail(_escape(f"unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)"), 1)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text.splitlines()[0] if text else text)


def _settings(config_file: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The --config file's values overridden by the flags the user actually passed."""
    from roberta_ft.config import load_config_file

    values = load_config_file(config_file) if config_file else {}
    for key, value in flags.items():
        if value is not None:
            values[key] = value.value if isinstance(value, Enum) else value
    return values


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def _keep_stdout_for_json(json_output: bool):
    """With --json, whatever a library prints while the command runs goes to stderr: stdout holds the JSON alone."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if json_output else contextlib.nullcontext()


@app.command()
@_with_options(FINE_TUNING_OPTIONS)
def train(
    data: Annotated[
        str, typer.Argument(help="Training data: a .csv/.tsv/.jsonl file, or a task dataset (e.g. glue/rte).")
    ],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Directory for the trained model.")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(help="Train once per seed (e.g. 1,2,3,4,5) into DIR/seed-N; summary in DIR/seeds.json."),
    ] = None,
    config: ConfigFile = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved settings and exit.")] = False,
    json_output: JsonOption = False,
    **options: Any,
) -> None:
    """Fine-tune a classifier on DATA and write a model directory to --output."""
    _setup()
    from roberta_ft.config import TrainConfig

    values = _run(_settings, config, {"data": data, "output": output, **options})
    given = _run(TrainConfig.from_dict, values, source=str(config) if config else "the options")
    settings = _run(given.resolved)  # the task (DATA may name it), its --recipe, then the defaults
    if print_config:
        _print_json(settings.to_dict()) if json_output else typer.echo(settings.to_json())
        return
    from roberta_ft.train import train as run_training

    settings = given  # checked; train resolves it again, under a method's budget (few-shot) where one applies
    if seeds is not None:
        _train_seeds(settings, seeds, seed_given=options.get("seed") is not None, json_output=json_output)
        return

    result = _run_with_progress(run_training, settings, json_output)
    if result is None:
        return
    if json_output:
        _print_json(result.to_dict())
    elif not State.quiet:
        from roberta_ft.console import stderr

        best = result.metrics["best"]
        positive = result.metrics.get("positive_label")
        shown = ", ".join(
            f"{k}{f' ({positive})' if k == 'f1' and positive else ''} {v:.4f}"
            for k, v in best.items()
            if isinstance(v, float) and k != "train_loss"
        )
        if shown:
            stderr.print(f"Best epoch {best['epoch']}: {shown}. Model: {result.output_dir}", highlight=False)
        else:  # few-shot training without --validation
            stderr.print(f"Trained (no validation rows; pass --validation to score it). Model: {result.output_dir}")


def _run_with_progress(function, settings, json_output: bool):
    """A training command's run, with a progress bar on a terminal; None on the non-main processes of a
    data-parallel run (under torchrun / accelerate launch, rank 0 alone shows and prints)."""
    from roberta_ft.console import RichProgress, is_main_process

    main_process = is_main_process()
    show_progress = main_process and not (State.quiet or json_output) and sys.stderr.isatty()
    with _keep_stdout_for_json(json_output):
        result = _run_reporting(
            function,
            (settings,),
            {"progress": RichProgress() if show_progress else None},
            interrupted=lambda: _interrupted_run(settings.output),
        )
    return result if main_process else None


def _interrupted_run(output: str | None) -> str:
    """What Ctrl-C during a training run says: how to go on from what the run left in --output."""
    from roberta_ft.checkpoint import latest

    path = Path(output) if output else None
    try:
        found = latest(path) if path is not None and path.is_dir() else None
    except Exception:  # a half-written checkpoint folder: no advice on it
        found = None
    if found is not None:
        return (
            f"interrupted; the last checkpoint in {path} is at step {found.step} "
            "(re-run the same command with --resume to continue from it)"
        )
    if path is not None and path.is_dir() and any(path.iterdir()):
        return f"interrupted before the first checkpoint in {path} (re-run the same command with --overwrite to start over)"
    return "interrupted before anything was written (re-run the same command)"


def _train_seeds(settings, seeds: str, *, seed_given: bool, json_output: bool) -> None:
    from roberta_ft.console import RichProgress, seeds_table
    from roberta_ft.seeds import parse_seeds, train_seeds

    if seed_given:
        _fail("--seed and --seeds exclude each other (each run of --seeds uses its own seed)", 2)
    seed_list = _run(parse_seeds, seeds)
    progress = None if State.quiet or json_output or not sys.stderr.isatty() else RichProgress
    with _keep_stdout_for_json(json_output):
        result = _run(train_seeds, settings, seed_list, progress=progress).to_dict()
    if json_output:
        _print_json(result)
    else:  # the summary is the command's result: shown even with --quiet, like eval's table
        from roberta_ft.console import print_results

        print_results(seeds_table(result))


class Pruner(str, Enum):
    median = "median"
    successive_halving = "successive-halving"
    none = "none"


@app.command()
@_with_options(FINE_TUNING_OPTIONS, exclude=TUNE_EXCLUDED)
def tune(
    data: Annotated[
        str, typer.Argument(help="Training data: a .csv/.tsv/.jsonl file, or a task dataset (e.g. glue/rte).")
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Directory of the study: trials/NNN, best (the best model), tune.json, pictures."
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Finished trials the study should hold (re-run to continue) \\[default: the grid's size, else 20]."
        ),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Start no new trial after this long: 90m, 2h, 1h30m or seconds.")
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            help="What to search: roberta-paper (lr x batch x 5 seeds), wide, or FILE.toml of ranges \\[default: wide]."
        ),
    ] = None,
    pruner: Annotated[
        Pruner | None,
        typer.Option(help="How hopeless trials stop early, on each epoch's validation metric \\[default: median]."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna database URL shared by several processes or machines (e.g. postgresql://...) "
            "\\[default: a SQLite file in --output]."
        ),
    ] = None,
    study_name: Annotated[
        str | None, typer.Option(help="Name of the study in --storage \\[default: roberta-ft].")
    ] = None,
    sampler_seed: Annotated[
        int | None, typer.Option(help="Seed of the sampler, for a repeatable single-process search.")
    ] = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite", help="Start a new study: clear --output (and the study in --storage).")
    ] = None,
    config: ConfigFile = None,
    json_output: JsonOption = False,
    **options: Any,
) -> None:
    """Search hyperparameters: many training runs on DATA, the hopeless ones stopped early (Optuna).

    A training option given is fixed; the space searches the others. Re-running the same command
    continues the study. See docs/tuning.md.
    """
    search = {
        "trials": trials,
        "space": space,
        "pruner": pruner,
        "storage": storage,
        "study_name": study_name,
        "sampler_seed": sampler_seed,
        "overwrite": overwrite,
    }
    _setup()
    from roberta_ft.config import TrainConfig, TuneConfig, parse_duration

    values = _run(_settings, config, {"data": data, "output": output, **options})
    train_settings = _run(TrainConfig.from_dict, values, source=str(config) if config else "the options")
    chosen = {k: (v.value if isinstance(v, Enum) else v) for k, v in search.items() if v is not None}
    if timeout is not None:
        chosen["timeout"] = _run(parse_duration, timeout)
    settings = TuneConfig(train=train_settings, **chosen)
    _run(settings.validate)
    from roberta_ft.console import RichProgress, tune_table
    from roberta_ft.tune import tune as run_tune

    progress = None if State.quiet or json_output or not sys.stderr.isatty() else RichProgress
    with _keep_stdout_for_json(json_output):
        result = _run_reporting(
            run_tune,
            (settings,),
            {"progress": progress},
            interrupted=lambda: (
                "interrupted (re-run the same command to continue the study; the trial that was running is run again)"
            ),
        ).to_dict()
    if json_output:
        _print_json(result)
    else:  # the trials are the command's result: shown even with --quiet, like the seeds table
        from roberta_ft.console import print_results

        print_results(tune_table(result))


@app.command()
@_with_options(FINE_TUNING_OPTIONS)
def audit(
    data: Annotated[str, typer.Argument(help="Labelled training data: a .csv/.tsv/.jsonl file, or a task dataset.")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Directory of the audit: label_issues.csv, audit.json, a picture, folds/fold-N."
        ),
    ] = None,
    folds: Annotated[
        int | None, typer.Option(help="Folds: each row is scored by the model trained on the others \\[default: 5].")
    ] = None,
    clean: Annotated[
        str | None,
        typer.Option(help="Write DATA without the flagged rows here (same format, columns and row order)."),
    ] = None,
    relabel: Annotated[
        bool | None, typer.Option("--relabel", help="--clean keeps the flagged rows with their suggested labels.")
    ] = None,
    test: Annotated[
        str | None, typer.Option(help="A test file to check for rows that are also in DATA (leakage).")
    ] = None,
    config: ConfigFile = None,
    json_output: JsonOption = False,
    **options: Any,
) -> None:
    """Find wrong labels in DATA: k fold train runs give every row out-of-fold probabilities, confident
    learning (cleanlab) ranks the labels they doubt; also duplicates with conflicting labels and leakage.

    See docs/audit.md. --resume continues a stopped audit with the folds left.
    """
    _setup()
    from roberta_ft.config import AuditConfig

    own = {"folds": folds, "clean": clean, "relabel": relabel, "test": test}
    values = _run(_settings, config, {"data": data, "output": output, **options, **own})
    settings = _run(AuditConfig.from_dict, values, source=str(config) if config else "the options")
    _run(settings.validate)
    from roberta_ft.audit import audit as run_audit
    from roberta_ft.console import RichProgress

    progress = None if State.quiet or json_output or not sys.stderr.isatty() else RichProgress
    with _keep_stdout_for_json(json_output):
        result = _run(run_audit, settings, progress=progress).to_dict()
    if json_output:
        _print_json(result)
        return
    from rich.console import Console

    from roberta_ft.console import audit_table

    Console().print(audit_table(result))  # the audit's result: shown even with --quiet, like the seeds table


@app.command("eval")
def evaluate(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    data: Annotated[str, typer.Argument(help="Labelled .csv/.tsv/.jsonl file, or a task dataset (e.g. glue/sst2).")],
    task: TaskOption = None,
    split: Annotated[str | None, typer.Option(help="Split of a task dataset \\[default: validation].")] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    data_dir: DataDir = None,
    max_length: MaxLength = None,
    batch_size: Annotated[int | None, typer.Option(help="Texts per forward pass \\[default: 128].")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    backend: BackendOption = None,
    metric: Annotated[str | None, typer.Option(help="Extra metric for evaluate.load (name or local path).")] = None,
    drop_invalid: Annotated[
        bool | None, typer.Option("--drop-invalid", help="Skip rows with no text or label.")
    ] = None,
    trust_remote_code: TrustRemoteCode = None,
    threshold: ThresholdOption = None,
    long_text: LongTextOption = None,
    stride: StrideOption = None,
    report: Annotated[
        str | None,
        typer.Option(help="Write the report JSON here \\[default: MODEL_DIR/eval_report.json], the picture beside it."),
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option(help="Two labels: the one whose F1 is reported as `f1` \\[default: as trained]."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Print a trained model's metrics on labelled DATA; write eval_report.json and a confusion matrix picture."""
    flags = {k: v for k, v in locals().items() if k != "json_output"}
    _setup()
    from roberta_ft.config import EvalConfig
    from roberta_ft.evaluate import evaluate as run_evaluation

    settings = _run(EvalConfig.from_dict, _run(_settings, None, flags))
    with _keep_stdout_for_json(json_output):
        result = _run(run_evaluation, settings).to_dict()
    if json_output:
        _print_json(result)
        return
    from roberta_ft.console import metrics_table, print_results, report_tables

    tables = [metrics_table(result)]
    if result.get("report") and not State.quiet:
        tables += report_tables(result["report"])
    print_results(*tables)


@app.command()
def predict(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    input: Annotated[
        str,
        typer.Argument(
            help="Text file: one text per line (FIRST<TAB>SECOND for pair models), or a task dataset (e.g. glue/sst2)."
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write .csv/.tsv/.jsonl here (default: label<TAB>probability on stdout)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Texts per forward pass \\[default: 64].")] = None,
    max_length: MaxLength = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    backend: BackendOption = None,
    encoding: EncodingOption = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace an existing --output file.")] = None,
    trust_remote_code: TrustRemoteCode = None,
    split: Annotated[str | None, typer.Option(help="Split of a task dataset INPUT \\[default: test].")] = None,
    data_dir: DataDir = None,
    submission: Annotated[
        str | None, typer.Option(help="Folder for the task's leaderboard file (GLUE: SST-2.tsv, MNLI-m.tsv, ...).")
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="Write the K best labels with their probabilities.")] = None,
    threshold: ThresholdOption = None,
    min_confidence: MinConfidenceOption = None,
    long_text: LongTextOption = None,
    stride: StrideOption = None,
    json_output: JsonOption = False,
) -> None:
    """Label every line of INPUT, in input order (streaming: memory stays flat on any file size)."""
    flags = {k: v for k, v in locals().items() if k != "json_output"}
    _setup()
    from roberta_ft.config import PredictConfig
    from roberta_ft.predict import predict as run_prediction

    settings = _run(PredictConfig.from_dict, _run(_settings, None, flags))
    if json_output and settings.output is None and settings.submission is None:
        with _keep_stdout_for_json(True):
            document = _run(_predictions_as_json, settings)
        _print_json(document)  # the predictions themselves, in the one JSON document
        return
    with _keep_stdout_for_json(json_output):
        result = _run(run_prediction, settings)
    if json_output:
        _print_json(result.to_dict())
    elif (settings.output or result.submission) and not State.quiet:
        from roberta_ft.console import stderr

        written = " and ".join(path for path in (settings.output, result.submission) if path)
        stderr.print(f"{result.num_lines} lines -> {written} ({result.texts_per_second:.0f} texts/s)", highlight=False)


def _predictions_as_json(settings) -> dict[str, Any]:
    """predict --json without --output: the result and every row, as one JSON document."""
    import io

    from roberta_ft.predict import predict as run_prediction

    rows = io.StringIO()
    result = run_prediction(settings, stdout=rows, stdout_format="jsonl")
    return {**result.to_dict(), "predictions": [json.loads(line) for line in rows.getvalue().splitlines()]}


@app.command()
def export(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Directory for the ONNX files \\[default: MODEL_DIR itself]."),
    ] = None,
    quantize: Annotated[
        Quantize | None,
        typer.Option(
            help="Also write an int8 model \\[default: int8: blockwise for a few-shot model, else dynamic with the "
            "residual projections in fp32]; int8-blockwise: the weight products in 8-bit blocks, activations "
            "quantized per row and block (most labels kept); int8-full: dynamic int8 everywhere (fastest, least "
            "accurate); none: fp32 only."
        ),
    ] = None,
    verify_texts: Annotated[
        str | None,
        typer.Option(help="Text file (one text per line) to check the export on \\[default: built-in samples]."),
    ] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace existing ONNX files.")] = None,
    trust_remote_code: TrustRemoteCode = None,
    json_output: JsonOption = False,
) -> None:
    """Export a trained model to ONNX (fp32 and int8), checked against torch, for `--backend onnx`."""
    flags = {k: v for k, v in locals().items() if k != "json_output"}
    _setup()
    from roberta_ft.config import ExportConfig
    from roberta_ft.export import export as run_export

    settings = _run(ExportConfig.from_dict, _run(_settings, None, flags))
    with _keep_stdout_for_json(json_output):
        result = _run(run_export, settings).to_dict()
    if json_output:
        _print_json(result)
        return
    if not State.quiet:
        from roberta_ft.console import stderr

        for precision, path in result["files"].items():
            check = result["checks"][precision]
            stderr.print(
                f"{path} ({precision}): largest logit difference from torch {check['max_abs_diff']:.2e}, "
                f"labels agree on {check['labels_agree']:.0%} of {check['texts']} sample texts",
                highlight=False,
            )


@app.command()
def serve(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on; anything but 127.0.0.1/localhost/::1 is reachable from other machines \\[default: 127.0.0.1]."
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[default: 8000].")] = None,
    backend: BackendOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Texts per forward pass, gathered from concurrent requests; 1 turns batching off \\[default: 64]."
        ),
    ] = None,
    max_wait_ms: Annotated[
        float | None,
        typer.Option(help="Longest wait of a queued text for others to fill its batch, in ms \\[default: 5]."),
    ] = None,
    max_texts: Annotated[
        int | None, typer.Option(help="Most texts (or pairs) in one request; more is a 413 \\[default: 256].")
    ] = None,
    max_body_kb: Annotated[
        int | None, typer.Option(help="Largest request body in KiB; larger is a 413 \\[default: 1024].")
    ] = None,
    max_length: MaxLength = None,
    long_text: LongTextOption = None,
    stride: StrideOption = None,
    threshold: ThresholdOption = None,
    min_confidence: MinConfidenceOption = None,
    trust_remote_code: TrustRemoteCode = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log", help="Log one line per request (off by default).")
    ] = None,
) -> None:
    """Serve MODEL_DIR over HTTP: POST /predict, GET /health, GET /info, docs at /docs (see docs/deployment.md)."""
    flags = dict(locals())
    _setup()
    import logging

    from roberta_ft.config import ServeConfig
    from roberta_ft.console import adopt_logger
    from roberta_ft.serve import serve as run_service

    settings = _run(ServeConfig.from_dict, _run(_settings, None, flags))
    adopt_logger("uvicorn.error", logging.DEBUG if State.verbose else logging.WARNING)
    adopt_logger("uvicorn.access", logging.INFO if settings.access_log else logging.WARNING)
    _run(run_service, settings)


class PretrainRecipe(str, Enum):
    tapt = "tapt"
    dapt = "dapt"


@app.command()
@_with_options(RUN_OPTIONS)
def pretrain(
    corpus: Annotated[
        str,
        typer.Argument(
            help="Unlabelled text: a .txt file (one document per line), a folder or glob of .txt files, "
            "or a CSV/TSV/JSONL file (its --text-column)."
        ),
    ],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Directory for the masked-LM model.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model to continue pretraining (id or directory), or 'tiny': a small RoBERTa from scratch with a "
            "tokenizer trained on the corpus \\[default: roberta-base]."
        ),
    ] = None,
    recipe: Annotated[
        PretrainRecipe | None,
        typer.Option(
            help="Published settings: tapt (100 epochs, batch 256, lr 1e-4) or dapt (12,500 steps, batch 2048, "
            "lr 5e-4) \\[default: batch 256, 10 epochs, lr 1e-4; 1e-3 with --model tiny]."
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="CSV/TSV/JSONL corpora: the column of texts \\[default: text].")
    ] = None,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    blank_line_documents: Annotated[
        bool | None,
        typer.Option("--blank-line-documents", help=".txt corpora: documents are paragraphs between blank lines."),
    ] = None,
    validation_split: Annotated[
        float | None, typer.Option(help="Share of the documents held out for the masked-LM loss \\[default: 0.05].")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per block \\[default: 512].")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Sequences per optimizer step (through accumulation) \\[default: 256].")
    ] = None,
    micro_batch_size: Annotated[
        int | None, typer.Option(help="Sequences per forward pass \\[default: 8192 tokens' worth on a CPU].")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate \\[default: from the recipe].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the corpus \\[default: 10].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay \\[default: 0.01].")] = None,
    mlm_probability: Annotated[float | None, typer.Option(help="Share of tokens masked \\[default: 0.15].")] = None,
    whole_word_masking: Annotated[
        bool | None,
        typer.Option(
            "--whole-word-masking",
            help="Mask whole words (a word's tokens all or none; one 80-10-10 draw per word) instead of single tokens.",
        ),
    ] = None,
    locality_warmup: Annotated[
        float | None,
        typer.Option(
            help="Share of the steps during which attention starts biased toward nearby tokens, fading to none; "
            "gets a model from scratch off the word-frequency plateau \\[default: 0.3 with --model tiny, else 0]."
        ),
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="--model tiny: the tokenizer's vocabulary \\[default: 8192].")
    ] = None,
    config: ConfigFile = None,
    json_output: JsonOption = False,
    **options: Any,
) -> None:
    """Pretrain a masked LM on unlabelled text (RoBERTa's recipe; DAPT/TAPT), for `train --model DIR`."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "json_output", "options")}
    _setup()
    from roberta_ft.config import PretrainConfig

    values = _run(_settings, config, {**flags, **options})
    settings = _run(PretrainConfig.from_dict, values, source=str(config) if config else "the options")
    from roberta_ft.pretrain import pretrain as run_pretraining

    result = _run_with_progress(run_pretraining, settings, json_output)
    if result is None:
        return
    if json_output:
        _print_json(result.to_dict())
    elif not State.quiet:
        from roberta_ft.console import stderr

        best = result.metrics["best"]
        stderr.print(
            f"Best epoch {best['epoch']}: validation loss {best['eval_loss']:.4f}, perplexity {best['perplexity']:.1f}, "
            f"{result.metrics['train_tokens_per_second']:.0f} tokens/s. Model: {result.output_dir}",
            highlight=False,
        )


@app.command("glue-report")
def glue_report(
    model_dirs: Annotated[list[str], typer.Argument(help="Model directories trained on GLUE tasks, one per task.")],
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 128,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluate each model on its own GLUE task's dev set and print the GLUE average."""
    _setup()
    from roberta_ft.glue_report import glue_report as run_report

    report = _run(
        run_report,
        model_dirs,
        data_dir=data_dir,
        batch_size=batch_size,
        device=device.value if device else "auto",
        precision=precision.value if precision else "auto",
    ).to_dict()
    if json_output:
        _print_json(report)
        return
    from roberta_ft.console import glue_table, metrics_table, print_results

    tables = [] if State.quiet else [metrics_table(result) for result in report["tasks"]]
    print_results(*tables, glue_table(report))


@app.command()
def tasks(json_output: JsonOption = False) -> None:
    """List the available task plugins."""
    _setup()
    from roberta_ft.registry import available_tasks

    found = _run(available_tasks)
    rows = [
        {
            "name": t.name,
            "problem_type": t.problem_type,
            "text_fields": list(t.text_fields),
            "labels": list(t.label_names) if t.label_names else None,
            "primary_metric": t.primary_metric,
            "datasets": list(t.known_datasets),
            "description": t.description,
        }
        for t in found.values()
    ]
    if json_output:
        _print_json(rows)
        return
    from rich.table import Table

    from roberta_ft.console import print_results
    from roberta_ft.problems import KINDS

    table = Table(title="Tasks", title_justify="left")
    for column in ("task", "input", "labels", "metric", "datasets by name"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            " + ".join(row["text_fields"]),
            ", ".join(row["labels"] or ["from the data"]) if KINDS[row["problem_type"]].has_labels else "regression",
            row["primary_metric"],
            ", ".join(row["datasets"]),
        )
    print_results(table)


def main() -> None:
    app()
