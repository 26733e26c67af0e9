"""The catalogue of bad inputs, through the real CLI: one clear line, exit code 2, no traceback, nothing lost.

Each failing case checks that stderr (under --quiet) is exactly one non-empty line, starting with
"error:", that names the problem; that no traceback is shown; and that no output directory or file is
left behind, half-written or otherwise. The cases that must simply work (a BOM, --encoding latin-1,
--drop-invalid, a text far over --max-length, empty lines given to predict) are checked for that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import TINY, TRAIN_ERRORS, assert_one_clear_line, invoke, write_bad_inputs

runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Small files, each with one problem, built from a good file."""
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def model_without_labels(trained_dir, tmp_path_factory) -> Path:
    """A trained model dir whose config.json lost id2label/label2id."""
    path = tmp_path_factory.mktemp("nolabels") / "model"
    shutil.copytree(trained_dir, path)
    config = json.loads((path / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def short_checkpoint(tmp_path_factory) -> Path:
    """A local pretrained RoBERTa checkpoint with only 64 positions."""
    from transformers import RobertaConfig, RobertaModel

    from roberta_ft.modeling import train_tiny_tokenizer

    path = tmp_path_factory.mktemp("short") / "roberta"
    tokenizer = train_tiny_tokenizer(["the film was great and the plot was awful"] * 20)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=66,
    )
    RobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("case, arguments, expected", TRAIN_ERRORS, ids=[case[0] for case in TRAIN_ERRORS])
def test_train_refuses_bad_input(work, tmp_path, case, arguments, expected):
    output = tmp_path / "out"
    args = [a.format(w=work, o=output) for a in arguments]
    result = invoke("train", *TINY, *args, "--output", str(output))
    assert_one_clear_line(result, *expected)
    assert not output.exists()  # nothing created, nothing half-written


def test_max_length_over_a_pretrained_models_positions(work, short_checkpoint, tmp_path):
    output = tmp_path / "out"
    result = invoke(
        "train", f"{work}/good.csv", "-o", str(output), "--model", str(short_checkpoint), "--max-length", "128"
    )
    assert_one_clear_line(result, "--max-length 128 is more than model", "(64 tokens)", "--max-length 64")
    assert not output.exists()


def test_a_bad_input_with_overwrite_keeps_the_previous_model(work, trained_dir, tmp_path):
    output = tmp_path / "model"
    shutil.copytree(trained_dir, output)
    before = sorted(p.name for p in output.iterdir())
    result = invoke("train", f"{work}/empty_texts.csv", "-o", str(output), *TINY, "--overwrite")
    assert_one_clear_line(result, "empty text")
    assert sorted(p.name for p in output.iterdir()) == before


def test_an_existing_output_is_never_overwritten_silently(work, trained_dir, tmp_path):
    output = tmp_path / "model"
    shutil.copytree(trained_dir, output)
    result = invoke("train", f"{work}/good.csv", "-o", str(output), *TINY)
    assert_one_clear_line(result, "already exists and is not empty", "--overwrite")


@pytest.mark.parametrize(
    "command, expected",
    [
        ("eval", ["config.json has no label names (only LABEL_0, LABEL_1)", "trained with labels neg, pos"]),
        ("predict", ["config.json has no label names (only LABEL_0, LABEL_1)", "restore id2label"]),
    ],
)
def test_a_model_dir_without_label_names(work, model_without_labels, tmp_path, command, expected):
    data = f"{work}/good.csv" if command == "eval" else f"{work}/texts.txt"
    output = tmp_path / "predictions.csv"
    extra = ["--output", str(output)] if command == "predict" else []
    assert_one_clear_line(invoke(command, str(model_without_labels), data, *extra), *expected)
    assert not output.exists() and not list(tmp_path.iterdir())


def test_predict_input_missing(trained_dir, tmp_path):
    output = tmp_path / "predictions.jsonl"
    result = invoke("predict", str(trained_dir), str(tmp_path / "missing.txt"), "--output", str(output))
    assert_one_clear_line(result, "file not found")
    assert not list(tmp_path.iterdir())


def test_eval_with_a_task_of_other_labels(work, trained_dir):
    result = invoke("eval", str(trained_dir), f"{work}/good.csv", "--task", "nli")
    assert_one_clear_line(result, "the model has 2 labels (neg, pos) but task 'nli' has 3")


# ---------------------------------------------------------------------------------------------- just works


def train_ok(*args: str):
    result = runner.invoke(app, ["train", *TINY, *args])  # not --quiet: the log is part of the contract
    assert result.exit_code == 0, result.output
    return " ".join(result.stderr.split())  # rich wraps log lines; compare with single spaces


def test_a_utf8_bom_just_works(work, tmp_path):
    train_ok(f"{work}/bom.csv", "-o", str(tmp_path / "out"))
    run = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert run["columns"]["text"] is None and run["status"] == "complete"
    # The BOM is not part of the first column's name: the columns were picked by their names.
    assert "text column 'review'" in train_ok(f"{work}/bom.csv", "-o", str(tmp_path / "again"))


def test_encoding_latin_1_reads_the_file(work, tmp_path):
    train_ok(f"{work}/latin1.csv", "-o", str(tmp_path / "out"), "--encoding", "latin-1")
    run = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert run["num_train_examples"] + run["num_validation_examples"] == 61  # every row, the latin-1 one too


def test_drop_invalid_skips_and_counts_the_bad_rows(work, tmp_path):
    log = train_ok(f"{work}/empty_texts.csv", "-o", str(tmp_path / "out"), "--drop-invalid")
    assert "skipped 2 row(s) with an empty text (lines 6, 7) (--drop-invalid)" in log
    run = json.loads((tmp_path / "out" / "run_config.json").read_text())
    assert run["num_train_examples"] + run["num_validation_examples"] == 60


def test_a_text_far_over_max_length_is_truncated_and_reported_once(work, tmp_path):
    log = train_ok(f"{work}/long.csv", "-o", str(tmp_path / "out"), "--max-length", "64")
    assert log.count("are truncated") == 1 and "1 of " in log and "reach --max-length 64" in log


def test_predict_keeps_empty_lines_as_empty_rows(trained_dir, work, tmp_path):
    output = tmp_path / "predictions.jsonl"
    result = invoke("predict", str(trained_dir), f"{work}/texts.txt", "--output", str(output))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3, 4]
    assert "label" in rows[0] and "label" in rows[2] and "label" not in rows[1] and "label" not in rows[3]
