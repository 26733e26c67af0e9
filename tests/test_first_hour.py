"""A new user's first hour (issue 26): the cases that were silent or unclear, one test each.

Each case either refuses with one `error:` line naming the problem and the fix (exit code 2, nothing
half-written), or works and says once, as a warning, what the user may not expect.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import write_reviews

runner = CliRunner()
TINY = ("--model", "tiny", "--epochs", "1", "--batch-size", "16")


def invoke(*args: str):
    return runner.invoke(app, ["--quiet", *args])


def one_error_line(result, *expected: str, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps log lines; compare with single spaces


@pytest.fixture(scope="module")
def pair_model(trained_dir, tmp_path_factory) -> Path:
    """The shared tiny model, recorded as a pair model: predict and serve read pairs for it."""
    path = tmp_path_factory.mktemp("pair") / "model"
    shutil.copytree(trained_dir, path, ignore=shutil.ignore_patterns("checkpoints"))
    run = json.loads((path / "run_config.json").read_text())
    run["text_pair"] = True
    (path / "run_config.json").write_text(json.dumps(run))
    return path


# 1 ---------------------------------------------------------------------------------------------------------


def test_01_a_pair_line_with_three_fields_is_refused_with_its_line(pair_model, tmp_path):
    texts = tmp_path / "pairs.txt"
    texts.write_text("the film\twas great\na dog\tbarked\textra\n", encoding="utf-8")
    output = tmp_path / "out" / "predictions.jsonl"
    result = invoke("predict", str(pair_model), str(texts), "--output", str(output))
    one_error_line(result, "line 2 has 3 tab-separated fields", "text pairs", "FIRST<TAB>SECOND")
    assert not output.exists() and not list(output.parent.glob("*"))  # no half-written or temporary file


# 2 ---------------------------------------------------------------------------------------------------------


def test_02_tabs_given_to_a_single_text_model_warn_once_with_the_count(trained_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\nthe plot\twas awful\nit was\tdull\tand long\n", encoding="utf-8")
    output = tmp_path / "predictions.jsonl"
    result = invoke("predict", str(trained_dir), str(texts), "--output", str(output))
    assert result.exit_code == 0, result.output
    log = flat(result.stderr)
    assert log.count("hold a tab") == 1, log
    assert "2 line(s) of" in log and "(first: line 2)" in log and "--text-pair-column" in log
    assert len(output.read_text().splitlines()) == 3  # still predicted, a row per line


# 3 ---------------------------------------------------------------------------------------------------------


def test_03_an_output_that_cannot_be_written_names_the_option_and_the_path(trained_dir, reviews_csv, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("")
    under_a_file = str(tmp_path / "empty.txt" / "p.csv")
    line = one_error_line(invoke("predict", str(trained_dir), str(texts), "--output", under_a_file))
    assert f"--output {under_a_file}" in line and "empty.txt is a file, not a folder" in line
    # An unwritable target: the message names what the user gave, never the temporary file.
    line = one_error_line(invoke("predict", str(trained_dir), str(texts), "--output", "/proc/p.csv"))
    assert "--output /proc/p.csv" in line and ".tmp" not in line and "--verbose" not in line
    # train's --output and eval's --report say the same, before any work.
    model_under_a_file = str(tmp_path / "empty.txt" / "model")
    line = one_error_line(invoke("train", str(reviews_csv), *TINY, "--output", model_under_a_file))
    assert f"--output {model_under_a_file}" in line and "is a file, not a folder" in line
    report = str(tmp_path / "empty.txt" / "report.json")
    line = one_error_line(invoke("eval", str(trained_dir), str(reviews_csv), "--report", report))
    assert f"--report {report}" in line


# 4 ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_04_outputs_get_the_permissions_a_plain_open_gives_under_the_umask(umask_022, tmp_path):
    data = write_reviews(tmp_path / "reviews.csv", n=48, seed=3)
    model = tmp_path / "model"
    result = invoke("train", str(data), *TINY, "--output", str(model), "--save-every", "1", "--positive-label", "neg")
    assert result.exit_code == 0, result.output
    for name in ("config.json", "model.safetensors", "run_config.json", "metrics.json", "README.md"):
        assert mode(model / name) == 0o644, name
    checkpoints = [path for path in (model / "checkpoints").iterdir() if path.is_dir()]
    assert checkpoints and all(mode(path) == 0o755 for path in checkpoints)
    assert all(mode(path) == 0o644 for path in checkpoints[0].iterdir())
    # case 12 on the same run: metrics.json says which label's F1 `f1` is.
    assert json.loads((model / "metrics.json").read_text())["positive_label"] == "neg"

    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\n", encoding="utf-8")
    predictions, report = tmp_path / "predictions.csv", tmp_path / "report.json"
    assert invoke("predict", str(model), str(texts), "--output", str(predictions)).exit_code == 0
    assert invoke("eval", str(model), str(data), "--report", str(report)).exit_code == 0
    assert mode(predictions) == 0o644 and mode(report) == 0o644
    # Replacing a file keeps its own permissions, as open(path, "w") would.
    predictions.chmod(0o640)
    assert invoke("predict", str(model), str(texts), "--output", str(predictions), "--overwrite").exit_code == 0
    assert mode(predictions) == 0o640


# 5 ---------------------------------------------------------------------------------------------------------


def test_05_an_empty_predict_input_says_0_texts_and_writes_the_header(trained_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = invoke("predict", str(trained_dir), str(empty))
    assert result.exit_code == 0 and result.stdout == ""
    assert "is empty: 0 texts predicted" in flat(result.stderr)
    output = tmp_path / "predictions.csv"
    result = invoke("predict", str(trained_dir), str(empty), "--output", str(output))
    assert result.exit_code == 0 and "0 texts predicted" in flat(result.stderr)
    assert output.read_text() == "line,text,label,probability\n"


# 6 ---------------------------------------------------------------------------------------------------------


def test_06_a_text_column_of_numbers_warns(tmp_path, caplog, monkeypatch):
    from roberta_ft.data.sources import load_file
    from roberta_ft.registry import get_task

    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("id,review,label\n" + "".join(f"{i},{i * 7}.5,{'ab'[i % 2]}\n" for i in range(8)))
    for _ in range(2):  # read, then from the data cache: the warning both times
        caplog.clear()
        load_file(numbers, task=get_task("classification"), text_column="review")
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "every text in column 'review' is a number" in warnings[0]
        assert "--text-column" in warnings[0]
    words = tmp_path / "words.csv"
    words.write_text("id,review,label\n" + "".join(f"{i},{i} stars and great,{'ab'[i % 2]}\n" for i in range(8)))
    caplog.clear()
    load_file(words, task=get_task("classification"), text_column="review")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


# 7 ---------------------------------------------------------------------------------------------------------


def test_07_ctrl_c_during_train_says_how_to_go_on_and_the_advice_works(tmp_path, monkeypatch):
    from roberta_ft import checkpoint

    data = write_reviews(tmp_path / "reviews.csv", n=48, seed=4)
    model = tmp_path / "model"
    save = checkpoint.Checkpointer.save

    def save_then_interrupt(self, **kwargs):
        save(self, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_interrupt)
    command = ["train", str(data), *TINY, "--epochs", "2", "--output", str(model), "--save-every", "2"]
    result = invoke(*command)
    assert result.exit_code == 130 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.strip().splitlines()[-1]]  # one error line, the last (after the tiny warning)
    assert "interrupted; the last checkpoint" in errors[0] and "re-run the same command with --resume" in errors[0]
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    result = invoke(*command, "--resume")
    assert result.exit_code == 0, result.output
    assert json.loads((model / "run_config.json").read_text())["status"] == "complete"


def test_07_ctrl_c_before_a_checkpoint_does_not_suggest_resume(tmp_path):
    from roberta_ft.cli import _interrupted_run

    assert (
        _interrupted_run(str(tmp_path / "nothing"))
        == "interrupted before anything was written (re-run the same command)"
    )
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "run_config.json").write_text("{}")
    said = _interrupted_run(str(tmp_path / "started"))
    assert "--overwrite" in said and "--resume" not in said


# 8 ---------------------------------------------------------------------------------------------------------


class LiveStream(io.StringIO):
    """A terminal as predict sees it: records how many rows had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed_at: list[int] = []

    def isatty(self) -> bool:
        return True

    def flush(self) -> None:
        self.flushed_at.append(self.getvalue().count("\n"))


