"""ONNX Runtime against our torch predict and `pipeline()`: speed, start-up and accuracy, side by side in one run.

    python benchmarks/onnx_bench.py --repeats 3            # MiniLM on SST-2 (and MRPC), distilroberta-shape
    python benchmarks/onnx_bench.py --quick                # a smoke test: 500 rows, 1,000 lines, 1 repeat

1. Models: MiniLM fine-tuned by `roberta-ft train` exactly as in benchmarks/run.py (4,000 SST-2 rows,
   1 epoch, batch 32, lr 5e-5, max length 128) and on MRPC's train split (3 epochs), each exported with
   `roberta-ft export` (fp32 + int8, the residual projections in fp32), again with `--quantize
   int8-blockwise` (8-bit blocks, the scheme `--quantize int8` picks for a few-shot model) into
   MODEL-int8block and with `--quantize int8-full` (every matrix product in int8) into MODEL-int8full; the
   distilroberta-base shape with random weights (speed only).
2. Speed: `roberta-ft predict` on the 8,000 benchmark lines with the torch backend (`--precision auto`,
   which is bf16 on CPUs with native bf16, and `--precision fp32`), the onnx backend (fp32, int8, int8
   blockwise, int8-full), and `pipeline(batch_size=64)`; every system in its own process, alternating, medians of --repeats.
3. Start-up: the whole process's wall time of `roberta-ft predict` on 100 lines, torch vs onnx.
4. Accuracy: `roberta-ft eval` on SST-2 dev (872) and MRPC dev (408) per backend and precision;
   label agreement with torch fp32 on the 8,000 lines, and the largest probability difference.

Writes `onnx_bench.json` and `onnx_bench.md` into the work dir and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_SHARED_DIR,
    DEFAULT_WORK_DIR,
    last_json_object,
    offline_env,
    require_shared,
    resolve_model,
    run_measured,
    write_inputs,
)
from run import default_ours_command  # noqa: E402

SYSTEMS = {  # name -> predict options
    "torch auto": ["--backend", "torch", "--precision", "auto"],
    "torch fp32": ["--backend", "torch", "--precision", "fp32"],
    "onnx fp32": ["--backend", "onnx", "--precision", "fp32"],
    "onnx int8": ["--backend", "onnx", "--precision", "int8"],
    "onnx int8 blockwise": ["--backend", "onnx", "--precision", "int8"],  # on MODEL-int8block
    "onnx int8-full": ["--backend", "onnx", "--precision", "int8"],  # on MODEL-int8full (export --quantize int8-full)
}
# The systems that read an int8 file of another scheme, exported into a sibling directory: name -> (suffix,
# `export --quantize` value).
SIBLINGS = {
    "onnx int8 blockwise": ("-int8block", "int8-blockwise"),
    "onnx int8-full": ("-int8full", "int8-full"),
}


def system_dir(model: Path, system: str) -> Path:
    """The model dir a system reads: the SIBLINGS' int8 schemes are exported into a sibling directory."""
    return model.with_name(model.name + SIBLINGS[system][0]) if system in SIBLINGS else model


def ours(settings, *args: str) -> dict:
    measured = run_measured([*settings.ours, *args, "--json"], timeout=settings.timeout, env=offline_env())
    payload = last_json_object(measured.stdout) or {}
    if measured.returncode != 0:
        tail = "\n".join(measured.stderr.strip().splitlines()[-8:])
        raise SystemExit(f"failed: {' '.join(args)}\n{tail}")
    return {
        "json": payload,
        "wall": measured.wall_seconds,
        "rss": measured.peak_rss_mb,
        "wait": measured.cpu_wait_share,
    }


def train(settings, name: str, base: Path, *args: str) -> Path:
    """`roberta-ft train ARGS` into work-dir/model-NAME (kept from an earlier run unless --retrain), exported."""
    output = settings.work_dir / f"model-{name}"
    if not (output / "model.safetensors").exists() or settings.retrain:
        shutil.rmtree(output, ignore_errors=True)
        ours(settings, "train", *args, "--model", str(base), "--output", str(output), "--seed", "42")
    ours(settings, "export", str(output), "--overwrite")
    for system, (_, quantize) in SIBLINGS.items():
        sibling = system_dir(output, system)
        ours(settings, "export", str(output), "--output", str(sibling), "--quantize", quantize, "--overwrite")
    return output


