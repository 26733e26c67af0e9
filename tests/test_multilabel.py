"""--multi-label: several labels per row, a sigmoid/BCE head, F1 at a threshold, pipeline() and predict agree."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import EvalConfig, PredictConfig, TrainConfig
from roberta_ft.data.labels import MultiLabelMap, split_labels
from roberta_ft.errors import ConfigError, DataError
from roberta_ft.metrics import multilabel_metrics as metrics
from tests.helpers import TOPICS, write_topics


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from roberta_ft.train import train

    root = tmp_path_factory.mktemp("multilabel")
    train(
        TrainConfig(
            data=str(write_topics(root / "train.csv", 300, seed=0, separator=";")),
            validation=str(write_topics(root / "dev.csv", 60, seed=1, separator=";")),
            output=str(root / "model"), model="tiny", epochs=6, batch_size=16, multi_label=True, label_separator=";",
            # one threshold for every label, probabilities as trained: what these tests check (per-label thresholds
            # and calibration: tests/test_calibration.py)
            threshold_metric="none", calibration="none",
        )
    )  # fmt: skip
    return root / "model"


def test_split_labels():
    assert split_labels("b|a|b", "|") == ["b", "a"]
    assert split_labels(" a ; b ", ";") == ["a", "b"]
    assert split_labels('["x", "y"]', "|") == ["x", "y"] == split_labels(["x", "y"], "|")
    assert split_labels("[]", "|") == []  # a row with no label at all


def test_encode_is_multi_hot_and_names_unknown_labels():
    label_map = MultiLabelMap.infer(["b|a", "c", "[]"], "|")
    assert label_map.names == ("a", "b", "c")
    np.testing.assert_array_equal(label_map.encode(["b|a", "c", "[]"], source="f"), [[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(DataError, match="label 'd' \\(line 7\\) is not among the model's labels"):
        label_map.encode(["a", "d"], source="f", lines=[3, 7])


def test_metrics_at_the_threshold():
    references = np.array([[1, 0, 1], [0, 1, 0]])
    predictions = np.array([[1, 0, 0], [0, 1, 0]])
    scores = metrics(predictions, references)
    assert scores["subset_accuracy"] == 0.5
    assert scores["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))  # tp 2, fp 0, fn 1
    assert scores["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)


def test_learns_with_a_sigmoid_head(model_dir):
    metrics_json = json.loads((model_dir / "metrics.json").read_text())
    assert metrics_json["primary_metric"] == "micro_f1"
    assert metrics_json["best"]["micro_f1"] >= 0.8
    assert set(metrics_json["best"]) >= {"micro_f1", "macro_f1", "subset_accuracy"}
    config = json.loads((model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert sorted(config["id2label"].values()) == sorted(TOPICS)
    run = json.loads((model_dir / "run_config.json").read_text())
    assert run["problem_type"] == "multi_label" and run["config"]["label_separator"] == ";"
    report = json.loads((model_dir / "validation_report.json").read_text())
    assert set(report["per_class"]) == set(TOPICS) and "confusion_matrix" not in report
    assert not (model_dir / "confusion_matrix.png").exists() and (model_dir / "training_curves.png").exists()
    card = (model_dir / "README.md").read_text()
    assert "multi-label-classification" in card and "top_k=None" in card


def test_pipeline_and_predict_agree(model_dir, tmp_path):
    from transformers import pipeline

    from roberta_ft.predict import predict

    texts = ["the football match and the senate vote", "some guitar album today", "a new laptop chip"]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "pred.jsonl"
    # fp32: the pipeline computes in fp32, while --precision auto is bf16 on CPUs with native bf16.
    predict(PredictConfig(model_dir=str(model_dir), input=str(source), output=str(out), precision="fp32"))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [sorted(r["labels"]) for r in rows] == [["politics", "sports"], ["music"], ["tech"]]

    classifier = pipeline("text-classification", model=str(model_dir), device=-1)
    for text, row in zip(texts, rows, strict=True):
        scores = {s["label"]: s["score"] for s in classifier(text, top_k=None)}  # sigmoid per label
        above = sorted((label for label, score in scores.items() if score >= 0.5), key=lambda k: -scores[k])
        assert row["labels"] == above
        assert row["probabilities"] == pytest.approx([scores[label] for label in above], abs=1e-5)

    # A higher threshold keeps fewer labels.
    strict = tmp_path / "strict.jsonl"
    predict(PredictConfig(model_dir=str(model_dir), input=str(source), output=str(strict), threshold=0.99))
    kept = [json.loads(line)["labels"] for line in strict.read_text().splitlines()]
    assert sum(map(len, kept)) < sum(len(r["labels"]) for r in rows)
    assert all(set(k) <= set(r["labels"]) for k, r in zip(kept, rows, strict=True))

    # CSV joins the labels (and their probabilities) with the training separator.
    out = tmp_path / "pred.csv"
    predict(PredictConfig(model_dir=str(model_dir), input=str(source), output=str(out)))
    with open(out, newline="") as f:
        first = next(csv.DictReader(f))
    assert first["labels"] == ";".join(rows[0]["labels"]) and len(first["probabilities"].split(";")) == 2


def test_eval_scores_multi_label(model_dir, tmp_path):
    from roberta_ft.evaluate import evaluate

    data = write_topics(tmp_path / "test.csv", 40, seed=7, separator=";")
    result = evaluate(EvalConfig(model_dir=str(model_dir), data=str(data)))
    assert set(result.metrics) == {"micro_f1", "macro_f1", "subset_accuracy"} and result.metrics["micro_f1"] >= 0.8
    assert set(result.extras["report"]["per_class"]) == set(TOPICS)
    assert "confusion_matrix" not in result.extras["files"]  # no confusion matrix for multi-label
    strict = evaluate(EvalConfig(model_dir=str(model_dir), data=str(data), threshold=0.999999))
    assert strict.metrics["micro_f1"] < result.metrics["micro_f1"]

    shown = CliRunner().invoke(app, ["eval", str(model_dir), str(data)])
    assert shown.exit_code == 0 and "micro_f1" in shown.stdout and "Per class" in shown.stdout


def test_multi_label_settings_are_checked(tmp_path):
    from roberta_ft.train import train

    data = write_topics(tmp_path / "t.csv", 20, seed=0)
    with pytest.raises(ConfigError, match="regression"):
        train(TrainConfig(data=str(data), output=str(tmp_path / "a"), model="tiny", task="glue/stsb", multi_label=True))
    with pytest.raises(ConfigError, match="--class-weights"):
        train(
            TrainConfig(
                data=str(data), output=str(tmp_path / "b"), model="tiny", multi_label=True, class_weights="auto"
            )
        )
    with pytest.raises(ConfigError, match="--threshold must be between 0 and 1"):
        TrainConfig(data=str(data), output=str(tmp_path / "c"), multi_label=True, threshold=1.5).resolved()
    validation = tmp_path / "v.csv"
    validation.write_text("text,labels\nsome album,music|cooking\n")
    with pytest.raises(DataError, match="'cooking'"):
        train(
            TrainConfig(
                data=str(data), validation=str(validation), output=str(tmp_path / "d"), model="tiny", multi_label=True
            )
        )
    assert not (tmp_path / "d").exists()


def test_jsonl_lists_are_label_sets(tmp_path):
    from roberta_ft.data import load_file
    from roberta_ft.registry import get_task

    path = tmp_path / "d.jsonl"
    rows = [{"text": "a", "labels": ["x", "y"]}, {"text": "b", "labels": []}, {"text": "c", "labels": "y"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset, _ = load_file(path, task=get_task("classification"))
    label_map = MultiLabelMap.infer(dataset["label"], "|")
    np.testing.assert_array_equal(label_map.encode(dataset["label"], source="d"), [[1, 1], [0, 0], [0, 1]])
