"""Data parallelism: 2 CPU processes (gloo) through torchrun give the single-process result, written once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import free_port, write_reviews

pytestmark = [
    pytest.mark.skipif(shutil.which("torchrun") is None and sys.platform != "linux", reason="needs torchrun"),
    pytest.mark.slow,
]


def _train(command_prefix: list[str], data, output, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [
        *command_prefix,
        "-m",
        "roberta_ft",
        "train",
        str(data),
        "--output",
        str(output),
        "--model",
        "tiny",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--seed",
        "3",
        "--json",
    ]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)


def test_two_processes_match_one_process(tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=200, seed=9)
    single = _train([sys.executable], data, tmp_path / "single", tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
    ]
    double = _train(torchrun, data, tmp_path / "double", tmp_path)
    assert double.returncode == 0, double.stderr[-3000:]

    # One JSON result on stdout (rank 0 only) and one output directory, written once.
    result = json.loads(double.stdout)
    assert "Data parallel over 2 processes: --batch-size 16 = 8 per process" in double.stderr
    run = json.loads((tmp_path / "double" / "run_config.json").read_text())
    assert run["status"] == "complete"
    assert sorted(p.name for p in (tmp_path / "double").iterdir() if p.name.startswith(".")) == []

    # The validation set is counted exactly once: same size as the single-process run's.
    single_run = json.loads((tmp_path / "single" / "run_config.json").read_text())
    assert run["num_validation_examples"] == single_run["num_validation_examples"] == 20

    # The same global batch gives the same training (up to float order and per-process dropout noise).
    single_epochs = json.loads((tmp_path / "single" / "metrics.json").read_text())["epochs"]
    double_epochs = result["epochs"]
    assert len(single_epochs) == len(double_epochs) == 2
    for one, two in zip(single_epochs, double_epochs, strict=True):
        # Each process draws its own dropout masks, so the runs drift apart a little as the model starts to learn.
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=0.15)
        assert two["accuracy"] == pytest.approx(one["accuracy"], abs=0.1)


def test_shards_split_every_global_batch_into_disjoint_parts():
    import numpy as np

    from roberta_ft.data import bucketed_batches
    from roberta_ft.loop import shard

    lengths = np.random.default_rng(0).integers(3, 80, size=203)
    batches = bucketed_batches(lengths, 16, seed=1, epoch=0)
    parts = [shard(batches, rank, 2) for rank in (0, 1)]
    for batch, first, second in zip(batches, parts[0], parts[1], strict=True):
        assert not set(first) & set(second)
        assert sorted([*first, *second]) == sorted(batch)
    seen = np.concatenate([np.concatenate(p) for p in parts])
    assert sorted(seen.tolist()) == list(range(203))
