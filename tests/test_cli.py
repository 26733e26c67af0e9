"""Every command through typer's CliRunner: output shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import write_reviews

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip().startswith("roberta-ft ")
    for command in ([], ["train"], ["eval"], ["predict"], ["serve"], ["tasks"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from roberta_ft.cli import app; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_dash_m_is_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "roberta_ft", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("roberta-ft ")


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path):
    data = str(write_reviews(tmp_path / "r.csv", n=20))
    cases = [
        (["train", data, "--batch-size", "abc"], "invalid value for '--batch-size'"),
        (["train", data, "--bogus-flag"], "no such option: --bogus-flag"),
        (["predict"], "missing argument"),
        (["eval", "--precision", "fp8"], "invalid value for '--precision'"),
    ]
    for args, expected in cases:
        result = subprocess.run([sys.executable, "-m", "roberta_ft", *args], capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (args, result.stderr)
        assert "--help" in lines[0] and "Traceback" not in result.stderr and result.stdout == ""
    through_runner = invoke("train", data, "--epochs", "two")
    assert through_runner.exit_code == 2 and through_runner.output.strip().startswith(
        "error: invalid value for '--epochs'"
    )
    no_args = subprocess.run([sys.executable, "-m", "roberta_ft"], capture_output=True, text=True)
    assert no_args.returncode == 2 and "Usage" in no_args.stdout + no_args.stderr  # bare command: the help


def test_tasks_lists_builtin_plugins():
    result = invoke("tasks", "--json")
    assert result.exit_code == 0
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"classification", "sentiment", "nli", "topic", "glue/sst2"} <= names


def test_train_eval_predict_through_the_cli(tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=160, seed=4)
    out = tmp_path / "model"
    result = invoke(
        "train", str(data), "--output", str(out), "--model", "tiny", "--epochs", "4", "--batch-size", "16", "--json"
    )
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["best"]["accuracy"] >= 0.8 and trained["train_samples_per_second"] > 0

    result = invoke("eval", str(out), str(data), "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["task"] == "classification" and evaluated["split"] == "validation"
    assert evaluated["num_examples"] == 160 and set(evaluated["metrics"]) >= {"accuracy", "f1", "macro_f1"}

    result = invoke("eval", str(out), str(data))
    assert result.exit_code == 0 and "accuracy" in result.stdout and "Confusion matrix" in result.stdout

    texts = tmp_path / "texts.txt"
    texts.write_text("the movie was great and it was great\n\nthe plot was awful and it felt awful\n")
    result = invoke("predict", str(out), str(texts))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "\t"  # the empty input line keeps its place
    assert lines[0].split("\t")[0] == "pos" and lines[2].split("\t")[0] == "neg"

    target = tmp_path / "predictions.jsonl"
    result = invoke("predict", str(out), str(texts), "--output", str(target), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_lines"] == 3
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3] and rows[0]["label"] == "pos" and "label" not in rows[1]

    result = invoke("predict", str(out), str(texts), "--output", str(target))
    assert result.exit_code == 2 and "already exists" in result.output  # never overwritten silently


def test_print_config_merges_file_and_flags(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "tiny"\nepochs = 5\nbatch_size = 8\n')
    result = invoke(
        "train", "data.csv", "-o", "out", "--config", str(config), "--epochs", "2", "--print-config", "--json"
    )
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert resolved["epochs"] == 2 and resolved["batch_size"] == 8 and resolved["learning_rate"] == 1e-3


def test_unknown_config_key_is_named(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: tiny\nepoch: 5\n")
    result = invoke("train", "data.csv", "-o", "out", "--config", str(config))
    assert result.exit_code == 2 and "'epoch'" in result.output and "epochs" in result.output


def test_unreachable_model_is_one_line_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_reviews(tmp_path / "r.csv", n=40)
    result = invoke("train", str(data), "-o", str(tmp_path / "o"), "--model", "roberta-base")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "cannot load model 'roberta-base'" in message and "--model tiny" in message


def test_bad_hyperparameter_is_rejected_before_any_work(tmp_path):
    data = write_reviews(tmp_path / "r.csv", n=40)
    result = invoke("train", str(data), "-o", str(tmp_path / "o"), "--model", "tiny", "--lr", "0")
    assert result.exit_code == 2 and "--learning-rate must be a positive number" in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()
