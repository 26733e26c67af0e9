"""What the CLI shows: logging set-up, the training progress display and result tables (rich, on stderr)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from rich.console import Console
from rich.table import Table

stderr = Console(stderr=True)


def is_main_process() -> bool:
    """Rank 0 of a `torchrun`/`accelerate launch` run, or a plain single process."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def setup_logging(verbose: bool, quiet: bool) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if not is_main_process():
        level = max(level, logging.WARNING)  # one process speaks for a data-parallel run
    handler = RichHandler(console=stderr, show_time=False, show_path=verbose, markup=False, rich_tracebacks=verbose)
    root = logging.getLogger("roberta_ft")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    tasks_logger = logging.getLogger("roberta_ft_tasks")
    tasks_logger.handlers[:] = [handler]
    tasks_logger.setLevel(level)
    tasks_logger.propagate = False


# Read by transformers, datasets and huggingface_hub when they are imported: quiet without importing them
# here (a command that never needs them, such as `predict --backend onnx`, never pays for their import).
_QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def adopt_logger(name: str, level: int) -> None:
    """Send a library's log (uvicorn's, for serve) through the handler `setup_logging` installed."""
    theirs = logging.getLogger(name)
    theirs.handlers[:] = list(logging.getLogger("roberta_ft").handlers)
    theirs.setLevel(level)
    theirs.propagate = False


def quiet_libraries(verbose: bool) -> None:
    """Hide the libraries' own progress bars and chatter; our log says what matters."""
    import os
    import sys
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    warnings.filterwarnings("ignore")
    for name, value in _QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)  # what the user set wins
    if "transformers" in sys.modules:  # imported already: its settings are read, set them directly
        transformers = sys.modules["transformers"]
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        datasets = sys.modules["datasets"]
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)  # tune logs each trial itself


class RichProgress:
    """Training progress: a bar with loss, learning rate, throughput and ETA; a table row per epoch."""

    def __init__(self, console: Console = stderr) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]:.2f}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]}  lr {task.fields[lr]:.2e}  {task.fields[speed]:.1f} {task.fields[unit]}"
            ),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task_id = None
        self.unit = "samples/s"  # what the speed counts (pretraining shows tokens/s)
        self.rows: list[tuple[int, dict[str, Any], bool]] = []
        self.started = 0.0

    def start(self, total_steps: int, epochs: int) -> None:
        self.started = time.monotonic()
        self.progress.start()
        self.task_id = self.progress.add_task(
            "train", total=total_steps, epoch=0.0, loss="-", lr=0.0, speed=0.0, unit=self.unit
        )

    def step(self, step, epoch, loss, learning_rate, samples_per_second) -> None:
        shown = "-" if math.isnan(loss) else f"{loss:.4f}"
        self.progress.update(
            self.task_id, completed=step, epoch=epoch, loss=shown, lr=learning_rate, speed=samples_per_second
        )

    def epoch_end(self, epoch, metrics, best) -> None:
        self.rows.append((epoch, metrics, best))
        self.progress.console.print(epoch_table(self.rows))

    def stop(self) -> None:
        self.progress.stop()


