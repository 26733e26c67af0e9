"""Side-by-side speed and accuracy: roberta-ft against a plain Trainer script and a pipeline.

For each model it alternates subprocess runs of ours and the peers (ours first on even repeats,
last on odd ones, so slow drift of a shared machine does not favour either side), takes the
median of each system's runs, prints one table and writes results.json and results.md into the
work dir. See benchmarks/README.md for the exact commands.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCHMARKS_DIR,
    DEFAULT_SHARED_DIR,
    DEFAULT_WORK_DIR,
    FULL_PREDICT_LINES,
    FULL_TRAIN_ROWS,
    MODEL_CHOICES,
    QUICK_PREDICT_LINES,
    QUICK_TRAIN_ROWS,
    BenchmarkInputs,
    MeasuredRun,
    SkipBenchmark,
    ceiling_share,
    count_parameters,
    inference_flops_per_text,
    last_json_object,
    mean_tokens,
    measure_matmul_gflops,
    offline_env,
    read_lines,
    require_shared,
    resolve_model,
    run_measured,
    train_flops_per_sample,
    write_inputs,
)
from report import print_table, write_markdown  # noqa: E402

TRAINER_MODES = ("static128", "dynamic", "tuned")
OURS = "ours"


# --------------------------------------------------------------------------------------------
# Reading what our CLI prints: kept in one place so it is easy to adapt as the CLI settles.
# --------------------------------------------------------------------------------------------

_TRAIN_SPEED_KEYS = ("train_samples_per_second", "train_samples_per_s", "samples_per_second", "samples_per_s")
_PREDICT_SPEED_KEYS = ("texts_per_second", "texts_per_s", "predict_texts_per_second", "samples_per_second")
_ACCURACY_KEYS = ("accuracy", "eval_accuracy", "dev_accuracy", "validation_accuracy")


def _find_number(value: object, keys: tuple[str, ...]) -> float | None:
    """First numeric value under any of keys, searching nested dicts breadth-first."""
    queue = [value]
    while queue:
        current = queue.pop(0)
        if isinstance(current, dict):
            for key in keys:
                found = current.get(key)
                if isinstance(found, (int, float)) and not isinstance(found, bool):
                    return float(found)
            queue.extend(item for item in current.values() if isinstance(item, (dict, list)))
        elif isinstance(current, list):
            queue.extend(item for item in current if isinstance(item, (dict, list)))
    return None


def parse_ours_output(stdout: str) -> dict[str, float | None]:
    """Pull throughput and accuracy out of whatever JSON object `roberta-ft ... --json` printed last.

    Accuracy prefers ``best.accuracy`` (the checkpoint that was kept), then any accuracy-like key.
    """
    payload = last_json_object(stdout) or {}
    best = payload.get("best") if isinstance(payload.get("best"), dict) else None
    accuracy = _find_number(best, _ACCURACY_KEYS) if best else None
    if accuracy is None:
        accuracy = _find_number(payload, _ACCURACY_KEYS)
    return {
        "samples_per_s": _find_number(payload, _TRAIN_SPEED_KEYS),
        "texts_per_s": _find_number(payload, _PREDICT_SPEED_KEYS),
        "dev_accuracy": accuracy,
    }


def read_ours_labels(path: Path) -> list[str]:
    """Labels from our predict JSONL: a 'label' (or 'prediction'/'predicted_label') field per line."""
    labels = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        for key in ("label", "prediction", "predicted_label"):
            if key in record:
                labels.append(str(record[key]))
                break
        else:
            labels.append("")
    return labels


# --------------------------------------------------------------------------------------------
# Running one system once
# --------------------------------------------------------------------------------------------


def _record(measured: MeasuredRun, speed: float | None, accuracy: float | None, extra: dict) -> dict:
    record = {
        "returncode": measured.returncode,
        "speed": speed,
        "dev_accuracy": accuracy,
        "peak_rss_mb": measured.peak_rss_mb,
        "wall_seconds": measured.wall_seconds,
        "cpu_wait_share": measured.cpu_wait_share,
        "command": shlex.join(measured.command),
        **extra,
    }
    if measured.returncode != 0 or speed is None:
        tail = "\n".join(measured.stderr.strip().splitlines()[-15:])
        record["error"] = tail or measured.stdout.strip()[-2000:]
        print(f"  ! failed (rc={measured.returncode}): {record['command']}\n{tail}", file=sys.stderr)
    return record


def run_peer_trainer(
    settings: argparse.Namespace, model_dir: Path, inputs: BenchmarkInputs, mode: str, save_model: Path | None
) -> dict:
    command = [
        sys.executable,
        str(BENCHMARKS_DIR / "peer_trainer.py"),
        *("--model-dir", str(model_dir), "--train", str(inputs.train_csv), "--dev", str(inputs.dev_csv)),
        *("--mode", mode, "--batch-size", "32", "--lr", "5e-5", "--epochs", "1"),
        *("--max-length", "128", "--seed", "42"),
    ]
    if mode == "tuned":
        command += ["--precision", settings.tuned_precision_resolved]
    if save_model is not None:
        command += ["--save-model", str(save_model)]
    measured = run_measured(command, timeout=settings.timeout, env=offline_env())
    payload = last_json_object(measured.stdout) or {}
    return _record(
        measured,
        payload.get("train_samples_per_s"),
        payload.get("dev_accuracy"),
        {"peer_json": payload},
    )


def run_ours_train(settings: argparse.Namespace, model_dir: Path, inputs: BenchmarkInputs, output: Path) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    command = [
        *settings.ours_command,
        *("train", str(inputs.train_csv), "--validation", str(inputs.dev_csv)),
        *("--model", str(model_dir), "--output", str(output)),
        *("--epochs", "1", "--batch-size", "32", "--lr", "5e-5", "--max-length", "128", "--seed", "42"),
        "--json",
    ]
    measured = run_measured(command, timeout=settings.timeout, env=offline_env())
    parsed = parse_ours_output(measured.stdout)
    extra = {"ours_parsed": parsed, "ours_json": last_json_object(measured.stdout)}
    return _record(measured, parsed["samples_per_s"], parsed["dev_accuracy"], extra)


def run_peer_pipeline(settings: argparse.Namespace, model_dir: Path, texts: Path, labels_out: Path) -> dict:
    command = [
        sys.executable,
        str(BENCHMARKS_DIR / "peer_pipeline.py"),
        *("--model-dir", str(model_dir), "--texts", str(texts), "--labels-out", str(labels_out)),
        *("--batch-size", "64"),
    ]
    measured = run_measured(command, timeout=settings.timeout, env=offline_env())
    payload = last_json_object(measured.stdout) or {}
    return _record(measured, payload.get("texts_per_s"), None, {"peer_json": payload})


def run_ours_predict(settings: argparse.Namespace, model_dir: Path, texts: Path, output: Path) -> dict:
    output.unlink(missing_ok=True)
    command = [*settings.ours_command, "predict", str(model_dir), str(texts), "--output", str(output), "--json"]
    measured = run_measured(command, timeout=settings.timeout, env=offline_env())
    parsed = parse_ours_output(measured.stdout)
    extra = {"ours_parsed": parsed, "ours_json": last_json_object(measured.stdout)}
    return _record(measured, parsed["texts_per_s"], None, extra)


# --------------------------------------------------------------------------------------------
# One model: alternate the systems, then summarise
# --------------------------------------------------------------------------------------------


def _alternating(systems: list[str], repeat: int) -> list[str]:
    """Ours first on even repeats and last on odd ones, so drift over time favours neither side."""
    return list(systems) if repeat % 2 == 0 else list(reversed(systems))


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _label(system: str, settings: argparse.Namespace) -> str:
    if system == "tuned" and settings.tuned_precision_resolved == "fp32":
        return "trainer-tuned-fp32"
    return system if system in (OURS, "pipeline") else f"trainer-{system}"


def benchmark_model(
    name: str, model_dir: Path, inputs: BenchmarkInputs, settings: argparse.Namespace, machine: dict
) -> dict:
    runs_dir = settings.work_dir / "runs" / name
    runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n== {name}: {model_dir}", file=sys.stderr)

    params = count_parameters(model_dir)
    train_tokens = mean_tokens(model_dir, _csv_sentences(inputs.train_csv))
    predict_tokens = mean_tokens(model_dir, read_lines(inputs.predict_txt))
    train_flops = train_flops_per_sample(params.non_embedding, train_tokens)
    predict_flops = inference_flops_per_text(params.non_embedding, predict_tokens)

    # ---- training: ours and the Trainer modes -------------------------------------------------
    systems = ([] if settings.skip_ours else [OURS]) + list(settings.modes)
    train_runs: dict[str, list[dict]] = {system: [] for system in systems}
    ours_model = runs_dir / "ours-model"
    peer_model = runs_dir / "trainer-model"
    save_mode = "dynamic" if "dynamic" in settings.modes else (settings.modes[0] if settings.modes else None)
    for repeat in range(settings.repeats):
        for system in _alternating(systems, repeat):
            print(f"  [train r{repeat}] {_label(system, settings)}", file=sys.stderr, flush=True)
            if system == OURS:
                output = ours_model if repeat == 0 else runs_dir / f"ours-model-r{repeat}"
                record = run_ours_train(settings, model_dir, inputs, output)
                if repeat > 0:
                    shutil.rmtree(output, ignore_errors=True)
            else:
                save = peer_model if (repeat == 0 and system == save_mode) else None
                record = run_peer_trainer(settings, model_dir, inputs, system, save)
            train_runs[system].append(record)
            print(f"    -> {_short(record)}", file=sys.stderr, flush=True)

    # ---- prediction: ours vs the pipeline, on the same fine-tuned model -----------------------
    if not settings.skip_ours and (ours_model / "config.json").is_file():
        predict_model = ours_model
    elif (peer_model / "config.json").is_file():
        predict_model = peer_model
    else:
        predict_model = None
    predict_systems = ([] if settings.skip_ours else [OURS]) + ["pipeline"]
    predict_runs: dict[str, list[dict]] = {system: [] for system in predict_systems}
    ours_predictions = runs_dir / "ours-predictions.jsonl"
    pipeline_labels = runs_dir / "pipeline-labels.txt"
    if predict_model is None:
        print("  ! no fine-tuned model to predict with; skipping prediction", file=sys.stderr)
        predict_systems = []
    for repeat in range(settings.repeats if predict_systems else 0):
        for system in _alternating(predict_systems, repeat):
            print(f"  [predict r{repeat}] {system}", file=sys.stderr, flush=True)
            if system == OURS:
                record = run_ours_predict(settings, predict_model, inputs.predict_txt, ours_predictions)
            else:
                record = run_peer_pipeline(settings, predict_model, inputs.predict_txt, pipeline_labels)
            predict_runs[system].append(record)
            print(f"    -> {_short(record)}", file=sys.stderr, flush=True)

    agreement = None
    if ours_predictions.is_file() and pipeline_labels.is_file():
        ours_labels = read_ours_labels(ours_predictions)
        peer_labels = read_lines(pipeline_labels)
        if ours_labels and len(ours_labels) == len(peer_labels):
            agreement = sum(a == b for a, b in zip(ours_labels, peer_labels, strict=True)) / len(peer_labels)

    peak_gflops = machine["peak_gflops"]
    summary = _summarise("train", train_runs, train_flops, peak_gflops, settings)
    summary += _summarise("predict", predict_runs, predict_flops, peak_gflops, settings)
    for row in summary:
        row["model"] = name
        if row["phase"] == "predict" and row["system"] == "pipeline":
            row["label_agreement"] = agreement
    return {
        "model_dir": str(model_dir),
        "predict_model_dir": str(predict_model) if predict_model else None,
        "parameters": {"total": params.total, "non_embedding": params.non_embedding},
        "mean_train_tokens": train_tokens,
        "mean_predict_tokens": predict_tokens,
        "train_flops_per_sample": train_flops,
        "predict_flops_per_text": predict_flops,
        "label_agreement_ours_vs_pipeline": agreement,
        "summary": summary,
        "runs": {"train": train_runs, "predict": predict_runs},
    }


def memory_check(settings: argparse.Namespace, model: dict, inputs: BenchmarkInputs) -> dict | None:
    """Our predict's peak RSS on growing inputs (the predict texts repeated): flat when it streams."""
    model_dir = model.get("predict_model_dir")
    if model_dir is None:
        return None
    texts = read_lines(inputs.predict_txt)
    runs = []
    for count in settings.memory_lines:
        source = settings.work_dir / f"memory_{count}.txt"
        source.write_text("\n".join(texts[i % len(texts)] for i in range(count)) + "\n", encoding="utf-8")
        output = settings.work_dir / "runs" / f"memory-{count}.jsonl"
        print(f"  [memory] ours predict on {count} lines", file=sys.stderr, flush=True)
        record = run_ours_predict(settings, Path(model_dir), source, output)
        print(f"    -> {_short(record)}", file=sys.stderr, flush=True)
        runs.append({"lines": count, **record})
        output.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
    return {"model_dir": model_dir, "runs": runs}


