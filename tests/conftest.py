"""Hermetic fixtures: small synthetic data files and a tiny RoBERTa trained on them (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import NEGATIVE, NEUTRAL, POSITIVE, review, write_pairs, write_reviews  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (`-n auto`) each worker gets its share of the cores, for torch in this process and
# for every process a test starts; one process alone keeps torch's own choice.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))


# Under `-n`, whole files go to the workers (`--dist loadfile`) in collection order
# (`--no-loadscope-reorder`, pyproject.toml): the longest files (measured with `--durations=0`) are
# collected first, so the run does not end with one worker alone on a long file while the other idles.
LONGEST_FIRST = (
    "test_pretrain.py",
    "test_tune.py",
    "test_serve.py",
    "test_glue_end_to_end.py",
    "test_large_data.py",
    "test_distributed.py",
    "test_onnx.py",
    "test_reports.py",
    "test_resume.py",
    "test_performance_features.py",
    "test_fewshot.py",
    "test_architecture.py",
    "test_long_text.py",
    "test_audit.py",
    "test_glue_real.py",
    "test_metrics.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its own order


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: an end-to-end training run (deselect with -m 'not slow')")
    if _WORKERS > 1:
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session", autouse=True)
def _token_cache_in_tmp(tmp_path_factory):
    """The on-disk token cache goes to a per-session folder, never the user's ~/.cache."""
    os.environ["ROBERTA_FT_CACHE"] = str(tmp_path_factory.mktemp("token-cache"))


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


@pytest.fixture(scope="session")
def few_shot_work(tmp_path_factory) -> Path:
    """A small 'pretrained' start model (random tiny weights and its tokenizer) and few-shot rows."""
    from tests.helpers import write_few_shot_work

    return write_few_shot_work(tmp_path_factory.mktemp("fewshot"))
