"""roberta-ft audit: out-of-fold probabilities from fold train runs, confident learning, duplicates, leakage,
--clean, resume and the one-line errors. Tiny model, a few dozen rows, 2-3 folds, 1-2 epochs."""

from __future__ import annotations

import csv
import json
import random
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import AuditConfig, TrainConfig
from roberta_ft.errors import ConfigError
from tests.helpers import review

runner = CliRunner()


def _rows(n: int, seed: int, flip: float = 0.0):
    """(text, label, flipped) rows of the separable reviews task, a share `flip` of the labels flipped."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        text = f"{review(rng, label)} number {i}"
        flipped = rng.random() < flip
        rows.append((text, ("neg" if label == "pos" else "pos") if flipped else label, flipped))
    return rows


def _write_csv(path, rows, extra=True):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review", "sentiment", "source"] if extra else ["review", "sentiment"])
        for i, (text, label, *_) in enumerate(rows):
            writer.writerow([f"r{i}", text, label, "web, 2024"] if extra else [text, label])
    return path


def _config(data, output, **audit):
    train = TrainConfig(
        data=str(data), output=str(output), model="tiny", epochs=1, max_length=32, seed=3, precision="fp32"
    )
    return AuditConfig(train=train, **audit)


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """One audit through the CLI: a CSV with extra columns, conflicting duplicates, a validation and a test file
    sharing rows with it, and --clean."""
    folder = tmp_path_factory.mktemp("audit")
    rows = _rows(36, seed=1)
    rows[5] = ("The plot was GREAT, and it was great!", "pos")
    rows[9] = ("the plot was great and it was great", "neg")  # near-exact duplicate of line 7, other label
    rows[11] = ("it was dull and it felt dull", "neg")
    rows[20] = ("it was dull and it felt dull", "pos")  # exact duplicate of line 13, other label
    data = _write_csv(folder / "reviews.csv", rows)
    validation = _write_csv(folder / "validation.csv", [(rows[3][0], rows[3][1]), ("a new text was superb", "pos")])
    test = _write_csv(folder / "test.csv", [("THE PLOT WAS GREAT and it was great.", "pos"), ("unseen", "neg")])
    output, clean = folder / "out", folder / "clean.csv"
    result = runner.invoke(
        app,
        [
            "audit", str(data), "--output", str(output), "--model", "tiny", "--folds", "2", "--epochs", "1",
            "--max-length", "32", "--precision", "fp32", "--validation", str(validation), "--test", str(test), "--clean", str(clean),
            "--text-column", "review", "--label-column", "sentiment", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"data": data, "output": output, "clean": clean, "summary": summary, "rows": rows}


def test_audit_writes_its_outputs(audited):
    output, summary = audited["output"], audited["summary"]
    for name in ("label_issues.csv", "scores.csv", "audit.json", "suspects_per_class.png"):
        assert (output / name).is_file(), name
    record = json.loads((output / "audit.json").read_text())
    assert record["status"] == "complete" and record["rows"] == 36 and record["folds"] == 2
    assert set(record["noise_matrix"]) == {"neg", "pos"} and set(record["confident_joint"]) == {"neg", "pos"}
    for true in ("neg", "pos"):  # P(given | true): each true label's column sums to 1
        assert sum(record["noise_matrix"][given][true] for given in ("neg", "pos")) == pytest.approx(1, abs=1e-3)
    assert [fold["fold"] for fold in record["fold_metrics"]] == [1, 2]
    assert sum(fold["held_out_rows"] for fold in record["fold_metrics"]) == 36
    assert summary["flagged"] == record["flagged"] == sum(c["flagged"] for c in record["per_class"].values())
    with open(output / "label_issues.csv", newline="", encoding="utf-8") as handle:
        issues = list(csv.DictReader(handle))
    assert len(issues) == record["flagged"]
    assert (
        list(issues[0]) == ["line", "text", "given_label", "suggested_label", "label_quality", "fold"]
        if issues
        else True
    )
    qualities = [float(row["label_quality"]) for row in issues]
    assert qualities == sorted(qualities)  # worst first


def test_every_row_is_scored_once_by_a_model_that_never_saw_it(tmp_path, monkeypatch):
    from roberta_ft import audit as audit_module
    from roberta_ft import train as train_module

    trained_on, scored = [], []
    real_train, real_score = train_module.train, audit_module.score_rows

    def spy_train(config, progress=None, *, rows=None):
        trained_on.append((config.output, set(rows.table["line"])))
        return real_train(config, progress, rows=rows)

    def spy_score(model_dir, rows, names, settings):
        scored.append((str(model_dir), list(rows["line"])))
        return real_score(model_dir, rows, names, settings)

    monkeypatch.setattr(train_module, "train", spy_train)
    monkeypatch.setattr(audit_module, "score_rows", spy_score)
    data = _write_csv(tmp_path / "d.csv", _rows(30, seed=2), extra=False)
    audit_module.audit(_config(data, tmp_path / "out", folds=3))
    all_lines = set(range(2, 32))  # the header is line 1
    held_out = [line for _, lines in scored for line in lines]
    assert sorted(held_out) == sorted(all_lines)  # every row scored, exactly once
    assert len(trained_on) == len(scored) == 3
    for (output, train_lines), (model_dir, lines) in zip(trained_on, scored, strict=True):
        assert output == model_dir  # scored by its own fold's model ...
        assert not train_lines & set(lines)  # ... which never trained on it
        assert train_lines | set(lines) == all_lines
    with open(tmp_path / "out" / "scores.csv", newline="") as handle:
        scores = list(csv.DictReader(handle))
    assert sorted(int(row["line"]) for row in scores) == sorted(all_lines)
    for row in scores:  # each row's probabilities are a distribution over the labels
        assert float(row["p_neg"]) + float(row["p_pos"]) == pytest.approx(1, abs=1e-5)


def test_flipped_labels_rank_on_top_given_out_of_fold_probabilities():
    """The ranking step alone: probabilities from a model that learnt the true labels, some labels flipped."""
    from roberta_ft.audit import find_label_issues

    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet(np.ones(3) * 0.5, 300) * 0.3
    probabilities[np.arange(300), true] += 0.7
    given = true.copy()
    flipped = rng.choice(300, 30, replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, 3, 30)) % 3
    issues = find_label_issues(given, probabilities)
    top = set(issues["ranked"][:30].tolist())
    assert len(top & set(flipped.tolist())) >= 27
    assert issues["flagged"][flipped].mean() >= 0.9 and issues["flagged"].sum() <= 40
    assert issues["quality"][flipped].max() < np.median(issues["quality"])


def test_flipped_rows_rank_on_top_end_to_end(tmp_path):
    """The whole audit on an easy task the tiny model learns in seconds, 10% of labels flipped."""
    from roberta_ft.audit import audit

    rows = _rows(160, seed=4, flip=0.1)
    flipped_lines = {i + 2 for i, row in enumerate(rows) if row[2]}
    data = _write_csv(tmp_path / "d.csv", rows, extra=False)
    train = TrainConfig(
        data=str(data), output=str(tmp_path / "out"), model="tiny", epochs=5, batch_size=8, learning_rate=1e-3,
        max_length=24, seed=1, precision="fp32",
    )  # fmt: skip
    result = audit(AuditConfig(train=train, folds=2))
    with open(tmp_path / "out" / "label_issues.csv", newline="") as handle:
        issues = [int(row["line"]) for row in csv.DictReader(handle)]
    top = issues[: len(flipped_lines)]
    assert result.flagged == len(issues) > 0
    assert len(set(top) & flipped_lines) >= 0.6 * len(flipped_lines), (top, flipped_lines)


def test_conflicting_duplicates_and_leakage_are_found(audited):
    record = json.loads((audited["output"] / "audit.json").read_text())
    groups = {tuple(group["lines"]): group for group in record["duplicates"]["groups"]}
    assert groups[(7, 11)]["kind"] == "near-exact" and groups[(7, 11)]["labels"] == ["pos", "neg"]
    assert groups[(13, 22)]["kind"] == "exact"
    assert record["duplicates"]["conflicting_groups"] == 2
    validation, test = record["leakage"]["validation"], record["leakage"]["test"]
    assert validation["leaked_rows"] == 1 and validation["exact"] == 1 and validation["rows"][0]["train_lines"] == [5]
    assert test["leaked_rows"] == 1 and test["near_exact"] == 1 and test["rows"][0]["train_lines"] == [7, 11]


def test_clean_csv_keeps_columns_and_order_without_the_flagged_rows(audited):
    with open(audited["output"] / "label_issues.csv", newline="", encoding="utf-8") as handle:
        flagged = {int(row["line"]) for row in csv.DictReader(handle)}
    with open(audited["data"], newline="", encoding="utf-8") as handle:
        original = list(csv.reader(handle))
    with open(audited["clean"], newline="", encoding="utf-8") as handle:
        cleaned = list(csv.reader(handle))
    assert cleaned[0] == original[0] == ["id", "review", "sentiment", "source"]
    kept = [row for line, row in enumerate(original[1:], start=2) if line not in flagged]
    assert cleaned[1:] == kept and len(kept) == 36 - len(flagged)
    assert audited["summary"]["cleaned"]["dropped"] == len(flagged)


def test_clean_jsonl_relabels_in_the_file_own_label_form(tmp_path):
    from roberta_ft.audit import audit

    rows = _rows(24, seed=5)
    lines = [
        {"n": i, "text": text, "label": 1 if label == "pos" else 0, "meta": {"k": [i]}}
        for i, (text, label, _) in enumerate(rows)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    result = audit(_config(data, tmp_path / "out", folds=2, clean=str(clean), relabel=True))
    with open(tmp_path / "out" / "label_issues.csv", newline="") as handle:
        suggested = {int(row["line"]): row["suggested_label"] for row in csv.DictReader(handle)}
    written = [json.loads(line) for line in clean.read_text(encoding="utf-8").splitlines()]
    assert len(written) == len(lines) and result.cleaned["relabelled"] == len(suggested)
    for number, (before, after) in enumerate(zip(lines, written, strict=True), start=1):
        assert list(after) == list(before)  # same keys, same order
        expected = int(suggested[number]) if number in suggested else before["label"]
        assert after == {**before, "label": expected} and isinstance(after["label"], int)


def test_a_stopped_audit_continues_with_the_folds_left(tmp_path, monkeypatch):
    from roberta_ft import audit as audit_module
    from roberta_ft import train as train_module

    data = _write_csv(tmp_path / "d.csv", _rows(30, seed=6), extra=False)
    real_train, calls = train_module.train, []

    def killed_after_first_fold(config, progress=None, *, rows=None):
        calls.append(config.output)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the audit is killed once fold 1 is recorded
        return real_train(config, progress, rows=rows)

    monkeypatch.setattr(train_module, "train", killed_after_first_fold)
    with pytest.raises(KeyboardInterrupt):
        audit_module.audit(_config(data, tmp_path / "out", folds=3))
    first = tmp_path / "out" / "folds" / "fold-1.npz"
    assert first.is_file() and not (tmp_path / "out" / "label_issues.csv").exists()
    stamp = first.stat().st_mtime_ns, (tmp_path / "out" / "folds" / "fold-1" / "model.safetensors").stat().st_mtime_ns

    with pytest.raises(ConfigError, match="holds a stopped audit.*--resume"):  # a rerun without --resume is told
        audit_module.audit(_config(data, tmp_path / "out", folds=3))
    calls.clear()
    monkeypatch.setattr(train_module, "train", lambda *a, **k: (calls.append(a[0].output), real_train(*a, **k))[1])
    config = _config(data, tmp_path / "out", folds=3)
    result = audit_module.audit(config.replace(train=config.train.replace(resume=True)))
    assert [path.rsplit("/", 1)[1] for path in calls] == ["fold-2", "fold-3"]  # fold 1 not trained again
    after = first.stat().st_mtime_ns, (tmp_path / "out" / "folds" / "fold-1" / "model.safetensors").stat().st_mtime_ns
    assert after == stamp and result.rows == 30
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["status"] == "complete"


def _one_line_error(args, expected):
    result = runner.invoke(app, ["--quiet", *args])  # the error line alone, without the info log
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
    return lines[0]


def test_one_line_errors(tmp_path, monkeypatch):
    data = _write_csv(tmp_path / "d.csv", _rows(20, seed=7) + [("a lone text", "meh", False)] * 2, extra=False)
    common = [str(data), "--output", str(tmp_path / "out"), "--model", "tiny"]
    _one_line_error(["audit", *common, "--folds", "1"], "--folds must be an integer of at least 2, got 1")
    line = _one_line_error(["audit", *common, "--folds", "3"], "class 'meh' has 2 rows, fewer than --folds 3")
    assert "--folds 2" in line
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # as if the [audit] extra were not installed
    _one_line_error(["audit", *common], 'pip install "roberta-ft[audit]"')
    assert not (tmp_path / "out").exists()  # no error left an output behind


def test_pairs_are_duplicates_only_when_both_texts_match():
    from roberta_ft.audit import find_duplicates, find_leakage

    texts = ["A man sleeps.", "a man sleeps", "A man sleeps.", "A dog runs"]
    pairs = ["He rests.", "he rests!", "He runs.", "It moves"]
    given, lines = np.array([0, 1, 1, 0]), np.array([2, 3, 4, 5])
    found = find_duplicates(texts, pairs, given, lines, ["entailment", "contradiction"])
    assert [group["lines"] for group in found["groups"]] == [[2, 3]]  # line 4's second text differs
    assert found["groups"][0]["kind"] == "near-exact" and found["groups"][0]["labels"] == [
        "entailment",
        "contradiction",
    ]
    leaked = find_leakage(texts, pairs, lines, ["A DOG RUNS", "A dog runs"], ["it moves.", "It stops"], [7, 8], "test")
    assert [row["line"] for row in leaked["rows"]] == [7] and leaked["near_exact"] == 1 and leaked["exact"] == 0
