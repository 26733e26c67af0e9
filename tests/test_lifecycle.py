"""The run lifecycle every training command shares, the loop's one place for evaluations, and settings and
options declared once (train and tune take the same options; defaults and checks beside each field)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from roberta_ft import config as config_module
from roberta_ft.config import PretrainConfig, TrainConfig
from roberta_ft.errors import ConfigError, RunStopped, TrainingError
from tests.helpers import write_reviews

# ------------------------------------------------------------------------------------------ the lifecycle


def _accelerator():
    from roberta_ft.runtime import Runtime, make_accelerator

    return make_accelerator(Runtime("cpu", "fp32", "test"))


def _record(output: Path) -> dict:
    return json.loads((output / "run_config.json").read_text())


def test_the_run_record_from_start_to_complete(tmp_path):
    from roberta_ft.lifecycle import Run

    output = tmp_path / "run"
    run = Run(output, overwrite=False, resume=False)
    assert not output.exists()  # checked, nothing written before `open`
    run.open(_accelerator(), {"kind": "test", "config": {"seed": 1}})
    record = _record(output)
    assert record["status"] == "training" and record["kind"] == "test" and "started" in record
    assert "resumed_from" not in record

    def save(path, model, record):
        (path / "best.txt").write_text(f"{model} {record['epoch']}")

    run.best_model_saver(save, lambda r: f"epoch {r['epoch']}")("weights", {"epoch": 2})
    assert (output / "best.txt").read_text() == "weights 2"
    metrics = {"epochs": [], "best": {"epoch": 2}}
    run.complete(metrics, card=lambda: f"card after {sorted(p.name for p in output.iterdir())}")
    record = _record(output)
    assert record["status"] == "complete" and record["finished"] >= record["started"]
    assert json.loads((output / "metrics.json").read_text()) == metrics
    assert "metrics.json" in (output / "README.md").read_text()  # the card is rendered once the rest is written


@pytest.mark.parametrize(
    "raised, status, detail",
    [
        (TrainingError("the training loss became nan at step 3", "lower --learning-rate"), "stopped", "error"),
        (RunStopped("pruned at epoch 1 (accuracy 0.5000)", status="pruned"), "pruned", "stopped"),
        (KeyboardInterrupt(), "interrupted", None),
    ],
    ids=["training error", "pruned", "ctrl-c"],
)
def test_a_run_that_stops_records_why_and_the_error_goes_on(tmp_path, raised, status, detail):
    from roberta_ft.lifecycle import Run

    output = tmp_path / "run"
    run = Run(output, overwrite=False, resume=False)
    run.open(_accelerator(), {"kind": "test"})
    with pytest.raises(type(raised)):
        with run.recording():
            raise raised
    record = _record(output)
    assert record["status"] == status and "finished" in record
    if detail is not None:
        assert record[detail] == raised.one_line()


def test_an_interrupted_run_is_refused_as_unfinished_without_resume(tmp_path):
    from roberta_ft.lifecycle import Run

    output = tmp_path / "run"
    run = Run(output, overwrite=False, resume=False)
    run.open(_accelerator(), {"kind": "test"})
    with pytest.raises(KeyboardInterrupt), run.recording():
        raise KeyboardInterrupt
    with pytest.raises(ConfigError, match="holds an unfinished run that stopped before its first checkpoint"):
        Run(output, overwrite=False, resume=False)


class CtrlC:
    """A progress display that raises KeyboardInterrupt (as Ctrl-C does) at the first step where `when` holds."""

    def __init__(self, when) -> None:
        self.when = when

    def start(self, total_steps, epochs): ...
    def step(self, step, epoch, loss, learning_rate, samples_per_second):
        if self.when(step, epoch):
            raise KeyboardInterrupt

    def epoch_end(self, epoch, metrics, best): ...
    def stop(self): ...


def test_train_stopped_by_ctrl_c_records_interrupted(tmp_path):
    """The lifecycle around train's loop: Ctrl-C (KeyboardInterrupt from inside the loop) is recorded."""
    from roberta_ft.train import train

    data = write_reviews(tmp_path / "r.csv", n=80, seed=1)

    output = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(data=str(data), output=str(output), model="tiny", epochs=1, batch_size=8),
            progress=CtrlC(lambda step, epoch: step == 2),
        )
    assert _record(output)["status"] == "interrupted"


def test_the_best_epochs_confusion_matrix_is_drawn_once_when_the_run_ends(tmp_path, monkeypatch):
    """Not at every better epoch: once at the end, from validation_report.json, and also when a run is
    interrupted after a best epoch was saved."""
    from roberta_ft import plots
    from roberta_ft.train import train

    drawn = []
    real = plots.confusion_matrix
    monkeypatch.setattr(plots, "confusion_matrix", lambda *a, **k: (drawn.append(k["title"]), real(*a, **k))[1])
    data = write_reviews(tmp_path / "r.csv", n=120, seed=2)
    result = train(TrainConfig(data=str(data), output=str(tmp_path / "whole"), model="tiny", epochs=3, seed=1))
    best = result.metrics["best"]["epoch"]
    assert drawn == [f"Validation, best epoch ({best})"]
    assert json.loads((tmp_path / "whole" / "validation_report.json").read_text())["epoch"] == best
    assert (tmp_path / "whole" / "confusion_matrix.png").stat().st_size > 0

    drawn.clear()
    output = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the second epoch, after the first epoch's model was saved
        train(
            TrainConfig(data=str(data), output=str(output), model="tiny", epochs=3, seed=1),
            progress=CtrlC(lambda step, epoch: epoch == 2),
        )
    assert _record(output)["status"] == "interrupted"
    assert drawn == ["Validation, best epoch (1)"] and (output / "confusion_matrix.png").exists()


