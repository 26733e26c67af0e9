"""`roberta-ft tune`: a study of normal training runs, pruning, continuing after kill -9, shared storage.

The studies are tiny (the `tiny` model, a few hundred rows, 1-3 epochs per trial). The kill -9 and the
two-process tests run real `python -m roberta_ft tune` processes, as tests/test_resume.py does.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.errors import ConfigError
from tests.helpers import write_reviews

runner = CliRunner()
# The same in every trial: the CPU in fp32, so that a run is the same run wherever it happens.
RUN = ["--model", "tiny", "--device", "cpu", "--precision", "fp32"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def trial_dirs(root: Path) -> list[int]:
    folder = root / "trials"
    return sorted(int(p.name) for p in folder.iterdir()) if folder.is_dir() else []


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def tune_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "roberta_ft", "--quiet", "tune", *args]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("tune") / "reviews.csv", n=80, seed=3)


@pytest.fixture(scope="module")
def reviews_240(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("tune") / "reviews.csv", n=240, seed=3)


def space_file(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------- a small study


def test_a_small_study_writes_trials_tune_json_pictures_and_a_best_model(reviews, tmp_path):
    from transformers import pipeline

    out = tmp_path / "study"
    args = ["tune", str(reviews), "-o", str(out), *RUN, "--epochs", "2", "--batch-size", "16", "--trials", "3"]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == read_json(out / "tune.json")
    assert document["status"] == "complete" and document["counts"]["done"] == 3
    assert document["metric"] == "accuracy" and document["direction"] == "maximize"
    # The flags given are fixed; the wide space searches the rest.
    assert document["fixed"] == {"epochs": 2, "batch_size": 16}
    assert set(document["space"]["parameters"]) == {"learning_rate", "warmup_ratio", "weight_decay", "seed"}
    trials = document["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2] == trial_dirs(out)
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 3
    for trial in trials:
        folder = out / "trials" / f"{trial['number']:03d}"
        run = read_json(folder / "run_config.json")
        assert run["status"] == "complete" and run["config"]["learning_rate"] == trial["params"]["learning_rate"]
        # Every trial holds out the same validation rows, whatever seed it searched.
        assert run["config"]["split_seed"] == 42 and run["config"]["seed"] == trial["params"]["seed"]
        assert not (folder / "checkpoints").exists()  # an ended trial keeps its model, not its checkpoints
        assert trial["state"] == "complete" and trial["epochs"] == 2 and trial["seconds"] > trial["train_seconds"] > 0
        assert trial["value"] == read_json(folder / "metrics.json")["best"]["accuracy"]
    best = document["best"]
    assert best["value"] == max(t["value"] for t in trials)
    assert read_json(out / "best" / "trial.json")["number"] == best["number"] == document["best"]["number"]
    assert document["best_model_dir"] == str(out / "best")
    classifier = pipeline("text-classification", model=str(out / "best"), device="cpu")
    assert classifier("the movie was great and the cast was great")[0]["label"] in ("pos", "neg")
    for picture in ("optimization_history.png", "param_importances.png"):
        assert (out / picture).stat().st_size > 1000

    # The same command again: the study is complete, nothing runs, the table is printed.
    again = invoke(*args)
    assert again.exit_code == 0 and "3 complete" in again.stdout and " * " in again.stdout
    assert len(read_json(out / "tune.json")["trials"]) == 3
    # Other settings are not the same study: refused before any work, naming what changed.
    changed = invoke(*args[:-6], "--epochs", "3", "--batch-size", "16", "--trials", "3")
    assert changed.exit_code == 2 and "was made with other settings (--epochs was 2, now 3)" in changed.output
    other_name = invoke(*args, "--study-name", "other")
    assert other_name.exit_code == 2 and "holds study 'roberta-ft', not 'other'" in other_name.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = invoke("tune", str(reviews), "-o", str(tmp_path / "busy"), *RUN, "--trials", "1")
    assert busy.exit_code == 2 and "is not empty and holds no tune study" in busy.output
    # --overwrite starts a new study.
    fresh = invoke(*args[:-2], "--trials", "1", "--overwrite", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert [t["number"] for t in json.loads(fresh.stdout)["trials"]] == [0] == trial_dirs(out)


# ---------------------------------------------------------------------------------------------- pruning


def test_pruning_stops_hopeless_trials_after_an_epoch_and_keeps_their_model(reviews_240, tmp_path):
    # The wide space starts at the defaults (tiny: 1e-3, which learns these reviews in two epochs); a
    # trial behind it after epoch 1 or 2 is stopped there by successive halving.
    out = tmp_path / "study"
    common = [str(reviews_240), *RUN, "--epochs", "3", "--batch-size", "8", "--sampler-seed", "0", "--trials", "3"]
    result = invoke("tune", *common, "-o", str(out), "--pruner", "successive-halving", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    first = document["trials"][0]
    assert first["params"] == {"learning_rate": 1e-3, "warmup_ratio": 0.06, "weight_decay": 0.1, "seed": 42}
    assert first["state"] == "complete" and first["value"] > 0.9
    pruned = [t for t in document["trials"] if t["state"] == "pruned"]
    assert pruned, document["trials"]
    for trial in pruned:
        stopped = trial["epochs"]
        assert stopped < 3 and trial["reason"] == f"pruned at epoch {stopped}"
        assert trial["intermediate"][str(stopped)] < first["intermediate"][str(stopped)]
        folder = out / "trials" / f"{trial['number']:03d}"
        run = read_json(folder / "run_config.json")
        assert run["status"] == "pruned" and run["stopped"].startswith(f"pruned at epoch {stopped} (accuracy ")
        # Stopped between epochs: the best model so far is a whole model dir, nothing half-written.
        assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
        assert not list(folder.glob(".*"))
    assert document["epochs_run"] == sum(t["epochs"] for t in document["trials"]) < 3 * len(document["trials"])


# ------------------------------------------------------------------------------------- kill -9, re-run


@pytest.mark.slow
def test_a_study_killed_mid_trial_continues_with_the_finished_trials_kept(reviews, tmp_path):
    out = tmp_path / "study"
    args = [str(reviews), "-o", str(out), *RUN, "--epochs", "2", "--batch-size", "8", "--save-every", "3"]
    args += ["--trials", "3", "--sampler-seed", "1"]
    log = tmp_path / "killed.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(tune_command(*args), env=environment(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 240
            # Kill trial 1 as soon as it has a checkpoint to be resumed from.
            while not list((out / "trials" / "001" / "checkpoints").glob("step-*")):
                assert process.poll() is None, f"the study ended before trial 1 had a checkpoint: {log.read_text()}"
                assert time.monotonic() < deadline, "timed out waiting for trial 1's checkpoint"
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    before = read_json(out / "tune.json")
    assert [t["state"] for t in before["trials"]] == ["complete"]  # rewritten after each trial: trial 0's
    kept = hashlib.sha256((out / "trials" / "000" / "model.safetensors").read_bytes()).hexdigest()

    result = invoke("tune", *args, "--json")  # the same command line, in this process
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    trials = {t["number"]: t for t in document["trials"]}
    assert trials[0]["state"] == "complete" and trials[0]["value"] == before["trials"][0]["value"]
    assert hashlib.sha256((out / "trials" / "000" / "model.safetensors").read_bytes()).hexdigest() == kept
    # Trial 1 was interrupted; trial 2 is the same settings, resumed from trial 1's checkpoint.
    assert trials[1]["state"] == "interrupted" and "continued as trial 2" in trials[1]["reason"]
    assert trials[2]["continues"] == 1 and trials[2]["params"] == trials[1]["params"]
    assert trials[2]["state"] == "complete" and trials[2]["epochs"] == 2
    assert "resumed_from" in read_json(out / "trials" / "002" / "run_config.json")
    assert not (out / "trials" / "001").exists()  # its directory became trial 2's
    assert document["counts"]["done"] == 3 and [t["state"] for t in trials.values()].count("complete") == 3


def test_ctrl_c_queues_the_running_trial_again(reviews, tmp_path, monkeypatch):
    from roberta_ft import train as train_module
    from roberta_ft.config import TrainConfig, TuneConfig
    from roberta_ft.tune import tune

    settings = TrainConfig(
        data=str(reviews), output=str(tmp_path / "s"), model="tiny", device="cpu", precision="fp32", epochs=1
    )
    config = TuneConfig(train=settings, trials=1, sampler_seed=3)
    real = train_module.train

    def interrupted(config, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(config)
    states = [(t["state"], t["reason"]) for t in read_json(tmp_path / "s" / "tune.json")["trials"]]
    assert states == [("interrupted", "interrupted (Ctrl-C)"), ("waiting", None)]
    monkeypatch.setattr(train_module, "train", real)
    trials = tune(config).trials  # the same call again: the queued copy runs, with the same settings
    assert [t["state"] for t in trials] == ["interrupted", "complete"]
    assert trials[1]["params"] == trials[0]["params"] and trials[1]["reason"] is None


# ---------------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_processes_on_one_sqlite_study_run_disjoint_trials(reviews_240, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = [str(reviews_240), *RUN, "--epochs", "1", "--batch-size", "8", "--trials", "4", "--storage", storage]
    outputs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    processes, logs = [], []
    for out in outputs:
        log = open(tmp_path / f"{out.name}.txt", "w")
        logs.append(log)
        command = tune_command(*common, "-o", str(out))
        processes.append(subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=log))
    for process, log in zip(processes, logs, strict=True):
        process.wait(timeout=400)
        log.close()
        assert process.returncode == 0, Path(log.name).read_text()
    ran = [trial_dirs(out) for out in outputs]
    assert not set(ran[0]) & set(ran[1]), ran  # no trial run twice
    assert all(ran), f"one process ran no trial: {ran}"
    # The study itself (each process's tune.json is the study as that process last saw it).
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="roberta-ft", storage=storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert sorted(ran[0] + ran[1]) == sorted(t.number for t in finished) and len(finished) >= 4
    assert len(study.trials) == len(finished)  # nothing left running, failed or waiting
    pids = {t.number: t.user_attrs["worker"]["pid"] for t in finished}
    assert {pids[n] for n in ran[0]} == {processes[0].pid} and {pids[n] for n in ran[1]} == {processes[1].pid}
    # Re-running a finished study runs nothing and brings a machine's tune.json up to date.
    refreshed = invoke("tune", *common, "-o", str(outputs[0]), "--json")
    assert refreshed.exit_code == 0, refreshed.output
    assert sorted(t["number"] for t in json.loads(refreshed.stdout)["trials"]) == sorted(pids)
    assert trial_dirs(outputs[0]) == ran[0]


# -------------------------------------------------------------------------------------- failures


def test_failed_trials_are_recorded_and_the_study_goes_on(reviews, tmp_path):
    # --gradient-accumulation 3 does not divide --batch-size 16: that trial fails, the other runs.
    space = space_file(tmp_path / "space.toml", "grid = true\n[gradient_accumulation]\nchoices = [1, 3]\n")
    out = tmp_path / "study"
    common = [str(reviews), *RUN, "--epochs", "1", "--batch-size", "16", "--space"]
    result = invoke("tune", *common, space, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    trials = {t["params"]["gradient_accumulation"]: t for t in json.loads(result.stdout)["trials"]}
    assert trials[1]["state"] == "complete"
    assert trials[3]["state"] == "failed" and "is not a multiple of --gradient-accumulation 3" in trials[3]["reason"]

    # A study whose every trial fails ends with one clear line.
    hopeless = space_file(tmp_path / "hopeless.toml", "grid = true\n[gradient_accumulation]\nchoices = [3, 5]\n")
    failed = invoke("tune", *common, hopeless, "-o", str(tmp_path / "hopeless"))
    lines = failed.output.strip().splitlines()
    assert failed.exit_code == 1 and lines[-1].startswith("error: every trial of study 'roberta-ft' failed (2 failed")
    assert "is not a multiple of --gradient-accumulation" in lines[-1]
    assert [t["state"] for t in read_json(tmp_path / "hopeless" / "tune.json")["trials"]] == ["failed", "failed"]


# ------------------------------------------------------------------------------------ bad spaces


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[learning_rat]\nlow = 1e-5\nhigh = 1e-3\n", "unknown setting 'learning_rat' in space file"),
        ("[learning_rat]\nlow = 1e-5\nhigh = 1e-3\n", "did you mean 'learning_rate'?"),
        ("[output]\nchoices = ['a', 'b']\n", "'output' does not change what a trial computes"),
        ("[metric_for_best]\nchoices = ['f1', 'accuracy']\n", "decides what trials are measured on"),
        ("[learning_rate]\nlow = 1e-3\nhigh = 1e-5\n", "low 0.001 must be less than high 1e-05"),
        ("[learning_rate]\nlow = 0.0\nhigh = 1e-3\nlog = true\n", "a log range needs low > 0"),
        ("[learning_rate]\nlo = 1e-5\nhigh = 1e-3\n", "unknown key 'lo' (did you mean 'low'?"),
        ("[batch_size]\nchoices = [16, 32.5]\n", "choice 32.5 is not an int"),
        ("[batch_size]\nlow = 8.0\nhigh = 32\n", "low 8.0 is not an int"),
        ("[long_text]\nlow = 1\nhigh = 2\n", "long_text is a str setting"),
        ("grid = true\n[learning_rate]\nlow = 1e-5\nhigh = 1e-3\n", "grid = true needs choices for every setting"),
        ("learning_rate = 3\n", "'learning_rate' must be a table of a range or choices"),
        ("[learning_rate\n", "cannot parse space file"),
    ],
)
def test_bad_space_files_are_refused_with_one_line(tmp_path, text, expected):
    from roberta_ft.search_space import read_space_file

    path = space_file(tmp_path / "space.toml", text)
    with pytest.raises(ConfigError) as error:
        read_space_file(path)
    assert expected in error.value.one_line() and "\n" not in error.value.one_line()


def test_bad_tune_options_fail_before_any_work(reviews, tmp_path, monkeypatch):
    space = space_file(tmp_path / "space.toml", "[learning_rat]\nlow = 1e-5\nhigh = 1e-3\n")
    out = tmp_path / "study"
    cases = [
        (["--space", space], "unknown setting 'learning_rat' in space file"),
        (["--space", "bogus"], "--space 'bogus' is neither a named space nor a .toml file"),
        (["--timeout", "soon"], "--timeout 'soon' is not a duration"),
        (["--trials", "0"], "--trials must be a positive integer"),
        (["--storage", "study.db"], "is not a database URL"),
        (["--space", "roberta-paper", "--learning-rate", "1e-5", "--batch-size", "16", "--seed", "1"], "nothing left"),
    ]
    for extra, expected in cases:
        result = invoke("--quiet", "tune", str(reviews), "-o", str(out), *RUN, *extra)
        assert result.exit_code == 2 and expected in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    assert invoke("tune", "--help").exit_code == 0
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the extra were not installed
    result = invoke("tune", str(reviews), "-o", str(out), *RUN)
    assert result.exit_code == 2 and 'pip install "roberta-ft[tune]"' in result.output


def test_named_spaces(reviews):
    from roberta_ft.config import TrainConfig
    from roberta_ft.search_space import load_space

    paper = load_space("roberta-paper", TrainConfig(data=str(reviews), output="x").resolved())
    assert paper.grid and paper.grid_size == 30
    assert {p.name: p.choices for p in paper.parameters} == {
        "learning_rate": (1e-5, 2e-5, 3e-5),
        "batch_size": (16, 32),
        "seed": (1, 2, 3, 4, 5),
    }
    # wide: around the run's own learning rate (2e-5 pretrained, 1e-3 tiny) and epochs.
    for model, rate, epochs in (("roberta-base", 2e-5, (2, 6)), ("tiny", 1e-3, (5, 20))):
        wide = {
            p.name: p
            for p in load_space("wide", TrainConfig(data="d.csv", output="x", model=model).resolved()).parameters
        }
        assert wide["learning_rate"].log and wide["learning_rate"].low == pytest.approx(rate / 10)
        assert (wide["epochs"].low, wide["epochs"].high) == epochs
        assert set(wide) == {"learning_rate", "batch_size", "warmup_ratio", "weight_decay", "epochs", "seed"}
