"""Class imbalance: --class-weights reaches the loss exactly as specified; --metric-for-best picks the best epoch."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import torch

from roberta_ft.config import TrainConfig
from roberta_ft.errors import ConfigError
from roberta_ft.imbalance import parse_class_weights, resolve_class_weights
from roberta_ft.metrics import greater_is_better
from tests.helpers import review


def write_imbalanced(path, n: int = 160, minority: float = 0.2, seed: int = 0):
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = "pos" if rng.random() < minority else "neg"
            writer.writerow([review(rng, label), label])
    return path


def test_parse_class_weights():
    assert parse_class_weights(None) is None
    assert parse_class_weights("auto") == parse_class_weights(" AUTO ") == "auto"
    assert parse_class_weights("1,3") == (1.0, 3.0) == parse_class_weights([1, 3]) == parse_class_weights((1.0, 3.0))
    for bad in ("1", "1,-2", "1,x", "0,1", "1,nan", [1]):
        with pytest.raises(ConfigError, match="class-weights"):
            parse_class_weights(bad)


def test_auto_weights_are_sklearns_balanced_inverse_frequency():
    from sklearn.utils.class_weight import compute_class_weight

    ids = np.array([0] * 30 + [1] * 10 + [2] * 60)
    weights = resolve_class_weights("auto", ids, ["a", "b", "c"])
    assert weights == pytest.approx(compute_class_weight("balanced", classes=np.arange(3), y=ids))
    assert weights == pytest.approx([100 / (3 * 30), 100 / (3 * 10), 100 / (3 * 60)])
    assert resolve_class_weights((1, 3, 2), ids, ["a", "b", "c"]) == (1.0, 3.0, 2.0)
    with pytest.raises(ConfigError, match="gives 2 weights but there are 3 labels"):
        resolve_class_weights((1, 3), ids, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="'b' has no training rows"):
        resolve_class_weights("auto", np.array([0, 2, 2]), ["a", "b", "c"])


def test_the_loop_uses_the_weighted_cross_entropy(tmp_path):
    """The loss the loop optimizes on a known batch is torch's weighted cross-entropy with the given weights."""
    from roberta_ft import loop
    from roberta_ft.best_epoch import BestEpochRule
    from roberta_ft.data import LabelMap, encode_dataset, load_file
    from roberta_ft.lifecycle import loop_settings
    from roberta_ft.modeling import build_tiny
    from roberta_ft.problems import SingleLabel
    from roberta_ft.registry import get_task
    from roberta_ft.runtime import Runtime, make_accelerator

    dataset, _ = load_file(write_imbalanced(tmp_path / "d.csv", n=40), task=get_task("classification"))
    label_map = LabelMap(("neg", "pos"))
    model, tokenizer = build_tiny(dataset["text"], head=SingleLabel(label_map).head(), seed=0)
    for module in model.modules():  # no dropout: the forward pass is the same in and out of the loop
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    with torch.no_grad():  # classes scored differently, so weighting them changes the mean
        model.classifier.out_proj.bias.copy_(torch.tensor([1.0, -1.0]))
    data = encode_dataset(dataset, tokenizer, 64, label_map, source="d.csv")
    targets = torch.from_numpy(data.targets)
    weights = (1.0, 3.0)

    from roberta_ft.data import collate

    with torch.no_grad():
        batch = collate(data.input_ids, np.arange(len(data)), tokenizer.pad_token_id)
        logits = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits
    expected = torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor(weights)).item()
    unweighted = torch.nn.functional.cross_entropy(logits, targets).item()
    assert abs(expected - unweighted) > 0.05  # the check below can tell the two apart

    def run(class_weights):
        config = TrainConfig(
            data="d.csv", output="unused", model="tiny", epochs=1, batch_size=len(data), learning_rate=1e-6,
            weight_decay=0.0, warmup_ratio=0.0, max_grad_norm=0.0, seed=0, eval_batch_size=64,
        ).resolved()  # fmt: skip
        settings = loop_settings(config, BestEpochRule("accuracy"))
        objective = loop.Classification(
            data, data, tokenizer.pad_token_id, SingleLabel(label_map, class_weights).loss,
            lambda scores: {"accuracy": 0.0}, config.eval_batch_size,
        )  # fmt: skip
        history = loop.train(
            model, data, settings, objective=objective,
            accelerator=make_accelerator(Runtime("cpu", "fp32", "test")), on_best=lambda *a: None,
        )  # fmt: skip
        return history.steps[0]["loss"]  # the one step: the whole data set as one batch

    initial = {k: v.clone() for k, v in model.state_dict().items()}
    assert run(weights) == pytest.approx(expected, rel=1e-4)
    model.load_state_dict(initial)
    assert run(None) == pytest.approx(unweighted, rel=1e-4)


def test_train_with_auto_weights_and_metric_for_best(tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    from roberta_ft.train import train

    data = write_imbalanced(tmp_path / "d.csv", n=160)
    result = train(
        TrainConfig(
            data=str(data), output=str(tmp_path / "m"), model="tiny", epochs=3, batch_size=16,
            class_weights="auto", metric_for_best="macro_f1",
        )
    )  # fmt: skip
    run = json.loads((tmp_path / "m" / "run_config.json").read_text())
    train_labels = np.array([label == "pos" for label in _training_labels(data, run)], dtype=np.int64)
    balanced = compute_class_weight("balanced", classes=np.arange(2), y=train_labels)
    assert run["class_weights"] == pytest.approx({"neg": balanced[0], "pos": balanced[1]})
    assert balanced[1] > 1.5 * balanced[0]  # the minority class weighs more
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["primary_metric"] == "macro_f1"
    best = max(metrics["epochs"], key=lambda e: e["macro_f1"])
    assert result.metrics["best"]["epoch"] == best["epoch"]
    assert "| class weights | neg" in (tmp_path / "m" / "README.md").read_text()


def _training_labels(data, run):
    """The training rows' labels: the file less the seeded, stratified validation split train() held out."""
    from roberta_ft.data import load_file, stratified_split
    from roberta_ft.registry import get_task

    dataset, _ = load_file(data, task=get_task("classification"))
    train_set, _ = stratified_split(dataset, run["config"]["validation_split"], run["config"]["seed"])
    return train_set["label"]


def test_unknown_metric_for_best_is_refused_before_any_output(tmp_path):
    from roberta_ft.train import train

    data = write_imbalanced(tmp_path / "d.csv", n=60)
    with pytest.raises(ConfigError) as error:
        train(TrainConfig(data=str(data), output=str(tmp_path / "m"), model="tiny", metric_for_best="f1_macro"))
    message = error.value.one_line()
    assert "--metric-for-best 'f1_macro' is not among the validation metrics" in message
    assert "macro_f1" in message and "accuracy" in message
    assert not (tmp_path / "m").exists()


def test_class_weights_refused_for_regression(tmp_path):
    from roberta_ft.train import train

    path = tmp_path / "s.csv"
    path.write_text("sentence1,sentence2,label\n" + "".join(f"a {i},b {i},{i % 5}.0\n" for i in range(20)))
    with pytest.raises(ConfigError, match="does not apply to regression"):
        train(
            TrainConfig(data=str(path), output=str(tmp_path / "m"), model="tiny", task="glue/stsb", class_weights="1,2")
        )


def test_lower_is_better_metrics():
    assert greater_is_better("accuracy") and greater_is_better("macro_f1") and greater_is_better("pearson")
    assert not greater_is_better("mse") and not greater_is_better("eval_loss")
