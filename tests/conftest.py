"""Hermetic fixtures: small synthetic data files and a tiny RoBERTa trained on them (no network)."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["great", "excellent", "wonderful", "loved", "superb", "fantastic", "delightful", "brilliant"]
NEGATIVE = ["awful", "terrible", "boring", "hated", "dreadful", "horrible", "dull", "disappointing"]
NEUTRAL = ["the movie", "this film", "the plot", "the acting", "the ending", "the music", "the cast", "it"]


@pytest.fixture(scope="session", autouse=True)
def _token_cache_in_tmp(tmp_path_factory):
    """The on-disk token cache goes to a per-session folder, never the user's ~/.cache."""
    os.environ["ROBERTA_FT_CACHE"] = str(tmp_path_factory.mktemp("token-cache"))


def review(rng: random.Random, label: str) -> str:
    cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
    return f"{rng.choice(NEUTRAL)} was {cue} and {rng.choice(NEUTRAL)} {rng.choice(['felt', 'seemed', 'was'])} {cue}"


def write_reviews(path: Path, n: int = 240, seed: int = 0, *, text="review", label="sentiment", fmt="csv") -> Path:
    """A clearly separable two-class dataset with string labels and non-default column names."""
    rng = random.Random(seed)
    rows = [(review(rng, lab), lab) for lab in (rng.choice(["pos", "neg"]) for _ in range(n))]
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({text: t, label: lab}) + "\n" for t, lab in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            writer.writerow([text, label])
            writer.writerows(rows)
    return path


def write_pairs(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Pairs whose label is decided by the SECOND text only: a model that drops the pair scores at chance."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            first = f"{rng.choice(NEUTRAL)} {rng.choice(['felt', 'seemed', 'was'])} {rng.choice(POSITIVE + NEGATIVE)}"
            writer.writerow([first, review(rng, label), "agree" if label == "pos" else "disagree"])
    return path


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> Path:
    return write_reviews(tmp_path_factory.mktemp("data") / "reviews.csv")


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, reviews_csv) -> Path:
    """One tiny model trained once and shared by the eval/predict/pipeline tests."""
    from roberta_ft.config import TrainConfig
    from roberta_ft.train import train

    output = tmp_path_factory.mktemp("runs") / "reviews"
    train(TrainConfig(data=str(reviews_csv), output=str(output), model="tiny", epochs=4, seed=1))
    return output


@pytest.fixture
def counted_tokenize(monkeypatch, tmp_path):
    """Point the token cache at an empty folder and count the real tokenizer calls (texts per call)."""
    from roberta_ft.data import tokens

    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    calls = []
    real = tokens.tokenize

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens, "tokenize", counting)
    return calls