# ------------------------------------------------------------------------------------------ evaluations


def _run_at(step: int, *, epoch: int = 0, epochs: int = 3, eval_every=None, max_steps=None, last_evaluated=-1):
    from roberta_ft.loop import LoopState, _Run

    run = object.__new__(_Run)  # only the fields evaluation_due reads
    run.settings = type("S", (), {"eval_every": eval_every, "max_steps": max_steps})()
    run.epochs = epochs
    run.state = LoopState(step=step, epoch=epoch, last_evaluated_step=last_evaluated)
    return run


def test_evaluations_are_decided_in_one_place():
    # Every epoch: at each epoch's end, and when --max-steps ends the run within an epoch.
    assert _run_at(10).evaluation_due(end_of_epoch=True)
    assert not _run_at(10).evaluation_due(end_of_epoch=False)
    assert _run_at(7, max_steps=7).evaluation_due(end_of_epoch=False)
    # --eval-every 4: every 4 steps, at the end of the last epoch, when --max-steps ends the run; never twice.
    assert _run_at(8, eval_every=4).evaluation_due(end_of_epoch=False)
    assert not _run_at(9, eval_every=4).evaluation_due(end_of_epoch=False)
    assert not _run_at(9, eval_every=4).evaluation_due(end_of_epoch=True)  # an epoch's end is not enough
    assert _run_at(9, epoch=2, eval_every=4).evaluation_due(end_of_epoch=True)  # the last epoch's end is
    assert _run_at(9, eval_every=4, max_steps=9).evaluation_due(end_of_epoch=False)
    assert not _run_at(8, eval_every=4, last_evaluated=8).evaluation_due(end_of_epoch=True)


# ------------------------------------------------------------------------------------------ settings declared once


SETTINGS_CLASSES = [
    config_module.TrainConfig,
    config_module.EvalConfig,
    config_module.PredictConfig,
    config_module.ExportConfig,
    config_module.PretrainConfig,
    config_module.ServeConfig,
    config_module.TuneConfig,
]


@pytest.mark.parametrize("settings", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_every_setting_is_declared_beside_its_field(settings):
    """Each optional field is a `setting(default, *checks)`: its default and checks live in one place."""
    for field in dataclasses.fields(settings):
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required:
            continue
        assert "default" in field.metadata, f"{settings.__name__}.{field.name} is not declared with setting()"
        if settings.layered:  # None means "not given"; resolved() fills the declared default
            assert field.default is None, f"{settings.__name__}.{field.name}"


def test_layered_defaults_follow_the_model_and_lose_to_what_was_given():
    tiny = TrainConfig(data="x.csv", output="o", model="tiny").resolved()
    pretrained = TrainConfig(data="x.csv", output="o").resolved()
    assert (tiny.learning_rate, tiny.epochs) == (1e-3, 10)
    assert (pretrained.learning_rate, pretrained.epochs, pretrained.model) == (2e-5, 3, "roberta-base")
    assert TrainConfig(data="x.csv", output="o", model="tiny", epochs=2).resolved().epochs == 2
    pretraining = PretrainConfig(corpus="c.txt", output="o", model="tiny").resolved()
    assert (pretraining.learning_rate, pretraining.locality_warmup) == (1e-3, 0.3)
    assert PretrainConfig(corpus="c.txt", output="o").resolved().locality_warmup == 0.0


def test_a_check_declared_once_serves_every_command():
    """The same declared check refuses the same bad value in train, pretrain, eval and serve."""
    with pytest.raises(ConfigError, match="--warmup-ratio must be in"):
        TrainConfig(data="x.csv", output="o", warmup_ratio=1.5).resolved()
    with pytest.raises(ConfigError, match="--warmup-ratio must be in"):
        PretrainConfig(corpus="c.txt", output="o", warmup_ratio=1.5).resolved()
    for settings in (
        config_module.EvalConfig(model_dir="m", data="d", threshold=1.5),
        config_module.ServeConfig(model_dir="m", threshold=1.5),
    ):
        with pytest.raises(ConfigError, match="--threshold must be between 0 and 1"):
            settings.validate()


def test_a_missing_output_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"no output directory given \(pass --output DIR\)"):
        TrainConfig.from_dict({"data": "x.csv"})
    with pytest.raises(ConfigError, match="no output directory given"):
        PretrainConfig.from_dict({"corpus": "c.txt", "output": ""})


# ------------------------------------------------------------------------------------------ options declared once


def _options(command: str) -> dict[str, str]:
    """A command's options: setting name -> its first flag."""
    import typer.main

    from roberta_ft.cli import app

    group = typer.main.get_command(app)
    return {param.name: param.opts[0] for param in group.commands[command].params}


def test_tune_takes_every_train_option_except_the_documented_ones():
    from roberta_ft.cli import TUNE_EXCLUDED

    train, tune = _options("train"), _options("tune")
    missing = {name for name in train if name not in tune}
    assert missing == set(TUNE_EXCLUDED)
    tuning = (Path(__file__).resolve().parent.parent / "docs" / "tuning.md").read_text()
    for name in TUNE_EXCLUDED:  # each exclusion is said in the docs
        assert train[name] in tuning, train[name]
    for name in ("max_steps", "eval_every", "max_eval_samples", "workers"):  # the options tune had lost
        assert name in tune


def test_every_command_that_trains_takes_the_run_options():
    from roberta_ft.cli import RUN_OPTIONS

    for command in ("train", "pretrain", "tune"):
        options = _options(command)
        assert set(RUN_OPTIONS) - {"resume"} <= set(options), command
