"""Few-shot training (`train --method few-shot`, fewshot.py): chosen by itself on a handful of rows per class,
balanced pairs of distinct rows, better than plain fine-tuning from the same start, a standard model directory."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from roberta_ft import fewshot
from roberta_ft.cli import app
from roberta_ft.errors import ConfigError

runner = CliRunner()


@pytest.fixture(scope="module")
def work(few_shot_work) -> Path:
    return few_shot_work


def train(*args: str) -> dict:
    result = runner.invoke(app, ["--quiet", "train", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_config(directory: Path) -> dict:
    return json.loads((directory / "run_config.json").read_text())


class CpuAccelerator:
    """What the few-shot phases ask of accelerate's Accelerator, on the CPU."""

    device = torch.device("cpu")

    def unwrap_model(self, model):
        return model

    def autocast(self):
        return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------ the choice


def test_auto_picks_few_shot_up_to_64_rows_per_class_and_fine_tuning_above():
    def choose(method="auto", rows=8, **given):
        options = {"has_labels": True, "multi_label": False, "pretrained": True, **given}
        return fewshot.choose(method, class_rows={"a": rows, "b": rows}, **options).method

    assert choose(rows=8) == choose(rows=64) == "few-shot"
    assert choose(rows=65) == "fine-tune"
    assert choose(pretrained=False) == "fine-tune"  # a model from random weights (tiny) fine-tunes
    assert choose(multi_label=True) == choose(has_labels=False) == "fine-tune"
    assert choose("few-shot", rows=500) == "few-shot" and choose("fine-tune", rows=8) == "fine-tune"


def test_the_choice_and_its_budget_go_into_the_run(work, tmp_path):
    few = tmp_path / "few"
    train(str(work / "train16.csv"), "--model", str(work / "start"), "-o", str(few), "--epochs", "2")
    record = run_config(few)
    assert record["method"]["name"] == "few-shot" and "8 training rows per class" in record["method"]["reason"]
    # No validation share is held out; the few-shot budget fills what was not given (--epochs was).
    assert record["num_train_examples"] == 16 and record["num_validation_examples"] == 0
    assert record["config"]["epochs"] == 2 and record["config"]["weight_decay"] == fewshot.BUDGET["weight_decay"]
    assert record["config"]["long_text"] == "truncate"  # short texts: no windows
    fine = tmp_path / "fine"
    train(str(work / "train16.csv"), "--model", str(work / "start"), "-o", str(fine), "--method", "fine-tune")
    record = run_config(fine)
    assert record["method"]["name"] == "fine-tune" and record["num_validation_examples"] > 0


