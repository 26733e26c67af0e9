"""Predictions: same as the in-memory model, in input order, streaming, loadable by pipeline()."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from roberta_ft.config import PredictConfig
from roberta_ft.predict import predict
from tests.helpers import review


def _reference_labels(model_dir, texts):
    """Labels from the saved model, one text at a time, with plain transformers (no sorting, no batching)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels, probabilities = [], []
    with torch.inference_mode():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            p = logits.softmax(-1)
            labels.append(model.config.id2label[int(p.argmax())])
            probabilities.append(float(p.max()))
    return labels, probabilities


def test_round_trip_matches_the_model_and_keeps_input_order(trained_dir, tmp_path):
    import random

    rng = random.Random(11)
    # Very different lengths, so length-sorted batching really reorders the work.
    texts = [" ".join(review(rng, rng.choice(["pos", "neg"])) for _ in range(rng.randint(1, 6))) for _ in range(150)]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "pred.csv"
    result = predict(
        PredictConfig(
            model_dir=str(trained_dir),
            input=str(source),
            output=str(out),
            batch_size=16,
            chunk_lines=40,
            precision="fp32",
        )
    )
    assert result.num_lines == 150
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == texts
    assert [int(r["line"]) for r in rows] == list(range(1, 151))
    labels, probabilities = _reference_labels(trained_dir, texts)
    assert [r["label"] for r in rows] == labels
    np.testing.assert_allclose([float(r["probability"]) for r in rows], probabilities, atol=1e-4)


def test_pipeline_loads_the_output_dir_with_real_label_names(trained_dir):
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(trained_dir), device=-1)
    results = classifier(["the movie was wonderful and it was wonderful", "the plot was dreadful and it was dreadful"])
    assert [r["label"] for r in results] == ["pos", "neg"]


def test_pair_model_reads_tab_separated_lines(tmp_path):
    from roberta_ft.config import TrainConfig
    from roberta_ft.errors import DataError
    from roberta_ft.train import train
    from tests.helpers import write_pairs

    model = train(
        TrainConfig(
            data=str(write_pairs(tmp_path / "p.csv", n=200)), output=str(tmp_path / "m"), model="tiny", epochs=2
        )
    ).output_dir
    source = tmp_path / "pairs.txt"
    source.write_text("the plot was dull\tthe movie was great and it was great\n")
    out = tmp_path / "pred.jsonl"
    predict(PredictConfig(model_dir=str(model), input=str(source), output=str(out)))
    row = json.loads(out.read_text())
    assert (
        row["text"] == "the plot was dull"
        and row["text_pair"].startswith("the movie")
        and row["label"] in ("agree", "disagree")
    )

    source.write_text("only one text here\n")
    try:
        predict(PredictConfig(model_dir=str(model), input=str(source), output=str(tmp_path / "x.jsonl")))
    except DataError as error:
        assert "line 1 has no tab" in error.one_line()
    else:
        raise AssertionError("a single text given to a pair model must be refused")
    assert not (tmp_path / "x.jsonl").exists()  # no half-written output