def predict(settings, model: Path, texts: Path, system: str) -> dict:
    out = settings.work_dir / f"pred-{model.name}-{system.replace(' ', '-')}.jsonl"
    out.unlink(missing_ok=True)
    run = ours(settings, "predict", str(system_dir(model, system)), str(texts), "--output", str(out), *SYSTEMS[system])
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return {
        "texts_per_s": run["json"]["texts_per_second"],
        "wall": run["wall"],
        "rss": run["rss"],
        "wait": run["wait"],
        "labels": [row.get("label") for row in rows],
        "probabilities": [row.get("probability") for row in rows],
    }


def pipeline(settings, model: Path, texts: Path) -> dict:
    labels = settings.work_dir / "pipeline-labels.txt"
    command = [sys.executable, str(Path(__file__).parent / "peer_pipeline.py"), "--model-dir", str(model)]
    command += ["--texts", str(texts), "--labels-out", str(labels), "--batch-size", "64"]
    measured = run_measured(command, timeout=settings.timeout, env=offline_env())
    payload = last_json_object(measured.stdout) or {}
    return {"texts_per_s": payload.get("texts_per_s"), "wall": measured.wall_seconds, "wait": measured.cpu_wait_share}


def speed(settings, model: Path, texts: Path, *, with_pipeline: bool) -> dict:
    systems = list(SYSTEMS) + (["pipeline"] if with_pipeline else [])
    runs: dict[str, list[dict]] = {system: [] for system in systems}
    for repeat in range(settings.repeats):
        order = systems if repeat % 2 == 0 else list(reversed(systems))
        for system in order:
            record = (
                pipeline(settings, model, texts) if system == "pipeline" else predict(settings, model, texts, system)
            )
            runs[system].append(record)
            print(f"  [{model.name} r{repeat}] {system}: {record['texts_per_s']:.1f} texts/s", flush=True)
    summary = {
        system: {
            "texts_per_s": statistics.median(r["texts_per_s"] for r in records),
            "wall": statistics.median(r["wall"] for r in records),
            "cpu_wait": max(r["wait"] or 0.0 for r in records),
        }
        for system, records in runs.items()
    }
    reference = runs["torch fp32"][-1]
    for system in SYSTEMS:
        last = runs[system][-1]
        summary[system]["labels_agree_fp32"] = sum(
            a == b for a, b in zip(last["labels"], reference["labels"], strict=True)
        ) / len(reference["labels"])
        summary[system]["max_probability_diff"] = max(
            abs(a - b) for a, b in zip(last["probabilities"], reference["probabilities"], strict=True)
        )
    return summary


def startup(settings, model: Path, texts: Path) -> dict:
    walls: dict[str, list[float]] = {"torch": [], "onnx": []}
    for repeat in range(max(3, settings.repeats)):
        for backend in ("torch", "onnx") if repeat % 2 == 0 else ("onnx", "torch"):
            out = settings.work_dir / f"start-{backend}.jsonl"
            out.unlink(missing_ok=True)
            walls[backend].append(
                ours(settings, "predict", str(model), str(texts), "--output", str(out), "--backend", backend)["wall"]
            )
    return {backend: statistics.median(values) for backend, values in walls.items()}


