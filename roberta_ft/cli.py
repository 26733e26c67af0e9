"""The `roberta-ft` command line: parse options into one config, call the library, print the result.

Heavy libraries (torch, transformers) are imported inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from roberta_ft import __version__
from roberta_ft.errors import RobertaFtError

app = typer.Typer(
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


class Format(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


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
EncodingOption = Annotated[str | None, typer.Option(help="Text encoding of the input file [default: utf-8].")]
DataDir = Annotated[
    str | None, typer.Option(help="Local dataset folder for task datasets (e.g. GLUE; default: $GLUE_DIR or the Hub).")
]
DeviceOption = Annotated[Device | None, typer.Option(help="Device [default: auto: cuda, then mps, then cpu].")]
PrecisionOption = Annotated[
    Precision | None, typer.Option(help="Precision [default: auto: bf16 where native, fp16 on older GPUs, else fp32].")
]
MaxLength = Annotated[int | None, typer.Option(help="Maximum tokens per text (pair); longer inputs are truncated.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON result on stdout.")]
TrustRemoteCode = Annotated[
    bool | None, typer.Option("--trust-remote-code", help="Allow model code from the Hub to run (off by default).")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML/YAML/JSON file of settings; flags override it.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"roberta-ft {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging and full tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only; no progress bar.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    State.verbose, State.quiet = verbose, quiet


def _setup() -> None:
    from roberta_ft.console import quiet_libraries, setup_logging

    setup_logging(State.verbose, State.quiet)
    quiet_libraries(State.verbose)


def _fail(message: str, code: int) -> None:
    from roberta_ft.console import stderr

    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _run(function, *args, **kwargs):
    """Run a library call; user errors become one line on stderr and an exit code (traceback with --verbose)."""
    try:
        return function(*args, **kwargs)
    except RobertaFtError as exc:
        if State.verbose:
            raise
        _fail(_escape(exc.one_line()), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
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


@app.command()
def train(
    data: Annotated[
        str, typer.Argument(help="Training data: a .csv/.tsv/.jsonl file, or a task dataset (e.g. glue/rte).")
    ],
    output: Annotated[str | None, typer.Option("--output", "-o", help="Directory for the trained model.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Hub id or local dir of the model to fine-tune, or `tiny` [default: roberta-base]."),
    ] = None,
    task: TaskOption = None,
    validation: Annotated[str | None, typer.Option(help="Validation file (default: a held-out split).")] = None,
    validation_split: Annotated[
        float | None, typer.Option(help="Share of the training file held out when no --validation [default: 0.1].")
    ] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    data_dir: DataDir = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs [default: 3; 10 with --model tiny].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per optimizer step [default: 32].")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", help="Peak learning rate [default: 2e-5; 1e-3 for tiny].")
    ] = None,
    max_length: MaxLength = None,
    warmup_ratio: Annotated[float | None, typer.Option(help="Linear warm-up share of steps [default: 0.06].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay [default: 0.1].")] = None,
    gradient_accumulation: Annotated[
        int | None, typer.Option(help="Micro-batches per optimizer step (same --batch-size, less memory).")
    ] = None,
    early_stopping_patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without improvement.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [default: 42].")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    metric: Annotated[
        str | None, typer.Option(help="Extra metric: anything evaluate.load accepts (a local module path offline).")
    ] = None,
    drop_invalid: Annotated[
        bool | None, typer.Option("--drop-invalid", help="Skip rows with an empty text or label instead of stopping.")
    ] = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite", help="Replace a non-empty --output directory.")
    ] = None,
    trust_remote_code: TrustRemoteCode = None,
    config: ConfigFile = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the resolved settings and exit.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Fine-tune a classifier on DATA and write a model directory to --output."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "print_config", "json_output")}
    _setup()
    from roberta_ft.config import TrainConfig

    values = _run(_settings, config, flags)
    if not values.get("output"):
        _fail("no output directory given (pass --output DIR)", 2)
    settings = _run(TrainConfig.from_dict, values, source=str(config) if config else "the options")
    settings = _run(settings.resolved)
    if print_config:
        _print_json(settings.to_dict()) if json_output else typer.echo(settings.to_json())
        return
    from roberta_ft.console import RichProgress
    from roberta_ft.train import train as run_training

    progress = None if State.quiet or json_output or not sys.stderr.isatty() else RichProgress()
    result = _run(run_training, settings, progress=progress)
    if json_output:
        _print_json(result.to_dict())
    elif not State.quiet:
        from roberta_ft.console import stderr

        best = result.metrics["best"]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in best.items() if isinstance(v, float) and k != "train_loss")
        stderr.print(f"Best epoch {best['epoch']}: {shown}. Model: {result.output_dir}", highlight=False)


@app.command("eval")
def evaluate(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    data: Annotated[str, typer.Argument(help="Labelled .csv/.tsv/.jsonl file, or a task dataset (e.g. glue/sst2).")],
    task: TaskOption = None,
    split: Annotated[str | None, typer.Option(help="Split of a task dataset [default: validation].")] = None,
    text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None,
    label_column: LabelColumn = None,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    data_dir: DataDir = None,
    max_length: MaxLength = None,
    batch_size: Annotated[int | None, typer.Option(help="Texts per forward pass [default: 128].")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    metric: Annotated[str | None, typer.Option(help="Extra metric for evaluate.load (name or local path).")] = None,
    drop_invalid: Annotated[
        bool | None, typer.Option("--drop-invalid", help="Skip rows with no text or label.")
    ] = None,
    trust_remote_code: TrustRemoteCode = None,
    json_output: JsonOption = False,
) -> None:
    """Print a trained model's metrics on labelled DATA."""
    flags = {k: v for k, v in locals().items() if k != "json_output"}
    _setup()
    from roberta_ft.config import EvalConfig
    from roberta_ft.evaluate import evaluate as run_evaluation

    settings = _run(EvalConfig.from_dict, _run(_settings, None, flags))
    result = _run(run_evaluation, settings).to_dict()
    if json_output:
        _print_json(result)
        return
    from rich.console import Console

    from roberta_ft.console import metrics_table, report_tables

    console = Console()
    console.print(metrics_table(result))
    if result.get("report") and not State.quiet:
        for table in report_tables(result["report"]):
            console.print(table)


