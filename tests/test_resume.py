"""A run killed with SIGKILL and resumed with --resume ends exactly like an uninterrupted run.

The killed run is a real `python -m roberta_ft train` process; the uninterrupted reference is the same
command line run through the CLI in the test process. The killed run is
watched until the checkpoint the test chose appears in DIR/checkpoints (a checkpoint directory appears by
an atomic rename, so it is complete when seen), then gets SIGKILL at whatever point it has reached by
then. The resumed run is the same command line plus --resume, through the CLI in the test process. On
the CPU in fp32 the comparison is bitwise: per-epoch metrics, the loss curve, the best model and the
final weights and optimizer state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import run_and_kill, run_to_completion, write_reviews

# 240 rows: 24 held out for validation, 216 for training = 27 steps of 8 per epoch.
pytestmark = pytest.mark.slow  # end-to-end training runs (-m 'not slow' leaves them out)

STEPS_PER_EPOCH = 27
EPOCHS = 2


def command(data: Path, output: Path, save_every: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "roberta_ft",
        "--quiet",
        "train",
        str(data),
        "--output",
        str(output),
        "--model",
        "tiny",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "8",
        "--seed",
        "5",
        "--save-every",
        str(save_every),
        *extra,
    ]


def resume(args: list[str]) -> None:
    """The same command line plus --resume, run in this process (the kill had to be a real process; the
    resumed run may as well not pay the start-up again, and it shows that nothing of the process state but
    the checkpoint matters)."""
    result = CliRunner().invoke(app, [*args[3:], "--resume"])
    assert result.exit_code == 0, result.output


def checkpoint_meta(path: Path) -> dict:
    return json.loads((path / "checkpoint.json").read_text())


def assert_same_run(reference: Path, resumed: Path) -> None:
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    new_metrics = json.loads((resumed / "metrics.json").read_text())
    assert len(ref_metrics["epochs"]) == EPOCHS
    assert new_metrics["epochs"] == ref_metrics["epochs"]  # exact floats: loss and every metric
    assert new_metrics["best"] == ref_metrics["best"]
    assert new_metrics["steps"] == ref_metrics["steps"]  # the per-step loss curve too
    # The best model, and the final weights and optimizer state (the last checkpoint).
    final = f"step-{EPOCHS * STEPS_PER_EPOCH:07d}"
    for name in ("model.safetensors", f"checkpoints/{final}/model.safetensors"):
        expected, got = load_file(reference / name), load_file(resumed / name)
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[key], got[key]) for key in expected), name
    ref_state = torch.load(reference / "checkpoints" / final / "training_state.pt", weights_only=True)
    new_state = torch.load(resumed / "checkpoints" / final / "training_state.pt", weights_only=True)
    for key, values in ref_state["optimizer"]["state"].items():
        for name, tensor in values.items():
            assert torch.equal(tensor, new_state["optimizer"]["state"][key][name]), (key, name)
    assert json.loads((resumed / "run_config.json").read_text())["status"] == "complete"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("resume") / "reviews.csv", n=240, seed=8)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The uninterrupted run (checkpoints change nothing in what a run computes, so any --save-every fits: one
    at each epoch's end, the last of them what the resumed runs' final state is compared with)."""
    output = tmp_path_factory.mktemp("reference") / "run"
    run_to_completion(command(data, output, save_every=STEPS_PER_EPOCH))
    return output


def test_killed_mid_epoch_and_resumed_equals_uninterrupted(data, reference, tmp_path):
    output = tmp_path / "run"
    args = command(data, output, save_every=2)
    run_and_kill(args, output, kill_after="step-0000006", log=tmp_path / "killed.txt")
    # Killed mid-epoch: resuming starts inside epoch 1, from checkpoint step 6 or a later one.
    checkpoints = sorted(p.name for p in (output / "checkpoints").iterdir() if p.name.startswith("step-"))
    resumed_from = checkpoint_meta(output / "checkpoints" / checkpoints[-1])
    assert resumed_from["step"] >= 6 and resumed_from["epoch"] == 0
    assert 0 < resumed_from["batches_done"] < STEPS_PER_EPOCH
    assert not (output / "metrics.json").exists()  # the killed run never got to the end

    # The same command line again without --resume refuses to touch the unfinished run.
    refused = CliRunner().invoke(app, args[3:])
    assert refused.exit_code == 2 and "unfinished run" in refused.output and "--resume" in refused.output

    resume(args)
    assert json.loads((output / "run_config.json").read_text())["resumed_from"] == checkpoints[-1]
    assert_same_run(reference, output)


def test_killed_at_an_epoch_boundary_and_resumed_equals_uninterrupted(data, reference, tmp_path):
    output = tmp_path / "run"
    # Step checkpoints at 9 and 18, then the end-of-epoch one at 27; the next one is at 36.
    args = command(data, output, save_every=9)
    run_and_kill(args, output, kill_after=f"step-{STEPS_PER_EPOCH:07d}", log=tmp_path / "killed.txt")
    latest = sorted(p.name for p in (output / "checkpoints").iterdir() if p.name.startswith("step-"))[-1]
    resumed_from = checkpoint_meta(output / "checkpoints" / latest)
    assert (resumed_from["step"], resumed_from["epoch"], resumed_from["batches_done"]) == (STEPS_PER_EPOCH, 1, 0)
    assert [e["epoch"] for e in resumed_from["loop"]["history"]["epochs"]] == [1]

    resume(args)
    assert_same_run(reference, output)
