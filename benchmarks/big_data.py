"""Training on millions of rows: peak memory and the read/tokenize phases, against the code before streaming.

    python benchmarks/big_data.py --rows 500000,1000000,2000000,5000000 --old-command /path/to/old/roberta-ft
    python benchmarks/big_data.py --rows 20000 --quick              # a smoke test

For each size it writes `big_<N>.csv` (SST-2 sentences from ../shared, one or two per row, sampled
with replacement: short texts like SST-2's, about 100 bytes a row) and runs, each in its own process
with an empty cache (`ROBERTA_FT_CACHE` in the work dir):

- ours: `roberta-ft train big_N.csv --model tiny --max-steps 1000 --eval-every 1000
  --max-eval-samples 5000 --batch-size 32 --max-length 64`, whole process: peak RSS (VmHWM of the
  main process), the peak PSS of the main process and its tokenizing workers together (sampled once
  a second; shared pages split between the processes sharing them), wall, and the read / tokenize seconds it
  records in run_config.json (`timings`);
- ours again, the same command (the data and token caches are warm): the same phases;
- ours with `--workers 1` on the largest size: the single-process read + tokenize figure, once as
  is (the tokenizers library still encodes each chunk on a thread per core) and once on one core
  (`TOKENIZERS_PARALLELISM=false`);
- the old code (`--old-command`): `train big_N.csv --model tiny --epochs 1 ...` with no --max-steps,
  stopped once it starts training (its run_config.json appears) — its peak RSS and the time to get
  there (reading, tokenizing, building the tokenizer); a size it cannot fit or finish in --timeout is
  reported as such.

It writes `big_data.json` and `big_data.md` (the table) into the work dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DEFAULT_SHARED_DIR, DEFAULT_WORK_DIR, SST2_RELATIVE, read_sst2_tsv, require_shared  # noqa: E402
from run import default_ours_command  # noqa: E402

TRAIN = ("--model", "tiny", "--batch-size", "32", "--max-length", "64", "--seed", "1")


def write_csv(shared: Path, path: Path, rows: int, seed: int = 0) -> Path:
    if path.exists():
        return path
    sentences = read_sst2_tsv(shared / SST2_RELATIVE / "train.tsv")
    rng = random.Random(seed)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            text, label = rng.choice(sentences)
            if rng.random() < 0.5:  # two sentences of the same label
                other, other_label = rng.choice(sentences)
                while other_label != label:
                    other, other_label = rng.choice(sentences)
                text = f"{text} {other}"
            writer.writerow([text, "pos" if label else "neg"])
    os.replace(temporary, path)
    return path


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def tree_pss_mb(pid: int) -> float:
    """The proportional set size (shared pages split between sharers) of a process and all its children
    (the tokenizing workers), in MB: what the whole run holds in memory at this moment."""
    total = 0
    for member in _descendants(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run(command: list[str], env: dict, timeout: float, stop_when: Path | None = None) -> dict:
    """Run a process to its end (or until `stop_when` exists); its wall time and peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, tree_peak, stopped, killed, next_pss = 0.0, 0.0, False, False, 0.0
    while process.poll() is None:
        peak = max(peak, peak_rss_mb(process.pid))
        if time.perf_counter() >= next_pss:  # smaps_rollup walks the page tables: once a second, not 20 times
            tree_peak = max(tree_peak, tree_pss_mb(process.pid))
            next_pss = time.perf_counter() + 1.0
        if stop_when is not None and stop_when.exists():
            stopped = True
            process.kill()
            break
        if time.perf_counter() - started > timeout:
            killed = True
            process.kill()
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    result = {
        "wall": wall,
        "peak_rss_mb": peak,
        "peak_tree_pss_mb": tree_peak,
        "returncode": process.returncode,
        "stopped": stopped,
    }
    if killed:
        result["timed_out"] = True
    if process.returncode not in (0, -9) or (process.returncode == -9 and not (stopped or killed)):
        result["error"] = stderr.strip().splitlines()[-1:] if stderr.strip() else ["killed (out of memory?)"]
    try:
        result["json"] = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except ValueError:
        result["json"] = None
    return result


