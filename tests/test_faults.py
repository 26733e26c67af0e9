"""Numerical faults: a non-finite loss stops the run clearly (or is skipped on request); out-of-memory
halves the micro-batch and carries on with the same effective batch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from roberta_ft import checkpoint, loop, problems
from roberta_ft.config import TrainConfig
from roberta_ft.errors import TrainingError
from roberta_ft.train import train
from tests.helpers import write_reviews


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("faults") / "r.csv", n=80, seed=4)


def config(data: Path, output: Path, **changes) -> TrainConfig:
    values = dict(data=str(data), output=str(output), model="tiny", epochs=2, batch_size=16, seed=3, save_every=2)
    return TrainConfig(**{**values, **changes})


def poison_loss(monkeypatch, at_calls: set[int]) -> None:
    """The training loss of the given calls (1-based) becomes NaN; evaluation never calls the loss."""
    original = problems.SingleLabel.loss
    calls = {"n": 0}

    def compute_loss(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] in at_calls else loss

    monkeypatch.setattr(problems.SingleLabel, "loss", compute_loss)


def test_a_nan_loss_stops_the_run_with_where_and_keeps_the_last_good_state(data, tmp_path, monkeypatch):
    output = tmp_path / "run"
    poison_loss(monkeypatch, {8})  # epoch 2 (5 steps per epoch), its 3rd batch
    with pytest.raises(TrainingError) as error:
        train(config(data, output))
    message = error.value.one_line()
    assert "the training loss became nan at step 8 (epoch 2, batch 3 of 5, rows at lines " in message
    assert "learning rate " in message and "--skip-nonfinite" in message and "\n" not in message
    assert "step-0000006" in message  # the last good checkpoint is named
    # The last good checkpoint (step 6) and the best model (epoch 1) are kept; the run is marked stopped.
    assert checkpoint.latest(output).step == 6
    assert (output / "model.safetensors").exists()
    run = json.loads((output / "run_config.json").read_text())
    assert run["status"] == "stopped" and "nan" in run["error"]


def test_skip_nonfinite_skips_the_step_with_a_warning_and_carries_on(data, tmp_path, monkeypatch, caplog):
    poison_loss(monkeypatch, {3, 8})
    with caplog.at_level(logging.WARNING, logger="roberta_ft"):
        result = train(config(data, tmp_path / "run", skip_nonfinite=2))
    skipped = [r.getMessage() for r in caplog.records if "skipping this step" in r.getMessage()]
    assert len(skipped) == 2 and "step 3 (epoch 1" in skipped[0] and "(2 of --skip-nonfinite 2)" in skipped[1]
    assert all(e["train_loss"] == e["train_loss"] for e in result.metrics["epochs"])  # finite, not NaN
    # One more than allowed stops the run.
    poison_loss(monkeypatch, {1, 2})
    with pytest.raises(TrainingError, match="at step 2 "):
        train(config(data, tmp_path / "run2", skip_nonfinite=1))


def test_a_huge_learning_rate_stops_cleanly_through_the_cli(data, tmp_path):
    from typer.testing import CliRunner

    from roberta_ft.cli import app

    output = tmp_path / "run"
    args = ["train", str(data), "-o", str(output), "--model", "tiny", "--precision", "fp32", "--lr", "1e30"]
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the training loss became nan at step" in errors[0], result.stderr
    assert "Traceback" not in result.output


def fail_big_forwards(monkeypatch, limit: int | None) -> list[int]:
    """The tiny model's training forward raises CUDA-style out-of-memory above `limit` rows (always if None)."""
    import roberta_ft.modeling as modeling

    build = modeling.build_tiny
    sizes: list[int] = []

    def build_tiny(*args, **kwargs):
        model, tokenizer = build(*args, **kwargs)
        forward = model.forward

        def guarded(*f_args, **f_kwargs):
            rows = f_kwargs["input_ids"].shape[0]
            if model.training:
                sizes.append(rows)
                if limit is None or rows > limit:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(*f_args, **f_kwargs)

        model.forward = guarded
        return model, tokenizer

    monkeypatch.setattr(modeling, "build_tiny", build_tiny)
    return sizes


def test_out_of_memory_halves_the_micro_batch_and_keeps_the_effective_batch(data, tmp_path, monkeypatch, caplog):
    expected = train(config(data, tmp_path / "accumulated", gradient_accumulation=4)).metrics["epochs"]
    sizes = fail_big_forwards(monkeypatch, limit=4)
    with caplog.at_level(logging.WARNING, logger="roberta_ft"):
        result = train(config(data, tmp_path / "run"))
    warnings = [r.getMessage() for r in caplog.records if "Out of memory" in r.getMessage()]
    assert len(warnings) == 2  # 16 -> 8 -> 4, once, at the first step
    assert "with 16 samples per forward pass: retrying with 8 x 2" in warnings[0]
    assert "with 8 samples per forward pass: retrying with 4 x 4" in warnings[1]
    assert sizes[:2] == [16, 8] and max(sizes[2:]) == 4
    # The same samples per optimizer step, weighted the same: exactly the run with 4 accumulation steps.
    assert result.metrics["epochs"] == expected
    assert checkpoint.latest(tmp_path / "run").meta["loop"]["micro_batch"] == 4  # a resumed run keeps it


def test_out_of_memory_at_one_sample_gives_up_clearly(data, tmp_path, monkeypatch):
    fail_big_forwards(monkeypatch, limit=None)
    with pytest.raises(TrainingError) as error:
        train(config(data, tmp_path / "run"))
    message = error.value.one_line()
    assert "out of CPU memory at step 1 even with one sample per forward pass" in message
    assert "--max-length" in message


@pytest.mark.parametrize("clipped", [False, True])
def test_a_skipped_step_is_closed_for_the_fp16_gradient_scaler(clipped):
    # Without closing, the scaler's next unscale_ raises "unscale_() has already been called ...".
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    for _ in range(2):
        scaler.scale(model(torch.ones(2, 3)).sum()).backward()
        if clipped:
            scaler.unscale_(optimizer)
        loop._close_scaler_step(scaler, optimizer)
        optimizer.zero_grad()
    scaler.scale(model(torch.ones(2, 3)).sum()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
