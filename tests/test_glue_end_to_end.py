"""GLUE end to end on the fixture GLUE folder: train every task, eval (published scores, label order),
--seeds, glue-report, and leaderboard submission files."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import EvalConfig, TrainConfig
from roberta_ft.errors import ConfigError
from roberta_ft.evaluate import evaluate
from roberta_ft.train import train
from roberta_ft_tasks.glue import glue_average
from tests.glue_fixtures import write_glue_dir

runner = CliRunner()

pytestmark = pytest.mark.slow  # end-to-end training runs (-m 'not slow' leaves them out)

TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
METRICS = {
    "cola": {"matthews_correlation"},
    "sst2": {"accuracy"},
    "mrpc": {"f1", "accuracy"},
    "stsb": {"pearson", "spearmanr"},
    "qqp": {"f1", "accuracy"},
    "mnli": {"accuracy"},
    "qnli": {"accuracy"},
    "rte": {"accuracy"},
    "wnli": {"accuracy"},
}
# Rows of each fixture dev split (MNLI: dev_matched).
DEV_ROWS = {"cola": 2, "sst2": 2, "mrpc": 2, "stsb": 2, "qqp": 2, "mnli": 2, "qnli": 1, "rte": 2, "wnli": 1}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory) -> Path:
    return write_glue_dir(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def models(glue_dir, tmp_path_factory) -> dict[str, Path]:
    """One tiny model per GLUE task, trained on the fixture train split and validated on its dev split."""
    runs = tmp_path_factory.mktemp("runs")
    return {
        key: train(
            TrainConfig(
                data=f"glue/{key}", output=str(runs / key), model="tiny", epochs=1, data_dir=str(glue_dir), seed=1
            )
        ).output_dir
        for key in TASKS
    }


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def copy_model(source: Path, target: Path, *, model: str | None = None) -> Path:
    shutil.copytree(source, target)
    if model is not None:  # as if trained from that base model
        run = read_json(target / "run_config.json")
        run["config"]["model"] = model
        (target / "run_config.json").write_text(json.dumps(run), encoding="utf-8")
    return target


def edit_head(model_dir: Path, *, order: list[int] | None = None, names: list[str] | None = None, shift=0.0):
    """Reorder the classifier's output rows (and id2label/label2id) or shift its bias, in place."""
    weights = load_file(model_dir / "model.safetensors")
    for key in ("classifier.out_proj.weight", "classifier.out_proj.bias"):
        if order is not None:
            weights[key] = weights[key][order].contiguous()
    weights["classifier.out_proj.bias"] = weights["classifier.out_proj.bias"] + shift
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    if names is not None:
        config = read_json(model_dir / "config.json")
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
        (model_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")


# --- train ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", TASKS)
def test_every_glue_task_trains_on_train_and_validates_on_dev(models, key):
    model_dir = models[key]
    run = read_json(model_dir / "run_config.json")
    metrics = read_json(model_dir / "metrics.json")
    assert run["task"] == f"glue/{key}" and run["status"] == "complete"
    assert run["num_validation_examples"] == DEV_ROWS[key]
    assert set(metrics["best"]) - {"epoch", "step", "train_loss"} == METRICS[key]
    config = read_json(model_dir / "config.json")
    if key == "stsb":  # regression: one output, MSE loss
        assert len(config["id2label"]) == 1
        assert config["problem_type"] == "regression" and run["label_names"] is None
    else:
        from roberta_ft.registry import get_task

        assert list(config["id2label"].values()) == list(get_task(f"glue/{key}").label_names)


def test_mnli_validates_on_the_matched_dev_set(models):
    run = read_json(models["mnli"] / "run_config.json")
    assert run["validation_source"] == "glue/mnli validation_matched"


def test_stsb_is_trained_with_the_mse_loss(models, glue_dir):
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from roberta_ft.problems import Regression

    model = AutoModelForSequenceClassification.from_pretrained(models["stsb"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(models["stsb"])
    batch = tokenizer(["A plane is taking off."], ["An air plane is taking off."], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    loss = Regression().loss(logits, torch.tensor([5.0]))
    assert float(loss) == pytest.approx(float((logits[0, 0] - 5.0) ** 2), rel=1e-5)
    assert np.isfinite(read_json(models["stsb"] / "metrics.json")["best"]["train_loss"])


def test_train_through_the_cli_with_data_dir(glue_dir, tmp_path):
    out = tmp_path / "rte"
    result = invoke(
        "train",
        "glue/rte",
        "--output",
        str(out),
        "--model",
        "tiny",
        "--epochs",
        "1",
        "--data-dir",
        str(glue_dir),
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task"] == "glue/rte"
    assert read_json(out / "run_config.json")["validation_source"] == "glue/rte validation"


def test_glue_dir_from_the_environment(glue_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    result = train(TrainConfig(data="glue/wnli", output=str(tmp_path / "w"), model="tiny", epochs=1))
    assert read_json(result.output_dir / "run_config.json")["num_train_examples"] == 3


def test_a_recipe_is_recorded_in_run_config(glue_dir, tmp_path):
    out = tmp_path / "cola"
    result = invoke(
        "train", "glue/cola", "-o", str(out), "--recipe", "roberta-base", "--model", "tiny", "--epochs", "1",
        "--data-dir", str(glue_dir), "--max-length", "64",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = read_json(out / "run_config.json")["config"]
    assert config["recipe"] == "roberta-base" and config["batch_size"] == 16 and config["learning_rate"] == 1e-5


# --- eval -----------------------------------------------------------------------------------------


def test_eval_on_the_dev_split_of_every_task(models):
    for key in TASKS:
        result = evaluate(EvalConfig(model_dir=str(models[key]), data=f"glue/{key}"))
        assert result.num_examples == DEV_ROWS[key] and set(result.metrics) == METRICS[key]
        assert "published" not in result.extras  # a tiny model has no published reference


def test_an_mnli_model_evaluates_on_the_mismatched_dev_set(models):
    result = evaluate(EvalConfig(model_dir=str(models["mnli"]), data="glue/mnli-mm"))
    assert result.task == "glue/mnli-mm" and result.num_examples == 3


def test_eval_shows_the_published_score_beside_the_measured_one(models, tmp_path):
    rte = copy_model(models["rte"], tmp_path / "rte", model="roberta-large")
    result = invoke("eval", str(rte), "glue/rte", "--json")
    assert result.exit_code == 0, result.output
    published = json.loads(result.stdout)["published"]
    assert (published["model"], published["metric"]) == ("roberta-large", "accuracy")
    assert published["value"] == pytest.approx(0.866)
    table = invoke("eval", str(rte), "glue/rte")
    assert table.exit_code == 0
    assert "published (roberta-large)" in table.stdout and "0.8660" in table.stdout

    mrpc = copy_model(models["mrpc"], tmp_path / "mrpc", model="FacebookAI/roberta-base")
    published = json.loads(invoke("eval", str(mrpc), "glue/mrpc", "--json").stdout)["published"]
    assert published["metric"] == "accuracy" and published["value"] == pytest.approx(0.902)
    stsb = copy_model(models["stsb"], tmp_path / "stsb", model="roberta-base")
    published = json.loads(invoke("eval", str(stsb), "glue/stsb", "--json").stdout)["published"]
    assert published["metric"] == "pearson" and published["value"] == pytest.approx(0.912)


def test_published_scores_are_for_the_dev_split_only(models, tmp_path, glue_dir):
    rte = copy_model(models["rte"], tmp_path / "rte", model="roberta-base")
    on_train = evaluate(EvalConfig(model_dir=str(rte), data="glue/rte", split="train"))
    assert "published" not in on_train.extras
    dev_file = tmp_path / "dev.csv"
    dev_file.write_text("sentence1,sentence2,label\nA b.,C d.,entailment\nE f.,G h.,not_entailment\n")
    assert "published" not in evaluate(EvalConfig(model_dir=str(rte), data=str(dev_file))).extras


# --- label alignment ------------------------------------------------------------------------------

NLI_FILE = "premise,hypothesis,label\n" + "".join(
    f"{premise},{hypothesis},{label}\n"
    for premise, hypothesis, label in [
        ("The cat sat on the mat.", "A cat is sitting.", "entailment"),
        ("You don't know that.", "You are sure of it.", "contradiction"),
        ("He went to the store.", "He may have bought milk.", "neutral"),
        ("It rained.", "It was wet.", "entailment"),
        ("The answer is no.", "The answer is yes.", "contradiction"),
        ("This site includes a list.", "The site has no list.", "contradiction"),
        ("The new rights are nice enough.", "Everyone really likes them.", "neutral"),
        ("Your contribution helped.", "You helped.", "entailment"),
    ]
)


def evaluate_nli(model_dir: Path, data: Path) -> dict:
    result = evaluate(EvalConfig(model_dir=str(model_dir), data=str(data), task="glue/mnli")).to_dict()
    return {"metrics": result["metrics"], "confusion": result["report"]["confusion_matrix"]}


def test_a_model_with_reordered_upper_case_labels_scores_the_same(models, tmp_path):
    data = tmp_path / "nli.csv"
    data.write_text(NLI_FILE)
    permuted = copy_model(models["mnli"], tmp_path / "permuted")
    # Original order: entailment, neutral, contradiction; new id i holds old id order[i].
    edit_head(permuted, order=[2, 0, 1], names=["CONTRADICTION", "ENTAILMENT", "NEUTRAL"])
    assert read_json(permuted / "config.json")["id2label"]["0"] == "CONTRADICTION"
    assert evaluate_nli(permuted, data) == evaluate_nli(models["mnli"], data)
    dev_original = evaluate(EvalConfig(model_dir=str(models["mnli"]), data="glue/mnli"))
    dev_permuted = evaluate(EvalConfig(model_dir=str(permuted), data="glue/mnli"))
    assert dev_permuted.metrics == dev_original.metrics


def test_generic_label_names_fall_back_to_index_order_with_a_log_message(models, tmp_path, caplog, monkeypatch):
    # The CLI's logging set-up stops propagation; the records must reach caplog's root handler here.
    monkeypatch.setattr(logging.getLogger("roberta_ft"), "propagate", True)
    data = tmp_path / "nli.csv"
    data.write_text(NLI_FILE)
    generic = copy_model(models["mnli"], tmp_path / "generic")
    edit_head(generic, names=["LABEL_0", "LABEL_1", "LABEL_2"])
    # A model from elsewhere (roberta-ft refuses its own models whose label names were lost).
    (generic / "run_config.json").unlink()
    with caplog.at_level(logging.INFO, logger="roberta_ft"):
        scores = evaluate_nli(generic, data)
    assert scores == evaluate_nli(models["mnli"], data)
    assert "labels are generic (LABEL_0, LABEL_1, LABEL_2)" in caplog.text
    assert "task's order (entailment, neutral, contradiction)" in caplog.text


def test_a_label_count_mismatch_is_a_clear_config_error(models):
    with pytest.raises(
        ConfigError, match=r"the model has 2 labels \(entailment, not_entailment\) but task 'glue/mnli'"
    ):
        evaluate(EvalConfig(model_dir=str(models["rte"]), data="glue/mnli"))
    result = invoke("eval", str(models["rte"]), "glue/mnli")
    assert result.exit_code == 2 and "has 3" in " ".join(result.output.split())


# --- --seeds --------------------------------------------------------------------------------------


def test_seeds_train_one_model_dir_per_seed_and_summarize(glue_dir, tmp_path):
    out = tmp_path / "rte"
    result = invoke(
        "train", "glue/rte", "-o", str(out), "--model", "tiny", "--epochs", "1", "--data-dir", str(glue_dir),
        "--seeds", "3,1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == read_json(out / "seeds.json")
    assert summary["seeds"] == [3, 1] and summary["status"] == "complete" and summary["primary_metric"] == "accuracy"
    values = []
    for seed in (3, 1):
        run_dir = out / f"seed-{seed}"
        assert (run_dir / "model.safetensors").exists() and (run_dir / "tokenizer.json").exists()
        assert read_json(run_dir / "run_config.json")["config"]["seed"] == seed
        values.append(read_json(run_dir / "metrics.json")["best"]["accuracy"])
    stats = summary["summary"]["accuracy"]
    assert stats["values"] == values and stats["min"] == min(values) and stats["max"] == max(values)
    assert set(summary["summary"]) == {"accuracy"}

    # --resume keeps the finished seeds as they are and trains the missing one.
    stamps = {seed: (out / f"seed-{seed}" / "model.safetensors").stat().st_mtime_ns for seed in (3, 1)}
    resumed = invoke(
        "train", "glue/rte", "-o", str(out), "--model", "tiny", "--epochs", "1", "--data-dir", str(glue_dir),
        "--seeds", "3,1,5", "--resume", "--json",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    resumed_summary = json.loads(resumed.stdout)
    assert resumed_summary["seeds"] == [3, 1, 5] and resumed_summary["summary"]["accuracy"]["values"][:2] == values
    assert {seed: (out / f"seed-{seed}" / "model.safetensors").stat().st_mtime_ns for seed in (3, 1)} == stamps
    assert (out / "seed-5" / "model.safetensors").exists()

    table = invoke(
        "train", "glue/rte", "-o", str(out), "--model", "tiny", "--epochs", "1", "--data-dir", str(glue_dir),
        "--seeds", "2", "--overwrite",
    )  # fmt: skip
    assert table.exit_code == 0 and "median" in table.stdout and "seed 2" in table.stdout
    assert sorted(p.name for p in out.iterdir()) == ["seed-2", "seeds.json"]


def test_seeds_summary_statistics_and_bad_seed_lists(tmp_path):
    from roberta_ft.seeds import parse_seeds, summarize

    stats = summarize([0.5, 0.7, 0.6, 0.9, 0.6])
    assert stats["median"] == 0.6 and stats["mean"] == pytest.approx(0.66)
    assert stats["std"] == pytest.approx(0.1517, abs=1e-4)  # the sample standard deviation
    assert (stats["min"], stats["max"]) == (0.5, 0.9) and summarize([0.7])["std"] == 0.0
    assert parse_seeds(" 1, 2,3 ") == [1, 2, 3]
    for text, message in (
        ("1,x", "not a list of integers"),
        ("1,1", "repeats"),
        ("", "names no seed"),
        ("-1", "non-negative"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_seeds(text)
    result = invoke("train", "glue/rte", "-o", str(tmp_path / "o"), "--seeds", "1,2", "--seed", "3")
    assert result.exit_code == 2 and "exclude each other" in result.output
    assert not (tmp_path / "o").exists()


# --- glue-report ----------------------------------------------------------------------------------


def test_glue_report_evaluates_each_model_on_its_task_and_averages(models):
    dirs = [str(models[key]) for key in ("cola", "stsb", "mnli", "mrpc")]
    result = invoke("glue-report", *dirs, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    tasks = [item["task"] for item in report["tasks"]]
    assert tasks == ["glue/cola", "glue/stsb", "glue/mnli", "glue/mnli-mm", "glue/mrpc"]  # MNLI: both dev sets
    assert [item["num_examples"] for item in report["tasks"]] == [2, 2, 2, 3, 2]
    expected = {
        item["task"]: evaluate(EvalConfig(model_dir=item["model_dir"], data=item["task"])).metrics
        for item in report["tasks"]
    }
    assert {item["task"]: item["metrics"] for item in report["tasks"]} == expected
    assert report["glue_average"] == pytest.approx(glue_average(expected))
    assert report["scores"]["glue/mrpc"] == pytest.approx(50 * sum(expected["glue/mrpc"].values()))
    table = invoke("glue-report", *dirs)
    assert table.exit_code == 0 and "GLUE score" in table.stdout and "average" in table.stdout
    assert f"{report['glue_average']:.1f}" in table.stdout


def test_glue_report_refuses_non_glue_models_and_repeated_tasks(models, trained_dir):
    result = invoke("glue-report", str(models["rte"]), str(trained_dir))
    assert result.exit_code == 2 and "not a GLUE task" in " ".join(result.output.split())
    result = invoke("glue-report", str(models["rte"]), str(models["rte"]))
    assert result.exit_code == 2 and "both give glue/rte results" in " ".join(result.output.split())


# --- leaderboard submission files -----------------------------------------------------------------


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_predict_writes_a_submission_for_a_classification_task(models, tmp_path):
    result = invoke(
        "predict", str(models["sst2"]), "glue/sst2", "--split", "test", "--submission", str(tmp_path / "sub"),
        "--output", str(tmp_path / "rows.jsonl"), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["submission"] == str(tmp_path / "sub" / "SST-2.tsv")
    submission = lines(tmp_path / "sub" / "SST-2.tsv")
    rows = [json.loads(line) for line in lines(tmp_path / "rows.jsonl")]
    assert submission[0] == "index\tprediction" and len(submission) == 3
    ids = {"negative": "0", "positive": "1"}
    assert submission[1:] == [f"{row['idx']}\t{ids[row['label']]}" for row in rows]
    assert [row["text"] for row in rows] == ["uneasy mishmash of styles and genres .", "fun ."]


def test_predict_mnli_writes_mnli_m_with_label_names_in_any_model_label_order(models, tmp_path):
    result = invoke("predict", str(models["mnli"]), "glue/mnli", "--submission", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    submission = lines(tmp_path / "a" / "MNLI-m.tsv")
    assert submission[0] == "index\tprediction" and submission[1].split("\t")[0] == "0" and len(submission) == 2
    assert submission[1].split("\t")[1] in ("entailment", "neutral", "contradiction")
    # Dev split too, where order matters: a model with reordered labels gives the same file.
    permuted = copy_model(models["mnli"], tmp_path / "permuted")
    edit_head(permuted, order=[1, 2, 0], names=["NEUTRAL", "CONTRADICTION", "ENTAILMENT"])
    for model_dir, folder in ((models["mnli"], "b"), (permuted, "c")):
        args = ("predict", str(model_dir), "glue/mnli-mm", "--split", "validation", "--submission")
        assert invoke(*args, str(tmp_path / folder)).exit_code == 0
    assert lines(tmp_path / "b" / "MNLI-mm.tsv") == lines(tmp_path / "c" / "MNLI-mm.tsv")
    assert len(lines(tmp_path / "b" / "MNLI-mm.tsv")) == 4


def test_predict_stsb_submission_is_clipped_to_zero_five(models, tmp_path):
    for shift, expected in ((+20.0, "5.000"), (-20.0, "0.000")):
        model_dir = copy_model(models["stsb"], tmp_path / f"stsb{shift}")
        edit_head(model_dir, shift=shift)
        result = invoke("predict", str(model_dir), "glue/stsb", "--submission", str(tmp_path / f"sub{shift}"))
        assert result.exit_code == 0, result.output
        assert lines(tmp_path / f"sub{shift}" / "STS-B.tsv") == ["index\tprediction", f"0\t{expected}"]
    rows = invoke("predict", str(models["stsb"]), "glue/stsb")
    assert rows.exit_code == 0 and rows.stdout.split("\t")[0] == "0"  # idx<TAB>score on stdout


def test_submission_needs_a_task_dataset_and_a_matching_model(models, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("fun .\n")
    result = invoke("predict", str(models["sst2"]), str(texts), "--submission", str(tmp_path / "sub"))
    assert result.exit_code == 2 and "--submission needs a task dataset" in " ".join(result.output.split())
    result = invoke("predict", str(models["mrpc"]), "glue/stsb", "--submission", str(tmp_path / "sub"))
    assert result.exit_code == 2 and "is a regression task" in " ".join(result.output.split())
    result = invoke("predict", str(models["sst2"]), "glue/stsb", "--submission", str(tmp_path / "sub"))
    assert result.exit_code == 2 and "trained on single texts" in " ".join(result.output.split())
    assert not (tmp_path / "sub").exists()
