"""What a practitioner reads around a run: --json on stdout, pictures, reports, the model card,
run_config.json, experiment tracking, shell completion and the generated CLI reference."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import write_reviews

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def one_json_document(stdout: str):
    """stdout holds exactly one JSON document (one line) and nothing else."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout[:500]
    return json.loads(stdout)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real command in a child process: anything a library prints to stdout would show up."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "roberta_ft", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("reports") / "reviews.csv", n=200, seed=5)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data) -> tuple[Path, dict]:
    """One CLI training with --json and --report-to tensorboard, shared by the tests below."""
    out = tmp_path_factory.mktemp("reports") / "model"
    result = cli(
        "train", str(data), "-o", str(out), "--model", "tiny", "--epochs", "4", "--batch-size", "16",
        "--report-to", "tensorboard", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return out, one_json_document(result.stdout)


def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    return matplotlib.image.imread(path)


def test_train_json_is_one_document_with_the_result(run):
    out, result = run
    assert result["output_dir"] == str(out) and result["best"]["accuracy"] >= 0.8
    assert "steps" not in result  # the per-step losses stay in metrics.json


def test_metrics_json_records_the_step_losses(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    steps = metrics["steps"]
    assert steps and set(steps[0]) == {"step", "epoch", "loss", "learning_rate"}
    assert [s["step"] for s in steps] == sorted({s["step"] for s in steps})  # increasing, each once
    assert steps[-1]["epoch"] == pytest.approx(4.0) and steps[-1]["step"] == metrics["epochs"][-1]["step"]
    assert all(np.isfinite(s["loss"]) and s["learning_rate"] >= 0 for s in steps)
    # Each record is the mean loss of the steps since the previous one: the epoch's mean is their weighted mean.
    first_epoch = [s for s in steps if s["epoch"] <= 1.0]
    assert (
        min(s["loss"] for s in first_epoch) <= metrics["epochs"][0]["train_loss"] <= max(s["loss"] for s in first_epoch)
    )


def test_training_pictures_are_written(run):
    out, _ = run
    curves = read_png(out / "training_curves.png")
    assert curves.shape[1] > 1.5 * curves.shape[0]  # two panels side by side
    matrix = read_png(out / "confusion_matrix.png")
    assert min(matrix.shape[:2]) > 200


def test_a_run_without_validation_draws_the_loss_panel_alone(tmp_path):
    """A few-shot run (no validation rows) has no metric to draw: one panel, not an empty second one."""
    from roberta_ft import plots

    epochs = [{"epoch": e, "step": e, "train_loss": 1.0 / e} for e in range(1, 6)]
    metrics = {"epochs": epochs, "primary_metric": "accuracy", "best": {"epoch": 5}, "steps": []}
    alone = read_png(plots.training_curves(metrics, tmp_path / "alone.png"))
    for epoch in epochs:
        epoch["accuracy"] = 0.5 + 0.1 * epoch["epoch"]
    both = read_png(plots.training_curves(metrics, tmp_path / "both.png"))
    assert alone.shape[1] < 1.5 * alone.shape[0] and both.shape[1] > 1.5 * both.shape[0]


def test_validation_report_is_the_best_epoch(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "validation_report.json").read_text())
    assert report["epoch"] == metrics["best"]["epoch"] and report["labels"] == ["neg", "pos"]
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == json.loads((out / "run_config.json").read_text())["num_validation_examples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["best"]["accuracy"])


def test_model_card_has_metadata_per_class_results_and_pictures(run):
    import yaml

    out, _ = run
    card = (out / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    metadata = yaml.safe_load(front)
    assert metadata["pipeline_tag"] == "text-classification" and metadata["library_name"] == "transformers"
    scores = {m["type"]: m["value"] for m in metadata["model-index"][0]["results"][0]["metrics"]}
    assert set(scores) >= {"accuracy", "macro_f1"} and metadata["metrics"] == list(scores)
    assert "### Per class (validation, best epoch)" in body and "| neg |" in body and "| pos |" in body
    assert "![Training curves](training_curves.png)" in body
    assert "![Confusion matrix (validation)](confusion_matrix.png)" in body
    assert 'pipeline("text-classification"' in body and "roberta-ft predict" in body
    assert str(out.parent) not in card  # no local paths in a card meant to be shared


def test_run_config_records_config_versions_device_and_data(run, data):
    import hashlib

    out, _ = run
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["config"]["epochs"] == 4 and saved["config"]["learning_rate"] == 1e-3  # resolved, not None
    assert saved["config"]["report_to"] == ["tensorboard"]
    assert {"python", "torch", "transformers", "accelerate", "numpy"} <= set(saved["versions"])
    assert saved["device"] == "cpu" and saved["precision"] in ("fp32", "bf16")
    assert len(saved["data_sha256"]) == 64
    assert saved["data_files"]["train"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert saved["data_files"]["train"]["bytes"] == data.stat().st_size


def test_tensorboard_event_files_hold_the_training_curves(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = run
    epoch_steps = [e["step"] for e in json.loads((out / "metrics.json").read_text())["epochs"]]
    events = sorted((out / "logs").rglob("events.out.tfevents.*"))
    assert events, list((out / "logs").rglob("*"))
    tags: set[str] = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
        if "eval/accuracy" in accumulator.Tags()["scalars"]:
            assert [e.step for e in accumulator.Scalars("eval/accuracy")] == epoch_steps  # one per epoch
    assert {"train/loss", "train/learning_rate", "eval/accuracy", "eval/macro_f1"} <= tags


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_missing_tracker_package_is_a_clear_error(tracker, data, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == tracker else real(name, *a))
    result = runner.invoke(
        app, ["train", str(data), "-o", str(tmp_path / "o"), "--model", "tiny", "--report-to", tracker]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"--report-to {tracker} needs the '{tracker}' package" in message and f"pip install {tracker}" in message
    assert not (tmp_path / "o").exists()


def test_unknown_tracker_is_named(data, tmp_path):
    result = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / "o"), "--report-to", "tensorbored"])
    assert result.exit_code == 2 and "'tensorbored' is not a known tracker" in " ".join(result.output.split())


def test_eval_json_and_report_files(run, data, tmp_path):
    out, _ = run
    result = cli("eval", str(out), str(data), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = one_json_document(result.stdout)
    assert evaluated["num_examples"] == 200
    recall = {name: values["recall"] for name, values in evaluated["report"]["per_class"].items()}
    assert set(recall) == {"neg", "pos"} and all(0 <= r <= 1 for r in recall.values())
    # The report lands in the model dir by default, atomically (no temporary files left behind).
    saved = json.loads((out / "eval_report.json").read_text())
    assert saved["metrics"] == evaluated["metrics"] and saved["report"] == evaluated["report"]
    assert evaluated["files"]["report"] == str(out / "eval_report.json")
    read_png(out / "eval_confusion_matrix.png")
    assert not list(out.glob(".*.tmp"))
    # The training's validation picture is not overwritten by eval's.
    assert (out / "confusion_matrix.png").read_bytes() != (out / "eval_confusion_matrix.png").read_bytes()

    target = tmp_path / "reports" / "test.json"
    result = runner.invoke(app, ["eval", str(out), str(data), "--report", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["num_examples"] == 200
    read_png(tmp_path / "reports" / "test_confusion_matrix.png")
    assert "Per class" in result.stdout and "recall" in result.stdout and "macro average" in result.stdout


def test_predict_json_without_output_holds_the_predictions(run, tmp_path):
    out, _ = run
    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great and it was great\n\nthe plot was awful and it felt awful\n")
    result = runner.invoke(app, ["predict", str(out), str(texts), "--json"])
    assert result.exit_code == 0, result.output
    document = one_json_document(result.stdout)
    assert document["num_lines"] == 3 and document["output"] is None
    rows = document["predictions"]
    assert [r["line"] for r in rows] == [1, 2, 3] and rows[0]["label"] == "pos" and rows[2]["label"] == "neg"
    assert "label" not in rows[1]


def test_predict_top_k(run, tmp_path):
    out, _ = run
    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great and it was great\n")
    result = runner.invoke(app, ["predict", str(out), str(texts), "--top-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    row = one_json_document(result.stdout)["predictions"][0]
    assert row["labels"] == ["pos", "neg"] and row["probabilities"][0] >= row["probabilities"][1]
    assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    result = runner.invoke(app, ["predict", str(out), str(texts), "--top-k", "2"])  # stdout: joined by "|"
    labels, probabilities = result.stdout.strip().split("\t")
    assert labels == "pos|neg" and len(probabilities.split("|")) == 2
    result = runner.invoke(app, ["predict", str(out), str(texts), "--top-k", "3"])
    assert result.exit_code == 2 and "more than the model's 2 labels" in " ".join(result.output.split())


def test_tasks_json_is_one_document():
    result = cli("tasks", "--json")
    assert result.returncode == 0
    assert {"classification", "glue/sst2"} <= {row["name"] for row in one_json_document(result.stdout)}


def test_print_config_json_is_one_document(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: tiny\nclass_weights: [1, 3]\nreport_to: tensorboard\nlong_text: sliding\n")
    result = runner.invoke(app, ["train", "d.csv", "-o", "o", "--config", str(config), "--print-config", "--json"])
    assert result.exit_code == 0, result.output
    resolved = one_json_document(result.stdout)
    assert resolved["class_weights"] == [1.0, 3.0] and resolved["report_to"] == ["tensorboard"]
    assert resolved["long_text"] == "sliding" and resolved["stride"] is None


def test_help_offers_shell_completion():
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    result = runner.invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0 and "_ROBERTA_FT_COMPLETE" in result.stdout


def test_completion_completes_commands_and_choices():
    def complete(words: str, index: int) -> list[str]:
        env = {"_ROBERTA_FT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        return runner.invoke(app, [], env=env, prog_name="roberta-ft").stdout.split()

    assert complete("roberta-ft tr", 1) == ["train"]
    assert complete("roberta-ft train x.csv --long-text ", 4) == ["truncate", "head-tail", "sliding"]
    assert "--multi-label" in complete("roberta-ft train x.csv --multi", 3)


def test_cli_reference_is_up_to_date():
    from roberta_ft.cli_docs import DOC, render

    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python -m roberta_ft.cli_docs --write` and commit it"
    )


def test_json_stdout_stays_clean_when_a_library_prints(monkeypatch, tmp_path):
    """A third-party library printing during the run (a tracker's banner, say) must not corrupt --json."""
    import roberta_ft.evaluate
    from roberta_ft.evaluate import EvalResult

    def noisy_evaluate(config):
        print("wandb: Tracking run with wandb version 0.0")
        return EvalResult("classification", "validation", 1, {"accuracy": 1.0}, {})

    monkeypatch.setattr(roberta_ft.evaluate, "evaluate", noisy_evaluate)
    result = runner.invoke(app, ["eval", str(tmp_path), "data.csv", "--json"])
    assert result.exit_code == 0, result.output
    assert one_json_document(result.stdout)["metrics"] == {"accuracy": 1.0}
    assert "wandb: Tracking run" in result.stderr