def test_08_predict_to_a_pipe_or_terminal_flushes_rows_as_they_come(trained_dir, tmp_path):
    from roberta_ft.config import PredictConfig
    from roberta_ft.predict import _is_live, predict

    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\n" * 100, encoding="utf-8")
    stream = LiveStream()
    result = predict(PredictConfig(model_dir=str(trained_dir), input=str(texts), batch_size=8), stdout=stream)
    assert result.num_lines == 100 and stream.getvalue().count("\n") == 100
    assert stream.flushed_at[0] == 8  # the first rows show after one batch, not after --chunk-lines
    assert [n for n in stream.flushed_at if n] == [8, 24, 56, 100]
    read, write = os.pipe()
    try:
        with os.fdopen(write, "w") as pipe:
            assert _is_live(pipe)
    finally:
        os.close(read)
    with open(tmp_path / "file.txt", "w") as regular:
        assert not _is_live(regular)


# 9 ---------------------------------------------------------------------------------------------------------


def test_09_quiet_and_verbose_are_taken_after_the_command_too(trained_dir, tmp_path):
    import typer

    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\n", encoding="utf-8")
    output = tmp_path / "predictions.jsonl"
    loud = runner.invoke(app, ["predict", str(trained_dir), str(texts), "-o", str(output)])
    assert loud.exit_code == 0 and "1 lines ->" in flat(loud.stderr)
    quiet = runner.invoke(app, ["predict", str(trained_dir), str(texts), "-o", str(output), "--overwrite", "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
    group = typer.main.get_group(app)
    # An option's value and what follows `--` stay where they are.
    assert group.global_flags_first(["train", "d.csv", "--label-separator", "-q", "-v", "--", "-q"]) == [
        "-v", "train", "d.csv", "--label-separator", "-q", "--", "-q"
    ]  # fmt: skip


# 10 --------------------------------------------------------------------------------------------------------


def test_10_result_tables_are_not_squeezed_when_stdout_is_not_a_terminal(capsys, monkeypatch):
    from roberta_ft.console import print_results, tune_table

    monkeypatch.delenv("COLUMNS", raising=False)
    reason = "pruned at epoch 1: below the median of the other trials at that epoch"
    trials = [
        {
            "number": n,
            "params": {"learning_rate": 1e-5 * (n + 1), "per_device_batch_size": 16, "warmup_ratio": 0.06},
            "value": 0.5 + n / 100,
            "state": "pruned" if n else "complete",
            "epochs": 3,
            "seconds": 12.5,
            "reason": reason if n else None,
        }
        for n in range(3)
    ]
    result = {
        "study": "roberta-ft",
        "metric": "validation_accuracy",
        "direction": "maximize",
        "counts": {"complete": 1, "pruned": 2, "failed": 0},
        "epochs_run": 9,
        "space": {"parameters": {"learning_rate": {}, "per_device_batch_size": {}, "warmup_ratio": {}}},
        "trials": trials,
        "best": {"number": 0},
    }
    print_results(tune_table(result))
    lines = capsys.readouterr().out.splitlines()
    assert any("per_device_batch_size" in line and "validation_accuracy" in line for line in lines)  # one header
    assert sum(reason in line for line in lines) == 2  # each trial whole on one line
    assert max(len(line) for line in lines) > 80


# 11 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [False, True], ids=["texts", "pairs"])
def test_11_the_openapi_schema_is_the_served_models(trained_dir, pair_model, pair):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from roberta_ft import inference
    from roberta_ft.config import ServeConfig
    from roberta_ft.serve import Service, build_app

    model_dir = pair_model if pair else trained_dir
    config = ServeConfig(model_dir=str(model_dir), precision="fp32", max_texts=5, max_wait_ms=0)
    service = Service(lambda: inference.load(model_dir, **inference.load_options(config)), config)
    with TestClient(build_app(service)) as client:
        body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
        schema = body["application/json"]["schema"]
        key, other = ("pairs", "texts") if pair else ("texts", "pairs")
        assert schema["required"] == [key] and other not in schema["properties"]
        assert schema["additionalProperties"] is False
        assert schema["properties"][key]["maxItems"] == 5 and schema["properties"][key]["minItems"] == 1
        assert "threshold" not in schema["properties"]  # not a multi-label model
        assert schema["properties"]["top_k"]["maximum"] == 2
        for _ in range(300):  # the model loads in the background
            if client.get("/health").status_code == 200:
                break
            import time

            time.sleep(0.05)
        # Every published example is a request the server takes; the other key is refused.
        for example in body["application/json"]["examples"].values():
            assert client.post("/predict", json=example["value"]).status_code == 200, example
        refused = {other: [["a", "b"]] if other == "pairs" else ["a"]}
        assert client.post("/predict", json=refused).status_code == 422


# 12 --------------------------------------------------------------------------------------------------------


def test_12_the_binary_f1_names_its_positive_label_and_it_can_be_chosen(trained_dir, reviews_csv, tmp_path):
    reports = {}
    for positive in (None, "neg"):
        path = tmp_path / f"report-{positive}.json"
        args = ["--positive-label", positive] if positive else []
        result = invoke("eval", str(trained_dir), str(reviews_csv), "--report", str(path), *args)
        assert result.exit_code == 0, result.output
        reports[positive] = json.loads(path.read_text())
    default, chosen = reports[None], reports["neg"]
    assert default["positive_label"] == "pos" and chosen["positive_label"] == "neg"
    # `f1` is the per-class F1 of the label named, and the other metrics do not move.
    assert default["metrics"]["f1"] == pytest.approx(default["report"]["per_class"]["pos"]["f1"])
    assert chosen["metrics"]["f1"] == pytest.approx(chosen["report"]["per_class"]["neg"]["f1"])
    for name in ("accuracy", "macro_f1", "mcc"):
        assert chosen["metrics"][name] == pytest.approx(default["metrics"][name])
    one_error_line(
        invoke("eval", str(trained_dir), str(reviews_csv), "--positive-label", "positive"),
        "--positive-label 'positive' is not a label",
        "'neg', 'pos'",
    )
    assert "positive_label" in (Path(__file__).parents[1] / "docs" / "data-formats.md").read_text()


def test_12_positive_label_is_refused_for_other_kinds_before_any_work(reviews_csv, tmp_path):
    output = tmp_path / "out"
    result = invoke("train", str(reviews_csv), *TINY, "--multi-label", "--positive-label", "pos", "-o", str(output))
    one_error_line(result, "--positive-label applies to a single-label classifier of two labels")
    assert not output.exists()


# 13 --------------------------------------------------------------------------------------------------------


def test_13_label_columns_by_common_names_and_a_ready_to_paste_suggestion(tmp_path):
    from roberta_ft.data.columns import resolve_columns
    from roberta_ft.errors import DataError

    assert resolve_columns(["claim", "verdict"]).label == "verdict"
    assert resolve_columns(["headline", "topic"]) == resolve_columns(["headline", "topic"], label="topic")
    assert resolve_columns(["text", "topic", "sentiment"]).label == "sentiment"  # a well-known name wins
    with pytest.raises(DataError, match="pass --label-column topic or --label-column genre"):
        resolve_columns(["text", "topic", "genre"])
    with pytest.raises(DataError, match="pass --label-column 'gold answer' if that column holds them"):
        resolve_columns(["text", "gold answer"])

    data = tmp_path / "claims.csv"
    data.write_text("review,judgement\n" + "the film was great,yes\nthe plot was dull,no\n" * 10)
    output = tmp_path / "out"
    line = one_error_line(invoke("train", str(data), *TINY, "-o", str(output)))
    assert "cannot tell which column" in line and "pass --label-column judgement" in line
    assert not output.exists()