def epoch_table(rows: list[tuple[int, dict[str, Any], bool]]) -> Table:
    names = [k for k, v in rows[-1][1].items() if isinstance(v, float) and k not in ("epoch", "step")]
    table = Table(title="Validation", title_justify="left")
    table.add_column("epoch", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("best")
    best_epoch = max((e for e, _, b in rows if b), default=None)
    for epoch, metrics, _ in rows:
        table.add_row(
            str(epoch), *(f"{metrics.get(n, float('nan')):.4f}" for n in names), "*" if epoch == best_epoch else ""
        )
    return table


def metrics_table(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"{result['task']} · {result['split']} · {result['num_examples']} examples", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    published = result.get("published") or {}
    if published:
        table.add_column(f"published ({published.get('model')})", justify="right")
    positive = result.get("positive_label")
    for name, value in result["metrics"].items():
        row = [f"{name} (positive label: {positive})" if name == "f1" and positive else name, f"{value:.4f}"]
        if published:
            # Published values are fractions like the measured ones (roberta_ft.recipes.published_score).
            row.append(f"{published['value']:.4f}" if name == published.get("metric") else "")
        table.add_row(*row)
    calibration = result.get("calibration")
    if calibration:  # how far the probabilities can be trusted (docs/calibration.md)
        table.add_section()
        for name in ("ece", "brier", "nll"):
            table.add_row(name, f"{calibration[name]:.4f}", *([""] if published else []))
            if name == "ece" and calibration.get("ece_noise_floor") is not None:
                # What sampling alone gives on this many rows: an ECE near it is noise, not miscalibration.
                row = ["ece of a perfectly calibrated model (noise)", f"{calibration['ece_noise_floor']:.4f}"]
                table.add_row(*row, *([""] if published else []))
        for share, values in (calibration.get("accuracy_at_coverage") or {}).items():
            row = [f"accuracy at {share} coverage (p >= {values['min_confidence']:.3f})", f"{values['accuracy']:.4f}"]
            table.add_row(*row, *([""] if published else []))
    return table


def report_tables(report: dict[str, Any]) -> list[Table]:
    per_class = Table(title="Per class", title_justify="left")
    for column in ("label", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "label" else "right")
    for name, values in report["per_class"].items():
        per_class.add_row(
            name, f"{values['precision']:.4f}", f"{values['recall']:.4f}", f"{values['f1']:.4f}", str(values["support"])
        )
    if report["per_class"]:  # the unweighted mean over labels: what a rare label's misses pull down
        rows = list(report["per_class"].values())
        per_class.add_section()
        per_class.add_row(
            "macro average",
            *(f"{sum(row[key] for row in rows) / len(rows):.4f}" for key in ("precision", "recall", "f1")),
            str(sum(row["support"] for row in rows)),
        )
    if "confusion_matrix" not in report:  # multi-label: a row may have any number of labels
        return [per_class]
    confusion = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for name in report["labels"]:
        confusion.add_column(name, justify="right")
    for name, row in zip(report["labels"], report["confusion_matrix"], strict=True):
        confusion.add_row(name, *map(str, row))
    return [per_class, confusion]


def seeds_table(result: dict[str, Any]) -> Table:
    """One row per metric of the best epochs: median, mean, std, min, max and each seed's value."""
    table = Table(title=f"{result['task']} · {len(result['seeds'])} seeds · best epochs", title_justify="left")
    table.add_column("metric")
    for column in ("median", "mean", "std", "min", "max", *(f"seed {seed}" for seed in result["seeds"])):
        table.add_column(column, justify="right")
    for name, stats in result["summary"].items():
        shown = [stats[key] for key in ("median", "mean", "std", "min", "max")] + stats["values"]
        table.add_row(name + (" *" if name == result["primary_metric"] else ""), *(f"{v:.4f}" for v in shown))
    return table


def audit_table(result: dict[str, Any]) -> Table:
    """An audit's summary: per class the rows and flagged labels, then the worst few and the side checks."""
    title = (
        f"audit · {result['rows']} rows · {result['folds']} folds · {result['flagged']} labels flagged "
        f"· {result['output_dir']}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    table.add_column("rows", justify="right")
    table.add_column("flagged", justify="right")
    table.add_column("share", justify="right")
    for name, counts in result["per_class"].items():
        share = counts["flagged"] / counts["rows"] if counts["rows"] else 0.0
        table.add_row(name, str(counts["rows"]), str(counts["flagged"]), f"{share:.1%}")
    table.add_section()
    duplicates = result["duplicates"]
    table.add_row(
        "conflicting duplicates", str(duplicates["conflicting_rows"]), str(duplicates["conflicting_groups"]), "groups"
    )
    for name, found in result["leakage"].items():
        table.add_row(f"{name} rows in training", str(found["rows_checked"]), str(found["leaked_rows"]), "leaked")
    if result.get("cleaned"):
        cleaned = result["cleaned"]
        table.add_row(f"--clean {cleaned['file']}", str(cleaned["rows"]), "", "rows written")
    return table


def glue_table(report: dict[str, Any]) -> Table:
    """Each task's GLUE score (its official metrics averaged, 0-100) and the GLUE average."""
    table = Table(title="GLUE score (dev)", title_justify="left")
    table.add_column("task")
    table.add_column("examples", justify="right")
    table.add_column("score", justify="right")
    for result in report["tasks"]:
        table.add_row(result["task"], str(result["num_examples"]), f"{report['scores'][result['task']]:.1f}")
    table.add_section()
    table.add_row("average", "", f"{report['glue_average']:.1f}", style="bold")
    return table


def tune_table(result: dict[str, Any]) -> Table:
    """One row per trial: its settings, value, state, epochs and time; the best trial starred."""
    metric = result["metric"]
    counts = result["counts"]
    title = (
        f"{result['study']} · {metric} ({result['direction']}) · {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed · {result['epochs_run']} epochs"
    )
    table = Table(title=title, title_justify="left")
    names = list(result["space"]["parameters"])
    # Folded, not cut: a narrow terminal still shows every name and number whole.
    table.add_column("trial", justify="right", overflow="fold")
    for name in names:
        table.add_column(name, justify="right", overflow="fold")
    for column in (metric, "state", "epochs", "seconds"):
        table.add_column(column, justify="left" if column == "state" else "right", overflow="fold")
    table.add_column("reason", overflow="fold")
    best = (result.get("best") or {}).get("number")
    for trial in result["trials"]:
        params = trial["params"]
        table.add_row(
            f"{trial['number']}{' *' if trial['number'] == best else ''}",
            *(_shown(params.get(name)) for name in names),
            "" if trial["value"] is None else f"{trial['value']:.4f}",
            trial["state"],
            str(trial["epochs"]),
            "" if trial["seconds"] is None else f"{trial['seconds']:.1f}",
            trial["reason"] or "",
        )
    return table


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def print_results(*tables: Any) -> None:
    """A command's result tables on stdout: on a terminal, as wide as it is; elsewhere (a file, a pipe, a log)
    each table at its full width, never wrapped into narrow columns to fit an assumed 80."""
    console = Console()
    if not console.is_terminal:
        measure = Console(width=1 << 16)
        widest = max((measure.measure(table).maximum for table in tables), default=80)
        console = Console(width=max(widest, 20))
    for table in tables:
        console.print(table)
