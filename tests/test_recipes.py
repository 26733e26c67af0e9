"""--recipe: published settings merged under --config and flags; published dev scores for eval."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import apply_recipe
from roberta_ft.errors import ConfigError
from roberta_ft.recipes import published_score, recipe_names
from roberta_ft.registry import get_task

runner = CliRunner()


def print_config(*args: str) -> dict:
    result = runner.invoke(app, ["train", *args, "-o", "out", "--print-config", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- apply_recipe ---------------------------------------------------------------------------------


def test_a_recipe_fills_only_the_settings_not_given():
    rte = get_task("glue/rte")
    assert recipe_names(rte) == ["roberta-base", "roberta-large"]
    merged = apply_recipe({"data": "glue/rte", "recipe": "roberta-large", "batch_size": 8}, rte)
    assert merged["batch_size"] == 8  # given: kept
    assert merged["learning_rate"] == 2e-5 and merged["epochs"] == 10 and merged["warmup_ratio"] == 0.06
    assert merged["weight_decay"] == 0.1 and tuple(merged["adam_betas"]) == (0.9, 0.98)
    assert merged["adam_epsilon"] == 1e-6 and merged["max_grad_norm"] == 0.0 and merged["max_length"] == 512
    assert merged["model"] == "roberta-large" and merged["recipe"] == "roberta-large"
    assert apply_recipe({"recipe": "roberta-base", "model": "tiny"}, rte)["model"] == "tiny"
    assert apply_recipe({"data": "x.csv"}, get_task("classification")) == {"data": "x.csv"}  # no recipe: unchanged


def test_unknown_recipes_and_tasks_without_recipes_list_what_exists():
    with pytest.raises(ConfigError, match="unknown recipe 'roberta-xl'.*use one of roberta-base, roberta-large"):
        apply_recipe({"recipe": "roberta-xl"}, get_task("glue/rte"))
    with pytest.raises(ConfigError, match="task 'glue/wnli' has no recipes.*tasks with recipes: glue/cola") as error:
        apply_recipe({"recipe": "roberta-base"}, get_task("glue/wnli"))
    assert "glue/wnli," not in str(error.value) and "glue/sst2" in str(error.value)
    with pytest.raises(ConfigError, match="task 'classification' has no recipes"):
        apply_recipe({"recipe": "roberta-base"}, get_task("classification"))


# --- precedence through the CLI -------------------------------------------------------------------


def test_print_config_shows_defaults_then_recipe_then_config_file_then_flags(tmp_path):
    assert print_config("glue/sst2")["learning_rate"] == 2e-5  # no recipe: the dataclass default
    recipe = print_config("glue/sst2", "--recipe", "roberta-base")
    assert (recipe["learning_rate"], recipe["batch_size"], recipe["epochs"]) == (1e-5, 32, 10)
    assert recipe["model"] == "roberta-base" and recipe["max_grad_norm"] == 0.0 and recipe["recipe"] == "roberta-base"

    config = tmp_path / "run.toml"
    config.write_text('batch_size = 8\nepochs = 3\nrecipe = "roberta-large"\n')
    merged = print_config("glue/sst2", "--config", str(config), "--epochs", "2", "--lr", "3e-5")
    assert merged["recipe"] == "roberta-large" and merged["model"] == "roberta-large"  # recipe from the file
    assert merged["batch_size"] == 8  # file over recipe
    assert merged["epochs"] == 2 and merged["learning_rate"] == 3e-5  # flags over file and recipe
    assert merged["warmup_ratio"] == 0.06 and merged["max_length"] == 512  # the rest from the recipe
    assert print_config("glue/sst2", "--recipe", "roberta-base", "--model", "tiny")["model"] == "tiny"


def test_a_bad_recipe_is_one_line_exit_2():
    result = runner.invoke(app, ["train", "glue/wnli", "-o", "out", "--recipe", "roberta-base"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "has no recipes" in " ".join(result.output.split())


# --- published scores -----------------------------------------------------------------------------


def run_config(model: str, recipe: str | None = None) -> dict:
    return {"task": "x", "config": {"model": model, "recipe": recipe}}


def test_published_score_is_a_fraction_on_the_published_metric():
    assert published_score(get_task("glue/rte"), run_config("roberta-base")) == {
        "model": "roberta-base",
        "metric": "accuracy",
        "value": pytest.approx(0.787),
        "source": get_task("glue/rte").published_source,
    }
    mrpc = published_score(get_task("glue/mrpc"), run_config("roberta-large"))
    assert mrpc["metric"] == "accuracy" and mrpc["value"] == pytest.approx(0.909)  # not F1, the primary metric
    stsb = published_score(get_task("glue/stsb"), run_config("roberta-base"))
    assert stsb["metric"] == "pearson" and stsb["value"] == pytest.approx(0.912)
    assert published_score(get_task("glue/cola"), run_config("roberta-base"))["metric"] == "matthews_correlation"


def test_the_base_model_comes_from_the_model_name_or_the_recipe():
    rte = get_task("glue/rte")
    assert published_score(rte, run_config("FacebookAI/roberta-large"))["model"] == "roberta-large"
    assert published_score(rte, run_config("/models/checkpoint", recipe="roberta-base"))["model"] == "roberta-base"
    assert published_score(rte, run_config("tiny", recipe="roberta-base")) is None  # never a roberta-base model
    assert published_score(rte, run_config("distilroberta-base")) is None
    assert published_score(get_task("glue/wnli"), run_config("roberta-base")) is None  # nothing published
    assert published_score(rte, {}) is None  # a model not trained by roberta-ft