def ours(settings, data: Path, output: Path, cache: Path, *extra: str, env_extra: dict | None = None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBERTA_FT_CACHE": str(cache), **(env_extra or {})}
    command = [*settings.ours, "--quiet", "train", str(data), "--output", str(output), "--overwrite", *TRAIN]
    command += ["--max-steps", str(settings.steps), "--eval-every", str(settings.steps), "--max-eval-samples", "5000"]
    result = run([*command, *extra, "--json"], env, settings.timeout)
    run_config = output / "run_config.json"
    if run_config.exists():
        result["timings"] = json.loads(run_config.read_text())["timings"]
    return result


def old(settings, data: Path, output: Path, cache: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROBERTA_FT_CACHE": str(cache)}
    shutil.rmtree(output, ignore_errors=True)
    command = [*settings.old, "--quiet", "train", str(data), "--output", str(output), *TRAIN, "--epochs", "1"]
    # The old code writes run_config.json right before its loop starts: everything before it is read + tokenize.
    return run(command, env, settings.timeout, stop_when=output / "run_config.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="500000,1000000,2000000,5000000")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--old-command", default=None, help="the roberta-ft of the code before streaming")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 100 steps, no old code")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "big")
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    settings = parser.parse_args(argv)
    settings.ours = shlex.split(default_ours_command())
    settings.old = shlex.split(settings.old_command) if settings.old_command and not settings.quick else None
    if settings.quick:
        settings.steps = 100
    shared = require_shared(settings.shared)
    work = settings.work_dir
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(value) for value in settings.rows.split(",")]
    results: dict = {"command": " ".join(sys.argv), "sizes": {}}
    for rows in sizes:
        data = write_csv(shared, work / f"big_{rows}.csv", rows)
        entry: dict = {"bytes": data.stat().st_size}
        cache = work / f"cache-{rows}"
        shutil.rmtree(cache, ignore_errors=True)
        print(f"== {rows:,} rows ({entry['bytes'] / 1e6:.0f} MB)", flush=True)
        entry["ours"] = ours(settings, data, work / "out", cache)
        print("   ours:", _short(entry["ours"]), flush=True)
        entry["ours_cached"] = ours(settings, data, work / "out", cache)
        print("   ours, caches warm:", _short(entry["ours_cached"]), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        if rows == max(sizes):
            entry["ours_one_worker"] = ours(settings, data, work / "out", cache, "--workers", "1")
            print("   ours, --workers 1:", _short(entry["ours_one_worker"]), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
            # One process on one core: the tokenizers library's own threads off too.
            one_core = {"TOKENIZERS_PARALLELISM": "false"}
            entry["ours_one_core"] = ours(settings, data, work / "out", cache, "--workers", "1", env_extra=one_core)
            print("   ours, --workers 1, TOKENIZERS_PARALLELISM=false:", _short(entry["ours_one_core"]), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        if settings.old:
            entry["old"] = old(settings, data, work / "out-old", cache)
            print("   old:", _short(entry["old"]), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
        results["sizes"][rows] = entry
        (work / "big_data.json").write_text(json.dumps(results, indent=2))
    table = render(results)
    (work / "big_data.md").write_text(table)
    print(table)
    return 0


def _short(result: dict) -> str:
    timings = result.get("timings") or {}
    shown = f"wall {result['wall']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB"
    shown += f" (with workers, PSS {result.get('peak_tree_pss_mb', float('nan')):.0f} MB)"
    if timings:
        shown += f", read {timings['read_seconds']:.1f} s, tokenize {timings['tokenize_seconds']:.1f} s"
    if result.get("error"):
        shown += f", error: {result['error']}"
    return shown


def render(results: dict) -> str:
    lines = [
        "| rows | CSV MB | ours: peak RSS MB | with workers: peak PSS MB | read s | tokenize s | wall s (1,000 steps) "
        "| rows/s read+tokenize | caches warm: read + tokenize s | warm: wall s | old: peak RSS MB | old: s to training |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rows, entry in results["sizes"].items():
        mine, warm, previous = entry["ours"], entry["ours_cached"], entry.get("old")
        timings = mine.get("timings") or {}
        phases = _phases(mine)
        old_cells = "— | —"
        if previous:
            state = " (timed out)" if previous.get("timed_out") else (" (failed)" if previous.get("error") else "")
            old_cells = f"{previous['peak_rss_mb']:.0f}{state} | {previous['wall']:.1f}"
        lines.append(
            f"| {int(rows):,} | {entry['bytes'] / 1e6:.0f} | {mine['peak_rss_mb']:.0f} | "
            f"{mine.get('peak_tree_pss_mb', float('nan')):.0f} | "
            f"{timings.get('read_seconds', float('nan')):.1f} | {timings.get('tokenize_seconds', float('nan')):.1f} | "
            f"{mine['wall']:.1f} | {int(rows) / phases:,.0f} | {_phases(warm):.1f} | {warm['wall']:.1f} | {old_cells} |"
        )
    largest = max(results["sizes"], key=int)
    entry = results["sizes"][largest]
    both = _phases(entry["ours"])
    for name, what in (("ours_one_worker", "`--workers 1`"), ("ours_one_core", "`--workers 1` on one core")):
        single = entry.get(name)
        if not single or not single.get("timings"):
            continue
        one = single["timings"]
        if name == "ours_one_worker":
            lines.append("")
        lines.append(
            f"{int(largest):,} rows, read + tokenize with every usable CPU vs {what}: {both:.1f} s vs "
            f"{_phases(single):.1f} s (**{_phases(single) / both:.2f}x**; tokenizing alone "
            f"{one['tokenize_seconds'] / entry['ours']['timings']['tokenize_seconds']:.2f}x)"
            + ("" if name == "ours_one_worker" else " (TOKENIZERS_PARALLELISM=false)")
        )
    return "\n".join(lines) + "\n"


def _phases(result: dict) -> float:
    timings = result.get("timings") or {}
    return timings.get("read_seconds", float("nan")) + timings.get("tokenize_seconds", float("nan"))


if __name__ == "__main__":
    raise SystemExit(main())
