"""Checkpoints: written atomically, pruned, read safely, and refused when they belong to another run."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from roberta_ft import checkpoint
from roberta_ft.config import TrainConfig
from roberta_ft.errors import ConfigError
from roberta_ft.train import train
from tests.helpers import write_reviews


def config(data: Path, output: Path, **changes) -> TrainConfig:
    values = dict(data=str(data), output=str(output), model="tiny", epochs=2, batch_size=16, seed=3, save_every=2)
    return TrainConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("ckpt") / "r.csv", n=80, seed=2)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("ckpt-runs") / "run"
    train(config(data, output))
    return output


def unfinished_copy(finished: Path, tmp_path: Path) -> Path:
    """The finished run as a killed one would leave it: checkpoints, no metrics, status "training"."""
    import shutil

    output = tmp_path / "run"
    shutil.copytree(finished, output)
    (output / "metrics.json").unlink()
    run = json.loads((output / "run_config.json").read_text())
    (output / "run_config.json").write_text(json.dumps({**run, "status": "training"}))
    return output


def test_checkpoints_hold_the_whole_state_and_only_the_last_k_are_kept(finished):
    names = [p.name for p in checkpoint.list_checkpoints(finished)]
    assert names == ["step-0000008", "step-0000010"]  # 5 steps per epoch, --save-every 2, keep 2
    assert not [p for p in (finished / "checkpoints").iterdir() if p.name.startswith(".")]
    last = checkpoint.latest(finished)
    assert (last.step, last.meta["epoch"], last.meta["batches_done"]) == (10, 2, 0)
    assert [e["epoch"] for e in last.meta["loop"]["history"]["epochs"]] == [1, 2]
    # Loadable with weights_only=True: tensors and plain data only.
    state = torch.load(last.path / checkpoint.STATE, weights_only=True)
    assert set(state) >= {"optimizer", "scheduler", "scaler", "rng", "tensors"}
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda", "mps"}


def test_resume_refuses_other_settings_and_names_them(finished, data, tmp_path):
    output = unfinished_copy(finished, tmp_path)
    with pytest.raises(ConfigError) as error:
        train(config(data, output, resume=True, learning_rate=0.01))
    message = error.value.one_line()
    assert "other settings" in message and "--learning-rate was 0.001, now 0.01" in message
    # Harmless settings may change: how often to checkpoint, how many to keep.
    train(config(data, output, resume=True, save_every=3, keep_checkpoints=1))


def test_resume_refuses_other_data(finished, tmp_path):
    output = unfinished_copy(finished, tmp_path)
    other = write_reviews(tmp_path / "other.csv", n=80, seed=99)
    with pytest.raises(ConfigError, match="data differ"):
        train(config(other, output, resume=True))


def test_resume_a_finished_run_changes_nothing(finished, data, tmp_path):
    import shutil

    output = tmp_path / "run"
    shutil.copytree(finished, output)
    before = json.loads((output / "metrics.json").read_text())
    result = train(config(data, output, resume=True))
    assert result.metrics["epochs"] == before["epochs"] and result.metrics["best"] == before["best"]


@pytest.mark.parametrize(
    "setup, changes, expected",
    [
        ("missing", {"resume": True}, "holds no run to resume"),
        ("empty", {"resume": True}, "holds no run to resume"),
        ("no-checkpoint", {"resume": True}, "has no checkpoint"),
        ("no-checkpoint", {}, "stopped before its first checkpoint"),
        ("unfinished", {}, "holds an unfinished run (last checkpoint at step 10)"),
        ("unfinished", {"resume": True, "overwrite": True}, "--resume and --overwrite contradict"),
        ("finished", {}, "already exists and is not empty"),
    ],
)
def test_output_dir_and_resume_mistakes_are_clear(finished, data, tmp_path, setup, changes, expected):
    output = tmp_path / "run"
    if setup == "empty":
        output.mkdir()
    elif setup == "no-checkpoint":
        output = unfinished_copy(finished, tmp_path)
        import shutil

        shutil.rmtree(output / "checkpoints")
    elif setup == "unfinished":
        output = unfinished_copy(finished, tmp_path)
    elif setup == "finished":
        import shutil

        shutil.copytree(finished, output)
    before = sorted(str(p) for p in output.rglob("*")) if output.exists() else None
    with pytest.raises(ConfigError) as error:
        train(config(data, output, **changes))
    assert expected in error.value.one_line()
    assert (sorted(str(p) for p in output.rglob("*")) if output.exists() else None) == before  # untouched


def test_overwrite_with_a_bad_input_keeps_the_previous_model(finished, tmp_path):
    import shutil

    from roberta_ft.errors import DataError

    output = tmp_path / "run"
    shutil.copytree(finished, output)
    bad = tmp_path / "bad.csv"
    bad.write_text("review,sentiment\nfine movie,pos\n,neg\n")
    with pytest.raises(DataError):
        train(config(bad, output, overwrite=True))
    assert (output / "model.safetensors").exists() and (output / "metrics.json").exists()


def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 2)


def _save(checkpointer, step, model=None):
    model = model or _tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return checkpointer.save(
        step=step,
        epoch=0,
        batches_done=step,
        loop_state={"step": step},
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=None,
        tensors={"running_loss": torch.zeros(())},
    )


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpointer = checkpoint.Checkpointer(tmp_path, keep=2, identity={})
    _save(checkpointer, 1)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        _save(checkpointer, 2)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000001"]
    assert checkpoint.latest(tmp_path).step == 1


def test_leftovers_of_a_killed_write_are_ignored_and_cleaned(tmp_path):
    checkpointer = checkpoint.Checkpointer(tmp_path, keep=1, identity={})
    _save(checkpointer, 1)
    # What a kill leaves: a half-written temporary dir, a half-deleted old one, a dir missing its last file.
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-0000002-abc").mkdir()
    (root / ".tmp-step-0000002-abc" / "model.safetensors").write_bytes(b"partial")
    (root / ".trash-step-0000000-1").mkdir()
    (root / "step-0000005").mkdir()
    assert checkpoint.latest(tmp_path).step == 1
    _save(checkpointer, 2)
    assert sorted(p.name for p in root.iterdir()) == ["step-0000002", "step-0000005"]
    assert checkpoint.latest(tmp_path).step == 2


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_in_a_checkpoint_is_refused_not_run(finished, data, tmp_path, monkeypatch):
    output = unfinished_copy(finished, tmp_path)
    last = checkpoint.latest(output)
    with open(last.path / checkpoint.STATE, "wb") as handle:
        pickle.dump({"optimizer": _Payload()}, handle, protocol=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        train(config(data, output, resume=True))
    assert not (tmp_path / "PWNED").exists()
