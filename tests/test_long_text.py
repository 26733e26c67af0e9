"""--long-text: a text longer than --max-length is classified from its whole content, not just its start."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from roberta_ft.config import EvalConfig, PredictConfig, TrainConfig
from roberta_ft.data import tokens as long_text
from roberta_ft.errors import ConfigError
from tests.helpers import long_review, write_long  # noqa: F401

MAX_LENGTH = 24


@pytest.fixture(scope="module")
def tokenizer():
    from roberta_ft.modeling import train_tiny_tokenizer

    rng = random.Random(0)
    return train_tiny_tokenizer([long_review(rng, rng.choice(["pos", "neg"])) for _ in range(200)])


def content(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_head_tail_keeps_the_first_and_last_tokens(tokenizer):
    text = long_review(random.Random(1), "pos")
    tokens = content(tokenizer, text)
    assert len(tokens) > MAX_LENGTH + 10
    ids, types, owners, long_texts = long_text.tokenize(tokenizer, [text, "a day"], None, MAX_LENGTH, "head-tail")
    row = ids[0]
    assert len(row) == MAX_LENGTH and long_texts == 1 and owners.tolist() == [0, 1]
    assert row[0] == tokenizer.bos_token_id and row[-1] == tokenizer.eos_token_id
    budget = MAX_LENGTH - 2
    head = int(budget * long_text.HEAD_SHARE)
    assert row[1 : 1 + head] == tokens[:head] and row[1 + head : -1] == tokens[-(budget - head) :]
    assert ids[1] == tokenizer("a day")["input_ids"]  # short texts are untouched


def test_sliding_windows_cover_the_whole_text(tokenizer):
    texts = [long_review(random.Random(2), "neg"), "a day"]
    ids, _, owners, long_texts = long_text.tokenize(tokenizer, texts, None, MAX_LENGTH, "sliding", stride=8)
    tokens = content(tokenizer, texts[0])
    windows = [row for row, owner in zip(ids, owners, strict=True) if owner == 0]
    assert len(windows) > 2 and long_texts == len(windows) - 1 and owners.tolist()[-1] == 1
    assert all(len(w) <= MAX_LENGTH and w[0] == tokenizer.bos_token_id for w in windows)
    inner = [w[1:-1] for w in windows]
    assert inner[0] == tokens[: MAX_LENGTH - 2] and inner[-1] == tokens[-len(inner[-1]) :]
    for before, after in zip(inner, inner[1:], strict=False):
        assert before[-8:] == after[:8]  # consecutive windows share --stride tokens
    rebuilt = inner[0] + [t for w in inner[1:] for t in w[8:]]
    assert rebuilt == tokens


def test_per_text_averages_the_windows_logits():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]], dtype=np.float32)
    np.testing.assert_allclose(long_text.per_text(logits, np.array([0, 0, 1]), 2), [[2.0, 1.0], [0.0, 5.0]])
    assert long_text.per_text(logits, None, 3) is logits


def test_options_are_checked():
    with pytest.raises(ConfigError, match="--long-text 'middle' is not valid"):
        TrainConfig(data="d.csv", output="o", long_text="middle").resolved()
    with pytest.raises(ConfigError, match="--stride applies to --long-text sliding"):
        TrainConfig(data="d.csv", output="o", stride=10).resolved()
    with pytest.raises(ConfigError, match="leaves no new tokens"):
        TrainConfig(data="d.csv", output="o", long_text="sliding", max_length=32, stride=31).resolved()
    with pytest.raises(ConfigError, match="single texts, not text pairs"):
        long_text.tokenize(None, ["a"], ["b"], 16, "sliding")


@pytest.mark.slow
def test_sliding_reads_what_truncation_cuts_off(tmp_path):
    from roberta_ft.evaluate import evaluate
    from roberta_ft.predict import predict
    from roberta_ft.train import train

    train_file, dev_file = write_long(tmp_path / "train.csv", 200, seed=0), write_long(tmp_path / "dev.csv", 60, seed=1)
    scores = {}
    for strategy in ("truncate", "sliding"):
        result = train(
            TrainConfig(
                data=str(train_file), validation=str(dev_file), output=str(tmp_path / strategy), model="tiny",
                epochs=6, batch_size=16, max_length=MAX_LENGTH, long_text=strategy,
            )
        )  # fmt: skip
        scores[strategy] = result.metrics["best"]["accuracy"]
    assert scores["truncate"] <= 0.7  # the first 24 tokens hold no hint of the label
    assert scores["sliding"] >= 0.9

    model = tmp_path / "sliding"
    run = json.loads((model / "run_config.json").read_text())
    assert run["config"]["long_text"] == "sliding" and run["num_train_examples"] == 200
    # eval and predict read texts as the model was trained to, without being told.
    test_file = write_long(tmp_path / "test.csv", 40, seed=2)
    assert evaluate(EvalConfig(model_dir=str(model), data=str(test_file))).metrics["accuracy"] >= 0.9
    rng = random.Random(3)
    texts = [long_review(rng, label) for label in ("pos", "neg", "pos", "neg")]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "pred.jsonl"
    predict(PredictConfig(model_dir=str(model), input=str(source), output=str(out)))
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == ["pos", "neg", "pos", "neg"]
