"""Presenting benchmark results: the rich table on stdout and results.md."""

from __future__ import annotations

from pathlib import Path


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def table_rows(results: dict) -> list[list[str]]:
    rows = []
    for model in results["models"].values():
        for row in model["summary"]:
            unit = "samples/s" if row["phase"] == "train" else "texts/s"
            agreement = row.get("label_agreement")
            system = row["system"] + (f" (labels agree {agreement:.1%})" if agreement is not None else "")
            rows.append(
                [
                    row["model"],
                    row["phase"],
                    system,
                    f"{_fmt(row['items_per_s'], '.1f')} {unit}",
                    _fmt(row["ours_over_peer"], ".2f") + ("x" if row["ours_over_peer"] else ""),
                    _fmt(row["dev_accuracy"], ".4f"),
                    _fmt(row["peak_rss_mb"], ".0f"),
                    _fmt(row.get("wall_seconds"), ".0f"),
                    _fmt(row["ceiling_share"], ".1%"),
                    _fmt(row["cpu_wait_share"], ".0%"),
                    f"{row['runs_ok']}/{row['runs']}",
                ]
            )
    return rows


HEADERS = [
    "model",
    "phase",
    "system",
    "throughput",
    "ours ÷ peer",
    "dev acc",
    "peak RSS MB",
    "wall s",
    "of ceiling",
    "CPU wait",
    "runs",
]


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    machine = results["machine"]
    table = Table(
        title="roberta-ft vs peers (median of runs)",
        caption=(
            f"{machine['cpu']}, {machine['torch_threads']} threads; matmul fp32 {machine['fp32_gflops']:.0f} "
            f"GFLOP/s, bf16 {machine['bf16_gflops']:.1f} GFLOP/s; ceiling = {machine['peak_gflops']:.0f} GFLOP/s"
        ),
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("model", "phase", "system") else "right")
    for row in table_rows(results):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # redirected output: do not squeeze the table into 80 columns
    console.print(table)


def write_markdown(results: dict, path: Path) -> None:
    machine, settings = results["machine"], results["settings"]
    lines = [
        "# roberta-ft benchmark results",
        "",
        f"Run {results['created']} with `{results['command']}`.",
        "",
        f"- Machine: {machine['cpu']} ({machine['cpu_capability']}), {machine['torch_threads']} torch threads; "
        f"matmul fp32 {machine['fp32_gflops']:.0f} GFLOP/s, bf16 {machine['bf16_gflops']:.1f} GFLOP/s; ceiling "
        f"{machine['peak_gflops']:.0f} GFLOP/s ({machine.get('ceiling_source', 'measured')}).",
        f"- Software: torch {machine['torch']}, transformers {machine['transformers']}, Python {machine['python']}.",
        f"- Data: {settings['train_rows']} SST-2 train rows, 1 epoch, batch 32, lr 5e-5, max length 128, "
        f"seed 42; dev accuracy on all {settings['dev_rows']} SST-2 dev rows; prediction over "
        f"{settings['predict_lines']} SST-2 train sentences not used for training.",
        f"- Median of {settings['repeats']} alternating run(s) per system; peak RSS is the whole process "
        "(`wait4` ru_maxrss).",
        "- Ceiling share: useful FLOP/s (6 x non-embedding params x real tokens per train sample, 2 x ... "
        "per predicted text; padding counts as waste) over the ceiling above (by default the best "
        "matmul rate of short windows measured before and after the runs).",
        "- CPU wait: share of each run's wall time in which some task on the machine waited for a CPU "
        "(Linux PSI `/proc/pressure/cpu`); high values mean a busy neighbour and a noisy number.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    lines.append("")
    for name, model in results["models"].items():
        params = model["parameters"]
        sizes = model.get("sizes") or {}
        rows = f"{sizes['train_rows']} train rows, {sizes['predict_lines']} predict lines, " if sizes else ""
        lines.append(
            f"- `{name}`: {rows}{params['total'] / 1e6:.1f}M parameters ({params['non_embedding'] / 1e6:.1f}M "
            f"non-embedding), {model['mean_train_tokens']:.1f} mean train tokens, "
            f"{model['mean_predict_tokens']:.1f} mean predict tokens."
        )
    memory = results.get("memory")
    if memory:
        lines += ["", "Peak RSS of `roberta-ft predict` as the input grows (streaming keeps it flat):", ""]
        lines += ["| lines | peak RSS MB | texts/s | wall s |", "| --- | --- | --- | --- |"]
        for run in memory["runs"]:
            lines.append(
                f"| {run['lines']} | {_fmt(run['peak_rss_mb'], '.0f')} | {_fmt(run['speed'], '.0f')} "
                f"| {_fmt(run['wall_seconds'], '.0f')} |"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
