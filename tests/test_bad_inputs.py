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
from tests.conftest import write_reviews

runner = CliRunner()
TINY = ("--model", "tiny", "--epochs", "1", "--batch-size", "16")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Small files, each with one problem, built from a good file."""
    folder = tmp_path_factory.mktemp("bad")
    good = write_reviews(folder / "good.csv", n=60, seed=1)
    rows = good.read_text().splitlines()  # header "review,sentiment", then "text,label" rows
    files = {
        "empty.csv": "",
        "header.csv": "review,sentiment\n",
        "tabs.csv": "\n".join(row.replace(",", "\t") for row in rows) + "\n",
        "empty_texts.csv": "\n".join(rows[:5] + [",pos", '"   ",neg'] + rows[5:]) + "\n",
        "no_labels.csv": "\n".join(rows[:5] + ["the film was great,", "the plot was dull,nan"] + rows[5:]) + "\n",
        "one_class.csv": "\n".join([rows[0]] + [row for row in rows[1:] if row.endswith(",pos")]) + "\n",
        "validation.csv": "\n".join(rows[:6] + ["the film was fine,meh"]) + "\n",
        "duplicate.csv": "\n".join(["review,review"] + rows[1:]) + "\n",
        "long.csv": "\n".join(rows[:3] + ['"' + "great film " * 20_000 + '",pos'] + rows[3:]) + "\n",
        "texts.txt": "the movie was great\n\nthe plot was awful\n\n",
        "settings.toml": 'model = "tiny"\nlearning_rat = 0.1\n',
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    latin = "\n".join(rows[:3] + ["caf\xe9 was great and great,pos"] + rows[3:]) + "\n"
    (folder / "latin1.csv").write_bytes(latin.encode("latin-1"))
    (folder / "bom.csv").write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    return folder


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


def invoke(*args: str):
    return runner.invoke(app, ["--quiet", *args])


def assert_one_clear_line(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# (case, arguments with {w} for the work folder and {o} for the output, texts the message must contain)
TRAIN_ERRORS = [
    ("file missing", ["{w}/missing.csv"], ["file not found", "missing.csv"]),
    ("empty file", ["{w}/empty.csv"], ["empty.csv is empty"]),
    ("header only", ["{w}/header.csv"], ["has a header but no rows"]),
    ("wrong delimiter", ["{w}/tabs.csv"], ["found only one column", "tab-separated", "--format tsv"]),
    ("no such column", ["{w}/good.csv", "--text-column", "reveiw"], ["'reveiw'", "did you mean 'review'"]),
    ("no such label column", ["{w}/good.csv", "--label-column", "label"], ["'label'", "columns are: 'review'"]),
    ("empty texts", ["{w}/empty_texts.csv"], ["2 row(s) with an empty text (lines 6, 7)", "--drop-invalid"]),
    ("missing labels", ["{w}/no_labels.csv"], ["2 row(s) with no label (lines 6, 7)", "--drop-invalid"]),
    ("one class", ["{w}/one_class.csv"], ["only one class ('pos')"]),
    (
        "validation label not in training",
        ["{w}/good.csv", "--validation", "{w}/validation.csv"],
        ["validation label 'meh' (line 7) never occurs in the training data", "'neg', 'pos'"],
    ),
    ("not UTF-8", ["{w}/latin1.csv"], ["line 4 is not valid utf-8", "--encoding latin-1"]),
    ("duplicate header", ["{w}/duplicate.csv"], ["duplicate column name 'review'"]),
    ("pair task, single texts", ["{w}/good.csv", "--task", "nli"], ["task 'nli' takes text pairs"]),
    ("unknown task", ["{w}/good.csv", "--task", "sentimnt"], ["unknown task 'sentimnt'", "did you mean 'sentiment'"]),
    ("learning rate 0", ["{w}/good.csv", "--lr", "0"], ["--learning-rate must be a positive number, got 0.0"]),
    ("learning rate < 0", ["{w}/good.csv", "--lr", "-0.1"], ["--learning-rate must be a positive number"]),
    ("batch size 0", ["{w}/good.csv", "--batch-size", "0"], ["--batch-size must be a positive integer, got 0"]),
    ("max length over tiny's", ["{w}/good.csv", "--max-length", "4096"], ["--max-length 4096", "(512 tokens)"]),
    ("no GPU", ["{w}/good.csv", "--device", "cuda"], ["--device cuda was requested but no CUDA GPU"]),
    (
        "unknown config key",
        ["{w}/good.csv", "--config", "{w}/settings.toml"],
        ["unknown setting 'learning_rat'", "did you mean 'learning_rate'"],
    ),
    ("save every 0", ["{w}/good.csv", "--save-every", "0"], ["--save-every must be a positive integer"]),
    ("resume, no run", ["{w}/good.csv", "--resume"], ["--resume:", "holds no run to resume"]),
]


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
