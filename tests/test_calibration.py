"""Calibration after training, decision thresholds and the abstain band (roberta_ft/calibration.py)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from roberta_ft import calibration, inference
from roberta_ft.cli import app
from roberta_ft.config import PredictConfig, ServeConfig, TrainConfig
from roberta_ft.data.labels import LabelMap
from roberta_ft.errors import ConfigError
from roberta_ft.problems import SingleLabel, sigmoid, softmax
from tests.helpers import wait_ready, write_reviews, write_topics

runner = CliRunner()


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# ------------------------------------------------------------------------------------------ fitting


def test_temperature_fitting_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2.0, size=(20000, 3))
    targets = np.array([rng.choice(3, p=p) for p in softmax(true_logits)])
    for temperature in (0.5, 2.5):
        found = calibration.fit_temperature(true_logits * temperature, targets)
        assert found == pytest.approx(temperature, rel=0.05)


def test_label_scaling_recovers_a_known_scale_and_bias():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, size=(20000, 2))
    scale, bias = np.array([0.4, 1.5]), np.array([0.5, -1.0])
    targets = (rng.random(logits.shape) < sigmoid(logits * scale + bias)).astype(np.int64)
    found_scale, found_bias = calibration.fit_label_scaling(logits, targets)
    assert found_scale == pytest.approx(scale, abs=0.08)
    assert found_bias == pytest.approx(bias, abs=0.08)


def test_folding_into_the_output_layer_divides_the_logits_and_keeps_the_argmax():
    import torch

    layer = torch.nn.Linear(8, 3)
    features = torch.randn(50, 8)
    before = layer(features).detach().numpy()
    calibration.fold(layer, 1 / 2.5)
    after = layer(features).detach().numpy()
    np.testing.assert_allclose(after, before / 2.5, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(softmax(after), softmax(before / 2.5), atol=1e-6)
    assert (after.argmax(-1) == before.argmax(-1)).all()


# ------------------------------------------------------------------------------------------ measures


def test_ece_matches_a_hand_computed_value():
    confidence = np.array([0.95, 0.95, 0.62, 0.62, 0.30])
    correct = np.array([1, 0, 1, 1, 0])
    # bins of 1/15: 0.95 in (14/15, 1], 0.62 in (9/15, 10/15], 0.30 in (4/15, 5/15]
    hand = 2 / 5 * abs(0.5 - 0.95) + 2 / 5 * abs(1.0 - 0.62) + 1 / 5 * abs(0.0 - 0.30)
    assert calibration.expected_calibration_error(confidence, correct) == pytest.approx(hand)
    # the same from probabilities: top-label confidence, right when the argmax is the target
    probabilities = np.array([[0.95, 0.05], [0.05, 0.95], [0.62, 0.38], [0.38, 0.62], [0.30, 0.70]])
    targets = np.array([0, 0, 0, 1, 0])
    report = calibration.calibration_report(probabilities, targets, multi_label=False)
    assert report["ece"] == pytest.approx(2 / 5 * abs(0.5 - 0.95) + 2 / 5 * abs(1.0 - 0.62) + 1 / 5 * abs(0.0 - 0.70))
    one_hot = np.eye(2)[targets]
    assert report["brier"] == pytest.approx(((probabilities - one_hot) ** 2).sum(-1).mean())
    assert report["nll"] == pytest.approx(-np.mean(np.log([0.95, 0.05, 0.62, 0.62, 0.30])))
    assert report["accuracy_at_coverage"]["100%"]["accuracy"] == pytest.approx(3 / 5)
    # the 3 most confident rows (50% of 5, rounded up): 0.95 right, 0.95 wrong, 0.70 wrong
    assert report["accuracy_at_coverage"]["50%"]["accuracy"] == pytest.approx(1 / 3)
    assert sum(b["count"] for b in report["bins"]) == 5 and len(report["bins"]) == 15


def test_ece_noise_floor_is_what_a_perfectly_calibrated_model_shows():
    # A row of confidence 1 is always right, one of 0.5 is off by exactly 0.5 whatever it draws.
    assert calibration.ece_noise_floor(np.ones(50)) == 0.0
    assert calibration.ece_noise_floor(np.array([0.5])) == pytest.approx(0.5)
    # Against the plain ECE of many perfectly calibrated samples, drawn independently of the floor's own draws.
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.5, 1.0, size=800)
    sampled = [calibration.expected_calibration_error(confidence, rng.random(800) < confidence) for _ in range(400)]
    floor = calibration.ece_noise_floor(confidence)
    assert floor == pytest.approx(np.mean(sampled), rel=0.1)
    assert 0.01 < floor < 0.06  # several points on 800 rows: the scale of SST-2's dev set
    # Sampling noise shrinks as 1/sqrt(rows): 10x the rows, about a third of the floor.
    assert calibration.ece_noise_floor(np.tile(confidence, 10)) < floor / 2.5
    report = calibration.calibration_report(
        np.stack([1 - confidence, confidence], 1), np.ones(800, int), multi_label=False
    )
    assert report["ece_noise_floor"] == pytest.approx(floor)


def test_threshold_choice_is_the_best_f1_cut():
    probabilities = np.array([0.9, 0.8, 0.35, 0.3, 0.2, 0.1])
    positives = np.array([1, 1, 1, 0, 0, 0])
    threshold = calibration.choose_threshold(probabilities, positives)
    assert 0.3 < threshold <= 0.35  # all three positives, no negative
    assert calibration.f_score(probabilities >= threshold, positives) == 1.0
    assert calibration.choose_threshold(probabilities, np.zeros(6)) is None  # nothing to learn from


def test_min_confidence_abstains_exactly_below_p():
    confidences = [0.6, 0.75 - 1e-7, 0.75, 0.75 + 1e-7, 0.9]
    logits = np.log(np.array([[c, 1 - c] for c in confidences]))
    probabilities = softmax(logits)[:, 0]
    p = float(probabilities[2])  # the probability the middle row really gets: P itself is not below P
    problem = SingleLabel(LabelMap(("a", "b"))).abstaining(p)
    rows = problem.rows(logits)
    assert [row["abstained"] for row in rows] == [True, True, False, False, False]
    assert all(row["label"] is None for row in rows if row["abstained"])
    assert all(row["label"] == "a" for row in rows if not row["abstained"])
    assert [row["probability"] for row in rows] == [round(float(c), 6) for c in probabilities]  # kept
    assert problem.output_fields(None) == ["label", "probability", "abstained"]
    assert SingleLabel(LabelMap(("a", "b"))).abstaining(1.0).rows(logits[4:])[0]["abstained"]  # P = 1: below 1


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def binary_runs(tmp_path_factory) -> dict[str, Path]:
    """The same tiny run twice: calibrated (the default) and --calibration none."""
    from roberta_ft.train import train

    root = tmp_path_factory.mktemp("calibration")
    data = write_reviews(root / "reviews.csv", n=120, seed=3)
    runs = {}
    for name in ("temperature", "none"):
        runs[name] = train(
            TrainConfig(data=str(data), output=str(root / name), model="tiny", epochs=1, seed=1, calibration=name)
        ).output_dir
    return runs


def _weights(model_dir: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_calibration_none_leaves_the_weights_and_temperature_scales_only_the_output_layer(binary_runs):
    calibrated, untouched = _weights(binary_runs["temperature"]), _weights(binary_runs["none"])
    metrics = json.loads((binary_runs["temperature"] / "metrics.json").read_text())
    temperature = metrics["calibration"]["temperature"]
    assert metrics["calibration"]["method"] == "temperature" and temperature != pytest.approx(1.0, abs=1e-3)
    assert "calibration" not in json.loads((binary_runs["none"] / "metrics.json").read_text())
    output = {"classifier.out_proj.weight", "classifier.out_proj.bias"}
    assert calibrated.keys() == untouched.keys() and output <= calibrated.keys()
    for name in calibrated:
        if name in output:
            np.testing.assert_allclose(calibrated[name], untouched[name] / temperature, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(calibrated[name], untouched[name])
    # recorded: the values and the validation ECE before and after, in metrics.json and the model card
    assert metrics["calibration"]["validation_ece_after"] <= metrics["calibration"]["validation_ece_before"]
    card = (binary_runs["temperature"] / "README.md").read_text()
    assert f"T = {temperature:.4f}" in card and "before" in card


def test_folded_model_gives_softmax_of_logits_over_t_with_the_same_labels(binary_runs):
    from transformers import pipeline

    texts = ["the movie was great and it was great", "the plot was awful", "this film seemed dull", "it was fine"]
    temperature = json.loads((binary_runs["temperature"] / "metrics.json").read_text())["calibration"]["temperature"]
    calibrated = inference.load(binary_runs["temperature"], device="cpu", precision="fp32")
    raw = inference.load(binary_runs["none"], device="cpu", precision="fp32")
    calibrated_logits = calibrated.logits(calibrated.encode(texts), 8)
    raw_logits = raw.logits(raw.encode(texts), 8)
    np.testing.assert_allclose(softmax(calibrated_logits), softmax(raw_logits / temperature), atol=1e-5)
    assert (calibrated_logits.argmax(-1) == raw_logits.argmax(-1)).all()
    # transformers.pipeline reads the same calibrated probabilities, with no code of ours
    classifier = pipeline("text-classification", model=str(binary_runs["temperature"]), device="cpu")
    scores = [result["score"] for result in classifier(texts)]
    np.testing.assert_allclose(scores, softmax(raw_logits / temperature).max(-1), atol=1e-5)


def test_predict_min_confidence_from_the_cli(binary_runs, tmp_path):
    lines = ["the movie was great", "the plot was awful", "it was dull and it was great", "this film", "superb"]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(lines) + "\n")
    model = inference.load(binary_runs["temperature"], device="cpu", precision="fp32")  # as predict loads it below
    probabilities = softmax(model.logits(model.encode(lines), 8)).max(-1)
    cut = float(sorted(set(probabilities.tolist()))[1])  # exactly a row's probability: that row does not abstain
    args = ["predict", str(binary_runs["temperature"]), str(texts), "--json", "--device", "cpu", "--precision", "fp32"]
    rows = json.loads(runner.invoke(app, [*args, "--min-confidence", repr(cut)]).stdout)["predictions"]
    assert [row["abstained"] for row in rows] == [bool(p < cut) for p in probabilities]
    assert 1 <= sum(row["abstained"] for row in rows) < len(rows)
    assert [row["probability"] for row in rows] == [round(float(p), 6) for p in probabilities]
    assert all((row["label"] is None) == row["abstained"] for row in rows)


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_min_confidence_outside_0_1_is_one_line(binary_runs, tmp_path, value):
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\n")
    line = _one_error_line(
        runner.invoke(app, ["predict", str(binary_runs["none"]), str(texts), "--min-confidence", value])
    )
    assert "--min-confidence must be a probability in (0, 1]" in line
    with pytest.raises(ConfigError, match="min-confidence"):
        ServeConfig(model_dir="m", min_confidence=float(value)).validate()


def test_optimize_threshold_on_a_multi_class_task_is_one_line(tmp_path):
    rng = random.Random(0)
    data = tmp_path / "three.csv"
    data.write_text("text,label\n" + "".join(f"word{rng.randint(0, 9)} text,{c}\n" for c in "abc" * 20))
    result = runner.invoke(
        app,
        [
            "--quiet",
            "train",
            str(data),
            "--output",
            str(tmp_path / "out"),
            "--model",
            "tiny",
            "--optimize-threshold",
            "f1",
        ],
    )
    line = _one_error_line(result)
    assert "--optimize-threshold needs a binary task, but this one has 3 labels" in line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_binary_decision_threshold_round_trips(tmp_path):
    from roberta_ft.train import train

    data = write_reviews(tmp_path / "reviews.csv", n=160, seed=4)
    out = train(
        TrainConfig(data=str(data), output=str(tmp_path / "m"), model="tiny", epochs=2, seed=1, optimize_threshold="f1")
    ).output_dir
    chosen = json.loads((out / "run_config.json").read_text())["thresholds"]
    assert chosen["metric"] == "f1" and chosen["positive_label"] == "pos" and 0 < chosen["threshold"] < 1
    problem = inference.load(out, device="cpu").problem
    assert (
        problem.decision_threshold == pytest.approx(chosen["threshold"])
        and problem.labels.names[problem.positive] == "pos"
    )
    logits = np.array([[0.0, math.log(chosen["threshold"] / (1 - chosen["threshold"])) + 1e-4], [0.0, -5.0]])
    assert [row["label"] for row in problem.rows(logits)] == ["pos", "neg"]
    assert inference.load(out, device="cpu", threshold=0.99).problem.decision_threshold == 0.99  # --threshold wins


# ------------------------------------------------------------------------------------------ multi-label thresholds


@pytest.fixture(scope="module")
def multi_label_dir(tmp_path_factory) -> Path:
    from roberta_ft.train import train

    root = tmp_path_factory.mktemp("thresholds")
    return train(
        TrainConfig(
            data=str(write_topics(root / "train.csv", 200, seed=0)),
            validation=str(write_topics(root / "dev.csv", 60, seed=1)),
            output=str(root / "model"), model="tiny", epochs=3, batch_size=16, multi_label=True, seed=1,
        )
    ).output_dir  # fmt: skip


def test_per_label_thresholds_round_trip_through_predict_serve_and_onnx(multi_label_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from roberta_ft.config import ExportConfig
    from roberta_ft.export import export
    from roberta_ft.predict import predict
    from roberta_ft.serve import Service, _load, build_app

    chosen = json.loads((multi_label_dir / "run_config.json").read_text())["thresholds"]
    assert chosen["metric"] == "f1" and set(chosen["per_label"]) == {"music", "politics", "sports", "tech"}
    metrics = json.loads((multi_label_dir / "metrics.json").read_text())
    assert metrics["calibration"]["method"] == "label_scaling" and metrics["thresholds"] == chosen
    model = inference.load(multi_label_dir, device="cpu", precision="fp32")
    expected = tuple(chosen["per_label"][name] for name in model.problem.labels.names)
    assert model.problem.thresholds == expected
    assert inference.load(multi_label_dir, device="cpu", threshold=0.5).problem.thresholds is None  # --threshold wins

    texts = ["football goal the match news", "guitar album vote election", "a robot chip song", "the people said"]
    probabilities = sigmoid(model.logits(model.encode(texts), 8))
    wanted = [
        sorted((n for j, n in enumerate(model.problem.labels.names) if p[j] >= expected[j]), key=lambda n: -p[model.problem.labels.names.index(n)])
        for p in probabilities
    ]  # fmt: skip
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    predict(
        PredictConfig(
            model_dir=str(multi_label_dir),
            input=str(source),
            output=str(tmp_path / "p.jsonl"),
            device="cpu",
            precision="fp32",
        )
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [row["labels"] for row in rows] == wanted

    config = ServeConfig(model_dir=str(multi_label_dir), device="cpu", precision="fp32")
    with TestClient(build_app(Service(lambda: _load(multi_label_dir, config), config))) as client:
        wait_ready(client)
        served = client.post("/predict", json={"texts": texts}).json()["predictions"]
        assert [row["labels"] for row in served] == wanted
        assert client.get("/info").json()["thresholds"] == dict(zip(model.problem.labels.names, expected, strict=True))

    export(ExportConfig(model_dir=str(multi_label_dir), output=str(tmp_path / "onnx"), quantize="none"))
    onnx = inference.load(tmp_path / "onnx", backend="onnx", precision="fp32")
    assert onnx.problem.thresholds == expected
    np.testing.assert_allclose(sigmoid(onnx.logits(onnx.encode(texts), 8)), probabilities, atol=1e-4)


def test_threshold_metric_none_keeps_one_threshold(tmp_path):
    from roberta_ft.train import train

    out = train(
        TrainConfig(
            data=str(write_topics(tmp_path / "train.csv", 120, seed=2)),
            output=str(tmp_path / "m"), model="tiny", epochs=1, multi_label=True, threshold_metric="none",
            calibration="none", threshold=0.4,
        )
    ).output_dir  # fmt: skip
    assert "thresholds" not in json.loads((out / "run_config.json").read_text())
    problem = inference.load(out, device="cpu").problem
    assert problem.thresholds is None and problem.cutoffs().tolist() == [0.4] * 4


def test_eval_reports_calibration_and_writes_the_reliability_diagram(binary_runs, tmp_path):
    data = write_reviews(tmp_path / "dev.csv", n=60, seed=9)
    report = tmp_path / "eval_report.json"
    result = runner.invoke(app, ["eval", str(binary_runs["temperature"]), str(data), "--json", "--report", str(report)])
    document = json.loads(result.stdout)
    measured = document["calibration"]
    assert {"ece", "ece_noise_floor", "brier", "nll", "accuracy_at_coverage", "bins"} <= measured.keys()
    assert 0 < measured["ece_noise_floor"] < 0.5
    assert list(measured["accuracy_at_coverage"]) == ["100%", "90%", "80%", "50%"]
    assert measured["accuracy_at_coverage"]["100%"]["accuracy"] == pytest.approx(document["metrics"]["accuracy"])
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    assert document["files"]["reliability"] == str(tmp_path / "reliability.png")


def test_serve_abstains_below_its_min_confidence_and_a_request_may_pass_its_own(binary_runs, multi_label_dir):
    from fastapi.testclient import TestClient

    from roberta_ft.serve import Service, _load, build_app

    texts = ["the movie was great", "the plot was awful"]
    config = ServeConfig(model_dir=str(binary_runs["temperature"]), device="cpu", precision="fp32", min_confidence=1.0)
    with TestClient(build_app(Service(lambda: _load(binary_runs["temperature"], config), config))) as client:
        wait_ready(client)
        rows = client.post("/predict", json={"texts": texts}).json()["predictions"]
        assert all(row["abstained"] and row["label"] is None and 0 < row["probability"] < 1 for row in rows)
        kept = client.post("/predict", json={"texts": texts, "min_confidence": 0.01}).json()["predictions"]
        assert all(not row["abstained"] and row["label"] in ("pos", "neg") for row in kept)
        bad = client.post("/predict", json={"texts": texts, "min_confidence": 0})
        assert bad.status_code == 422 and "(0, 1]" in bad.json()["error"]
    config = ServeConfig(model_dir=str(multi_label_dir), device="cpu")
    with TestClient(build_app(Service(lambda: _load(multi_label_dir, config), config))) as client:
        wait_ready(client)
        refused = client.post("/predict", json={"texts": texts, "min_confidence": 0.5})
        assert refused.status_code == 422 and "single-label" in refused.json()["error"]


def test_a_few_shot_run_without_validation_rows_skips_calibration_with_one_log_line(few_shot_work, tmp_path, caplog):
    import logging

    from roberta_ft.train import train

    caplog.set_level(logging.INFO)
    out = train(
        TrainConfig(
            data=str(few_shot_work / "train16.csv"),
            output=str(tmp_path / "few"),
            model=str(few_shot_work / "start"),
            epochs=1,
        )
    )
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == ["No validation rows: calibration skipped (pass --validation to fit them)"]
    assert "calibration" not in out.metrics