@app.command()
def predict(
    model_dir: Annotated[str, typer.Argument(help="A model directory written by `roberta-ft train`.")],
    input: Annotated[str, typer.Argument(help="Text file: one text per line (FIRST<TAB>SECOND for pair models).")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Write .csv/.tsv/.jsonl here (default: label<TAB>probability on stdout)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Texts per forward pass [default: 64].")] = None,
    max_length: MaxLength = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    encoding: EncodingOption = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace an existing --output file.")] = None,
    trust_remote_code: TrustRemoteCode = None,
    json_output: JsonOption = False,
) -> None:
    """Label every line of INPUT, in input order (streaming: memory stays flat on any file size)."""
    flags = {k: v for k, v in locals().items() if k != "json_output"}
    _setup()
    from roberta_ft.config import PredictConfig
    from roberta_ft.predict import predict as run_prediction

    settings = _run(PredictConfig.from_dict, _run(_settings, None, flags))
    if json_output and settings.output is None:
        _fail("--json needs --output (the predictions themselves go to the file)", 2)
    result = _run(run_prediction, settings)
    if json_output:
        _print_json(result.to_dict())
    elif settings.output and not State.quiet:
        from roberta_ft.console import stderr

        stderr.print(
            f"{result.num_lines} lines -> {settings.output} ({result.texts_per_second:.0f} texts/s)", highlight=False
        )


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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Tasks", title_justify="left")
    for column in ("task", "input", "labels", "metric", "datasets by name"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            " + ".join(row["text_fields"]),
            "regression" if row["problem_type"] == "regression" else ", ".join(row["labels"] or ["from the data"]),
            row["primary_metric"],
            ", ".join(row["datasets"]),
        )
    Console().print(table)


def main() -> None:
    app()