def test_long_texts_are_read_as_windows_with_the_epochs_cut_unless_long_text_is_given(work, tmp_path):
    windows = tmp_path / "windows"
    args = [str(work / "train16.csv"), "--model", str(work / "start"), "--max-length", "8"]
    result = runner.invoke(app, ["train", *args, "-o", str(windows)])
    assert result.exit_code == 0, result.output
    log = " ".join(result.stderr.split())  # rich wraps log lines
    assert "16 of 16 training texts are longer than --max-length 8 tokens" in log, log
    assert "pass --long-text truncate" in log
    config = run_config(windows)["config"]
    assert config["long_text"] == "sliding" and config["stride"] == 4  # min(16, half the window)
    # The contrastive phase: about 20 epochs' steps over whole texts, at least MIN_WINDOW_EPOCHS.
    from transformers import AutoTokenizer

    texts = [line.split(",")[0] for line in (work / "train16.csv").read_text().splitlines()[1:]]
    tokenizer = AutoTokenizer.from_pretrained(work / "start")
    count = len(tokenizer(texts, truncation=True, max_length=8, stride=4, return_overflowing_tokens=True)["input_ids"])
    assert count > 2 * len(texts)
    assert config["epochs"] == max(fewshot.MIN_WINDOW_EPOCHS, round(20 * len(texts) / count))
    # The model keeps the reading: eval scores windows by default.
    evaluated = runner.invoke(app, ["--quiet", "eval", str(windows), str(work / "dev.csv"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["metrics"]["accuracy"] > 0
    # --long-text given (or --epochs): what was given wins.
    kept = tmp_path / "kept"
    result = runner.invoke(app, ["train", *args, "-o", str(kept), "--long-text", "truncate", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "longer than --max-length" not in result.stderr
    assert run_config(kept)["config"]["long_text"] == "truncate" and run_config(kept)["config"]["epochs"] == 1
    # --model tiny learns its tokenizer from the texts later: nothing to count windows with, no Hub lookup.
    tiny = tmp_path / "tiny"
    result = runner.invoke(app, ["train", *args[:1], "--model", "tiny", "--method", "few-shot", "--max-length", "8",
                                 "-o", str(tiny), "--epochs", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert run_config(tiny)["config"]["long_text"] == "truncate"


def test_a_run_without_validation_rows_says_so_instead_of_a_best_score(work, tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            str(work / "train16.csv"),
            "--model",
            str(work / "start"),
            "-o",
            str(tmp_path / "m"),
            "--epochs",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Trained (no validation rows; pass --validation to score it)" in result.stderr
    assert "Best" not in result.stderr


# ------------------------------------------------------------------------------------------ pairs


def test_pairs_are_every_pair_of_distinct_rows_with_both_sorts_weighing_half():
    features = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    normalized = torch.nn.functional.normalize(features, dim=-1)
    positive, negative = [], []
    for i in range(6):
        for j in range(i + 1, 6):  # never a row with itself, each pair once
            same = bool(labels[i] == labels[j])
            error = (float(normalized[i] @ normalized[j]) - same) ** 2
            (positive if same else negative).append(error)
    assert len(positive) == 6 and len(negative) == 9
    expected = 0.5 * np.mean(positive) + 0.5 * np.mean(negative)
    assert float(fewshot.pair_loss(features, labels)) == pytest.approx(expected, rel=1e-5)
    # A row paired with itself would add a zero error and move the mean: it is not there.
    assert fewshot.batch_pairs(6, {"a": 4, "b": 1, "c": 1})[0] == 15


# ------------------------------------------------------------------------------------------ the method


@pytest.mark.slow
def test_few_shot_beats_plain_fine_tuning_from_the_same_start(work, tmp_path):
    scores = {}
    for method in ("few-shot", "fine-tune"):
        result = train(
            str(work / "train16.csv"), "--model", str(work / "start"), "-o", str(tmp_path / method),
            "--validation", str(work / "dev.csv"), "--method", method,
        )  # fmt: skip
        scores[method] = result["best"]["accuracy"]
    assert scores["few-shot"] >= 0.65 and scores["few-shot"] >= scores["fine-tune"] + 0.1, scores


def test_the_mean_pooling_layer_pools_the_mean_into_the_first_token(work):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(work / "start").eval()
    tokenizer = AutoTokenizer.from_pretrained(work / "start")
    fewshot.add_mean_pooling_layer(model)
    batch = tokenizer(
        ["the movie was great", "a really quite long and dull plot of a film"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        states = model.base_model(**batch, output_hidden_states=True).hidden_states
    below, first = states[-2], states[-1][:, 0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (below * mask).sum(1) / mask.sum(1)  # padding is not part of the mean
    expected = torch.nn.functional.layer_norm(mean, mean.shape[-1:])
    assert torch.allclose(first, expected, atol=0.02)
    assert model.config.num_hidden_layers == len(model.base_model.encoder.layer)


def test_the_contrastive_loss_compares_the_mean_token_states_below_the_built_layer(work):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from roberta_ft.data.tokens import Encoded

    tokenizer = AutoTokenizer.from_pretrained(work / "start")
    texts = ["the movie was great and lovely", "a dull plot", "superb acting all the way through", "bad"]
    data = Encoded(input_ids=tokenizer(texts)["input_ids"], targets=np.array([1, 0, 1, 0]))
    model = AutoModelForSequenceClassification.from_pretrained(work / "start").eval()
    fewshot.add_mean_pooling_layer(model)
    objective = fewshot.PairContrast(data, tokenizer.pad_token_id)
    with torch.no_grad():
        loss = objective.loss(model, np.arange(4), 0, CpuAccelerator(), 0)
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        below = model.base_model(**batch, output_hidden_states=True).hidden_states[-2]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = (below * mask).sum(1) / mask.sum(1)  # each text's own tokens, padding left out
        with fewshot.head_inputs(model) as captured:
            model(**batch)
    labels = torch.tensor([1, 0, 1, 0])
    assert float(loss) == pytest.approx(float(fewshot.pair_loss(mean, labels)), rel=1e-5)
    # not the head's features (tanh of the layer-normalised mean), which the head and end-to-end phase read
    assert float(loss) != pytest.approx(float(fewshot.pair_loss(captured[-1], labels)), rel=1e-3)


def test_the_end_to_end_phase_trains_the_encoder_and_final_layer_only_and_repeats_exactly(work):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from roberta_ft.data.tokens import Encoded

    tokenizer = AutoTokenizer.from_pretrained(work / "start")
    texts = ["the movie was great and lovely", "a dull and awful plot", "superb acting", "boring and bad"] * 4
    data = Encoded(input_ids=tokenizer(texts)["input_ids"], targets=np.array([1, 0, 1, 0] * 4))

    def tuned():
        model = AutoModelForSequenceClassification.from_pretrained(work / "start")
        fewshot.add_mean_pooling_layer(model)
        before = {name: value.clone() for name, value in model.state_dict().items()}
        result = fewshot.end_to_end(model, data, accelerator=CpuAccelerator(), pad_id=tokenizer.pad_token_id, seed=3)
        return model, before, result

    model, before, result = tuned()
    after = model.state_dict()
    changed = {name for name in after if not torch.equal(after[name], before[name])}
    last = len(model.base_model.encoder.layer) - 1
    assert any(name.startswith("roberta.encoder.layer.0.") for name in changed)
    assert {"classifier.out_proj.weight", "classifier.out_proj.bias"} <= changed
    assert not [name for name in changed if f"layer.{last}." in name or "embeddings" in name or "dense" in name
                and name.startswith("classifier.")]  # fmt: skip
    assert result["steps"] == fewshot.END_TO_END["epochs"] and not model.training  # 16 rows: one batch an epoch
    assert all(parameter.requires_grad for parameter in model.parameters())  # as it found them
    again, _, _ = tuned()  # seeded: the same start gives the same model, bit for bit
    assert all(torch.equal(value, again.state_dict()[name]) for name, value in after.items())


def test_the_output_is_a_standard_model_directory(work, tmp_path):
    from transformers import pipeline

    output = tmp_path / "model"
    train(str(work / "train16.csv"), "--model", str(work / "start"), "-o", str(output), "--epochs", "3")
    classifier = pipeline("text-classification", model=str(output))
    texts = ["the film was superb and lovely", "the plot was dreadful and dull"]
    labels = [row["label"] for row in classifier(texts)]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    result = runner.invoke(app, ["--quiet", "predict", str(output), str(tmp_path / "t.txt"), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["label"] for row in json.loads(result.stdout)["predictions"]] == labels
    pytest.importorskip("onnxruntime")
    exported = runner.invoke(app, ["--quiet", "export", str(output), "--json"])
    assert exported.exit_code == 0, exported.output
    record = json.loads(exported.stdout)
    assert record["checks"]["fp32"]["labels_agree"] == 1.0 and record["checks"]["fp32"]["max_abs_diff"] < 1e-3
    # A few-shot model's int8 file is blockwise (per-row activation scales), and predicts through the onnx backend.
    assert record["int8_scheme"] == "blockwise" and record["blockwise_int8"]
    result = runner.invoke(
        app, ["--quiet", "predict", str(output), str(tmp_path / "t.txt"), "--backend", "onnx", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["predictions"]) == len(texts)


@pytest.mark.slow
def test_a_killed_few_shot_run_resumes_to_the_same_model(work, tmp_path):
    """SIGKILL after a checkpoint, then --resume: the contrastive steps and the head fitted after them end
    bitwise like an uninterrupted run (CPU, fp32)."""
    import sys

    from safetensors.torch import load_file

    from tests.helpers import run_and_kill, run_to_completion

    def command(output: Path) -> list[str]:
        return [sys.executable, "-m", "roberta_ft", "--quiet", "train", str(work / "train16.csv")] + [
            *("--model", str(work / "start"), "--method", "few-shot", "--output", str(output)),
            *("--epochs", "3", "--batch-size", "4", "--save-every", "2", "--seed", "5"),
            *("--device", "cpu", "--precision", "fp32"),
        ]  # 16 rows: 4 steps of 4 rows (6 pairs each) per epoch, 12 steps

    run_to_completion(command(tmp_path / "whole"))
    run_and_kill(command(tmp_path / "killed"), tmp_path / "killed", "step-0000004", tmp_path / "killed.log")
    assert run_config(tmp_path / "killed")["status"] in ("training", "interrupted")
    result = runner.invoke(app, [*command(tmp_path / "killed")[3:], "--resume"])
    assert result.exit_code == 0, result.output
    assert run_config(tmp_path / "killed")["status"] == "complete"
    expected, got = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "killed" / "model.safetensors"),
    )
    assert expected.keys() == got.keys()
    assert [key for key in expected if not torch.equal(expected[key], got[key])] == []


# ------------------------------------------------------------------------------------------ bad inputs


def test_a_class_with_a_single_row_is_one_error_line(work, tmp_path):
    data = tmp_path / "one.csv"
    rows = (work / "train16.csv").read_text().splitlines()
    data.write_text("\n".join([*rows, "the movie was fine,meh"]) + "\n")
    result = runner.invoke(
        app, ["--quiet", "train", str(data), "--model", str(work / "start"), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "class 'meh' has only one training row" in result.output
    assert "2 or more per class" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_few_shot_on_regression_is_one_error_line(tmp_path):
    with pytest.raises(ConfigError, match="--method few-shot needs labels"):
        fewshot.choose("few-shot", has_labels=False, multi_label=False, pretrained=True, class_rows={})
    data = tmp_path / "scores.csv"
    rows = "".join(f"a text number {i},another text {i},{i / 10}\n" for i in range(20))
    data.write_text("sentence1,sentence2,label\n" + rows)
    arguments = ["--quiet", "train", str(data), "--task", "glue/stsb", "--model", "tiny", "--method", "few-shot"]
    result = runner.invoke(app, [*arguments, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--method few-shot needs labels" in result.output, result.output


# ------------------------------------------------------------------------------------------ the peer


def test_the_setfit_peer_trains_and_scores_on_the_same_rows(work, tmp_path):
    """benchmarks/peer_setfit.py (the few-shot benchmark's peer) runs on this stack: SetFit on our rows."""
    pytest.importorskip("setfit")
    import importlib.util
    import subprocess
    import sys

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_setfit.py"
    spec = importlib.util.spec_from_file_location("peer_setfit", path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    texts, labels = peer.read_rows(work / "train16.csv", "text", "label")
    eval_texts, eval_labels = peer.read_rows(work / "dev.csv", "text", "label")
    result = peer.train_and_score(
        texts[:8], labels[:8], eval_texts[:40], eval_labels[:40], work / "start", num_iterations=2
    )
    assert result["train_rows"] == 8 and result["eval_rows"] == 40 and 0.0 <= result["accuracy"] <= 1.0
    assert result["train_seconds"] > 0 and result["method"] == "setfit"
    missing = subprocess.run(
        [sys.executable, str(path), "--train", str(tmp_path / "none.csv"), "--eval", str(work / "dev.csv")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "none.csv not found" in missing.stderr