def accuracy(settings, model: Path, data: list[str]) -> dict:
    found = {}
    for system in ("torch fp32", "onnx fp32", "onnx int8", *SIBLINGS):
        report = settings.work_dir / f"eval-{model.name}-{system.replace(' ', '-')}.json"
        run = ours(settings, "eval", str(system_dir(model, system)), *data, *SYSTEMS[system], "--report", str(report))
        found[system] = run["json"]["metrics"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 train rows, 1,000 lines, 1 repeat, no MRPC")
    parser.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    parser.add_argument("--skip-distilroberta", action="store_true")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "onnx")
    parser.add_argument("--ours-command", default=None)
    parser.add_argument("--timeout", type=float, default=3600)
    settings = parser.parse_args(argv)
    settings.ours = (settings.ours_command or default_ours_command()).split()
    if settings.quick:
        settings.repeats = 1
    shared = require_shared(settings.shared)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    rows, lines = (500, 1000) if settings.quick else (4000, 8000)
    inputs = write_inputs(shared, settings.work_dir, train_rows=rows, predict_lines=lines)
    first_100 = settings.work_dir / "predict_100.txt"
    first_100.write_text("\n".join(inputs.predict_txt.read_text(encoding="utf-8").splitlines()[:100]) + "\n")
    minilm = resolve_model("minilm", shared, settings.work_dir)
    results: dict = {"command": " ".join(sys.argv), "train_rows": rows, "predict_lines": lines}

    print("== MiniLM on SST-2", flush=True)
    sst2 = train(
        settings, "minilm-sst2", minilm, str(inputs.train_csv), "--validation", str(inputs.dev_csv),
        "--epochs", "1", "--batch-size", "32", "--lr", "5e-5", "--max-length", "128",
    )  # fmt: skip
    results["export_sst2"] = json.loads((sst2 / "onnx_export.json").read_text())
    results["minilm_speed"] = speed(settings, sst2, inputs.predict_txt, with_pipeline=True)
    results["startup_100_lines"] = startup(settings, sst2, first_100)
    results["sst2_dev"] = accuracy(settings, sst2, [str(inputs.dev_csv)])
    if not settings.quick:
        print("== MiniLM on MRPC", flush=True)
        glue = str(shared / "data" / "glue")
        mrpc = train(
            settings, "minilm-mrpc", minilm, "glue/mrpc", "--data-dir", glue,
            "--epochs", "3", "--batch-size", "32", "--lr", "5e-5", "--max-length", "128",
        )  # fmt: skip
        results["mrpc_dev"] = accuracy(settings, mrpc, ["glue/mrpc", "--data-dir", glue])
    if not settings.skip_distilroberta:
        print("== distilroberta-shape (random weights: speed only)", flush=True)
        shape = resolve_model("distilroberta-shape", shared, settings.work_dir)
        model = settings.work_dir / "model-distilroberta-shape"
        if not model.exists():
            shutil.copytree(shape, model)
        # Random weights: near-zero logit margins, so the int8 label check is meaningless; verify fp32 only
        # there and record the int8 differences.
        ours(settings, "export", str(model), "--overwrite", "--quantize", "none")
        fp32 = json.loads((model / "onnx_export.json").read_text())
        results["export_distilroberta_fp32"] = fp32
        _quantize_unchecked(model)
        results["distilroberta_speed"] = speed(settings, model, inputs.predict_txt, with_pipeline=False)
    (settings.work_dir / "onnx_bench.json").write_text(json.dumps(results, indent=2))
    table = render(results)
    (settings.work_dir / "onnx_bench.md").write_text(table)
    print(table)
    return 0


def _quantize_unchecked(model: Path) -> None:
    """int8 for a random-weight model, through the exporter's own quantization step (speed only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from roberta_ft.export import _quantize, int8_scheme
    from roberta_ft.onnx_model import FP32_FILE, INT8_FILE

    _quantize(model / FP32_FILE, model / INT8_FILE, "dynamic")
    for system, (_, quantize) in SIBLINGS.items():
        sibling = system_dir(model, system)
        shutil.rmtree(sibling, ignore_errors=True)
        shutil.copytree(model, sibling, ignore=shutil.ignore_patterns("*.safetensors", "checkpoints"))
        _quantize(model / FP32_FILE, sibling / INT8_FILE, int8_scheme(quantize, {})[0])  # the exporter's scheme


def render(results: dict) -> str:
    lines = [
        "| model | system | texts/s | ÷ torch auto | ÷ torch fp32 | ÷ pipeline | labels = torch fp32 | max Δp | CPU wait |"
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, name in (("minilm_speed", "MiniLM"), ("distilroberta_speed", "distilroberta-shape")):
        block = results.get(key)
        if not block:
            continue
        auto, fp32 = block["torch auto"]["texts_per_s"], block["torch fp32"]["texts_per_s"]
        peer = block.get("pipeline", {}).get("texts_per_s")
        for system, values in block.items():
            speed_ = values["texts_per_s"]
            agree = values.get("labels_agree_fp32")
            difference = values.get("max_probability_diff")
            lines.append(
                f"| {name} | {system} | {speed_:.1f} | {speed_ / auto:.2f}x | {speed_ / fp32:.2f}x | "
                f"{(f'{speed_ / peer:.2f}x' if peer else '—')} | {(f'{agree:.2%}' if agree is not None else '—')} | "
                f"{(f'{difference:.1e}' if difference is not None else '—')} | "
                f"{values['cpu_wait']:.0%} |"
            )
    start = results.get("startup_100_lines")
    if start:
        lines += ["", f"100 lines, whole process: torch {start['torch']:.2f} s, onnx {start['onnx']:.2f} s "
                  f"({start['onnx'] / start['torch']:.2f} of torch)"]  # fmt: skip
    for key, name in (("sst2_dev", "SST-2 dev (872)"), ("mrpc_dev", "MRPC dev (408)")):
        if results.get(key):
            shown = "; ".join(
                f"{system}: " + ", ".join(f"{m} {v:.4f}" for m, v in metrics.items())
                for system, metrics in results[key].items()
            )
            lines += ["", f"{name}: {shown}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