def _csv_sentences(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return [row["sentence"] for row in csv.DictReader(handle)]


def _short(record: dict) -> str:
    speed = record.get("speed")
    accuracy = record.get("dev_accuracy")
    parts = [f"{speed:.2f}/s" if speed else "no speed"]
    if accuracy is not None:
        parts.append(f"acc {accuracy:.4f}")
    parts.append(f"rss {record['peak_rss_mb']:.0f} MB")
    parts.append(f"wall {record['wall_seconds']:.0f} s")
    if record.get("cpu_wait_share") is not None:
        parts.append(f"CPU wait {record['cpu_wait_share']:.0%}")
    return ", ".join(parts)


def _summarise(
    phase: str, runs: dict[str, list[dict]], flops: float, peak_gflops: float, settings: argparse.Namespace
) -> list[dict]:
    rows = []
    ours_speed = _median([r["speed"] for r in runs.get(OURS, []) if r["returncode"] == 0])
    for system, records in runs.items():
        good = [record for record in records if record["returncode"] == 0 and record["speed"]]
        speed = _median([record["speed"] for record in good])
        rows.append(
            {
                "phase": phase,
                "system": _label(system, settings) if phase == "train" else system,
                "items_per_s": speed,
                "ours_over_peer": (ours_speed / speed) if (system != OURS and ours_speed and speed) else None,
                "dev_accuracy": _median([record["dev_accuracy"] for record in good]),
                "peak_rss_mb": _median([record["peak_rss_mb"] for record in good]),
                "wall_seconds": _median([record["wall_seconds"] for record in good]),
                "ceiling_share": ceiling_share(speed, flops, peak_gflops),
                "cpu_wait_share": _median([record["cpu_wait_share"] for record in good]),
                "runs_ok": len(good),
                "runs": len(records),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Machine, output, entry point
# --------------------------------------------------------------------------------------------


def measure_machine(seconds: float) -> dict:
    import torch
    import transformers

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    machine = {
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fp32_gflops": 0.0,
        "bf16_gflops": 0.0,
        "peak_gflops": 0.0,
        "ceiling_source": "best measured matmul",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    return remeasure_matmul(machine, seconds)


def remeasure_matmul(machine: dict, seconds: float) -> dict:
    """Measure fp32 and bf16 matmul throughput again and keep the best seen (the hardware's ceiling)."""
    for dtype in ("float32", "bfloat16"):
        key = "fp32_gflops" if dtype == "float32" else "bf16_gflops"
        machine[key] = max(machine[key], measure_matmul_gflops(dtype, seconds=seconds))
    machine["peak_gflops"] = max(machine["fp32_gflops"], machine["bf16_gflops"])
    return machine


def default_ours_command() -> str:
    beside_python = Path(sys.executable).with_name("roberta-ft")
    return str(beside_python) if beside_python.exists() else (shutil.which("roberta-ft") or "roberta-ft")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODEL_CHOICES), help=f"comma list of {MODEL_CHOICES}")
    parser.add_argument("--modes", default=",".join(TRAINER_MODES), help="Trainer peer modes to run")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per system; median kept")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_TRAIN_ROWS} train rows, {QUICK_PREDICT_LINES} texts"
    )
    parser.add_argument("--train-rows", type=int, default=None, help="override the number of train rows")
    parser.add_argument("--predict-lines", type=int, default=None, help="override the number of predict texts")
    parser.add_argument(
        "--model-size",
        action="append",
        default=[],
        metavar="MODEL=ROWS[:LINES]",
        help="train rows (and predict lines) for one model, e.g. distilroberta-shape=1000:2000 (repeatable)",
    )
    parser.add_argument(
        "--memory-lines",
        default="",
        help="comma list of line counts (e.g. 2000,20000,100000): our predict's peak RSS on each, first model",
    )
    parser.add_argument("--skip-ours", action="store_true", help="run only the peers")
    parser.add_argument("--ours-command", default=None, help="how to invoke our CLI (default: roberta-ft)")
    parser.add_argument(
        "--tuned-precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="precision of the tuned Trainer peer; auto = bf16 only where bf16 matmul beats fp32",
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per subprocess")
    parser.add_argument("--matmul-seconds", type=float, default=2.0)
    parser.add_argument(
        "--ceiling-gflops",
        type=float,
        default=None,
        help="use this GFLOP/s as the compute ceiling instead of the measured matmul peak (busy machines)",
    )
    args = parser.parse_args(argv)

    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    for name in args.models:
        if name not in MODEL_CHOICES:
            parser.error(f"unknown model {name!r}; choose from {', '.join(MODEL_CHOICES)}")
    for mode in args.modes:
        if mode not in TRAINER_MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(TRAINER_MODES)}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    args.train_rows = args.train_rows or (QUICK_TRAIN_ROWS if args.quick else FULL_TRAIN_ROWS)
    args.predict_lines = args.predict_lines or (QUICK_PREDICT_LINES if args.quick else FULL_PREDICT_LINES)
    args.ours_command = shlex.split(args.ours_command or default_ours_command())
    sizes = {}
    for item in args.model_size:
        name, _, value = item.partition("=")
        rows, _, lines = value.partition(":")
        if name not in MODEL_CHOICES or not rows.isdigit() or (lines and not lines.isdigit()):
            parser.error(f"--model-size {item!r}: expected MODEL=ROWS[:LINES] with MODEL in {', '.join(MODEL_CHOICES)}")
        sizes[name] = (int(rows), int(lines) if lines else None)
    args.model_size = sizes
    args.memory_lines = [int(n) for n in args.memory_lines.split(",") if n.strip()]
    args.work_dir = args.work_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        require_shared(settings.shared)
    except SkipBenchmark as skip:
        print(skip, file=sys.stderr)
        return 0
    if not settings.skip_ours and shutil.which(settings.ours_command[0]) is None:
        print(
            f"our CLI {settings.ours_command[0]!r} was not found; pass --ours-command or --skip-ours", file=sys.stderr
        )
        return 2

    inputs = write_inputs(settings.shared, settings.work_dir, settings.train_rows, settings.predict_lines)
    print(f"measuring matmul throughput ({settings.matmul_seconds:.0f} s per dtype)...", file=sys.stderr)
    machine = measure_machine(settings.matmul_seconds)
    if settings.tuned_precision == "auto":
        settings.tuned_precision_resolved = "bf16" if machine["bf16_gflops"] >= machine["fp32_gflops"] else "fp32"
        if settings.tuned_precision_resolved == "fp32" and "tuned" in settings.modes:
            print(
                f"  note: bf16 matmul runs at {machine['bf16_gflops']:.1f} GFLOP/s vs fp32 "
                f"{machine['fp32_gflops']:.0f} here (no native bf16), so the tuned peer runs in fp32; "
                "force it with --tuned-precision bf16",
                file=sys.stderr,
            )
    else:
        settings.tuned_precision_resolved = settings.tuned_precision

    results = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "settings": {
            "models": settings.models,
            "modes": settings.modes,
            "repeats": settings.repeats,
            "skip_ours": settings.skip_ours,
            "ours_command": settings.ours_command,
            "tuned_precision": settings.tuned_precision_resolved,
            "train_rows": inputs.train_rows,
            "dev_rows": inputs.dev_rows,
            "predict_lines": inputs.predict_lines,
            "work_dir": str(settings.work_dir),
        },
        "machine": machine,
        "models": {},
    }
    for name in settings.models:
        try:
            model_dir = resolve_model(name, settings.shared, settings.work_dir)
        except SkipBenchmark as skip:
            print(skip, file=sys.stderr)
            continue
        model_inputs = inputs
        if name in settings.model_size:
            rows, lines = settings.model_size[name]
            model_inputs = write_inputs(settings.shared, settings.work_dir, rows, lines or settings.predict_lines)
        results["models"][name] = benchmark_model(name, model_dir, model_inputs, settings, machine)
        results["models"][name]["sizes"] = {
            "train_rows": model_inputs.train_rows,
            "predict_lines": model_inputs.predict_lines,
        }
        # Write after each model so a long run leaves partial results behind.
        _write_results(results, settings.work_dir)

    if settings.memory_lines and not settings.skip_ours and results["models"]:
        results["memory"] = memory_check(settings, next(iter(results["models"].values())), inputs)
        _write_results(results, settings.work_dir)

    # Measure the ceiling again now the runs are over; a neighbour's burst at the start should not
    # lower it (the shares in the summary are recomputed against the final ceiling).
    remeasure_matmul(machine, settings.matmul_seconds)
    if settings.ceiling_gflops:
        machine["peak_gflops"] = settings.ceiling_gflops
        machine["ceiling_source"] = "--ceiling-gflops"
    for model in results["models"].values():
        for row in model["summary"]:
            flops = model["train_flops_per_sample" if row["phase"] == "train" else "predict_flops_per_text"]
            row["ceiling_share"] = ceiling_share(row["items_per_s"], flops, machine["peak_gflops"])
    _write_results(results, settings.work_dir)
    print_table(results)
    for run in (results.get("memory") or {}).get("runs", []):
        print(
            f"our predict on {run['lines']} lines: peak RSS {run['peak_rss_mb']:.0f} MB, wall {run['wall_seconds']:.0f} s"
        )
    print(f"wrote {settings.work_dir / 'results.json'} and {settings.work_dir / 'results.md'}", file=sys.stderr)
    return 0


def _write_results(results: dict, work_dir: Path) -> None:
    (work_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(results, work_dir / "results.md")


if __name__ == "__main__":
    sys.exit(main())
