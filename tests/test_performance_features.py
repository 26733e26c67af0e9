"""What the speed work must not change: every sample once, metrics, input order, flat memory; and the token cache."""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest

from roberta_ft import data
from roberta_ft.config import PredictConfig, TrainConfig
from roberta_ft.modeling import train_tiny_tokenizer
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE, review


def _varied_reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Separable reviews of very different lengths, so bucketing really changes the batches."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        filler = " ".join(rng.choice(NEUTRAL) for _ in range(rng.randint(0, 8)))
        rows.append((f"{filler} {review(rng, label)}".strip(), label))
    return rows


def _write_csv(path, rows) -> str:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


# ------------------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("pools", [64, 1])
def test_bucketed_and_unbucketed_batches_keep_every_sample_exactly_once(pools):
    lengths = np.random.default_rng(3).integers(3, 120, size=1001)
    for epoch in range(3):
        batches = data.bucketed_batches(lengths, 32, seed=7, epoch=epoch, bucket_batches=pools)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1001))
        assert sum(len(batch) != 32 for batch in batches) <= 1


def test_unbucketed_batches_pad_like_random_batches():
    lengths = np.random.default_rng(0).integers(3, 200, size=2048)

    def padded(batches):
        return sum(len(batch) * lengths[batch].max() for batch in batches)

    bucketed = padded(data.bucketed_batches(lengths, 32, seed=1, epoch=0))
    plain = padded(data.bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_batches=1))
    assert bucketed < 0.75 * plain  # bucketing is what cuts the padding, and the switch really turns it off


def test_padding_to_multiples_of_8_only_on_cuda():
    assert data.padding_multiple("cuda") == 8
    assert data.padding_multiple("cpu") == 1
    batch = data.collate([[5] * 9, [5] * 3], [0, 1], pad_id=1, pad_to_multiple_of=data.padding_multiple("cpu"))
    assert batch["input_ids"].shape == (2, 9)


def test_bucketing_does_not_change_metrics_beyond_noise(tmp_path):
    from roberta_ft.train import train

    train_csv = _write_csv(tmp_path / "train.csv", _varied_reviews(320, seed=1))
    valid_csv = _write_csv(tmp_path / "valid.csv", _varied_reviews(120, seed=2))
    accuracy = {}
    for bucketing in (True, False):
        result = train(
            TrainConfig(
                data=train_csv,
                validation=valid_csv,
                output=str(tmp_path / f"run-{bucketing}"),
                model="tiny",
                epochs=5,
                max_length=64,
                seed=3,
                length_bucketing=bucketing,
            )
        )
        accuracy[bucketing] = result.metrics["epochs"][-1]["accuracy"]
    assert accuracy[True] >= 0.9 and accuracy[False] >= 0.9, accuracy  # both learned the task
    assert abs(accuracy[True] - accuracy[False]) <= 0.05, accuracy


# ------------------------------------------------------------------------------------------ token cache


@pytest.fixture
def counted_tokenize(monkeypatch, tmp_path):
    """Point the cache at an empty folder and count the real tokenizer calls."""
    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    calls = []
    real = data.tokenize

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "tokenize", counting)
    return calls


def _dataset(texts):
    import datasets

    return datasets.Dataset.from_dict({"text": list(texts), "label": ["pos"] * len(texts)})


def test_token_cache_hits_the_second_time_and_misses_on_any_change(counted_tokenize, tmp_path):
    texts = [text for text, _ in _varied_reviews(60, seed=4)]
    tokenizer = train_tiny_tokenizer(texts, vocab_size=600)
    label_map = data.LabelMap(("neg", "pos"))

    def encode(rows, tok=tokenizer, max_length=32):
        return data.encode_dataset(_dataset(rows), tok, max_length, label_map, source="x")

    first = encode(texts)
    assert counted_tokenize == [60]
    assert len(list((tmp_path / "cache").glob("tokens-*.npz"))) == 1
    second = encode(texts)
    assert counted_tokenize == [60]  # a hit: not tokenized again
    assert second.input_ids == first.input_ids and second.truncated == first.truncated

    encode(texts[:-1] + [texts[-1] + " again"])  # the data changed
    assert len(counted_tokenize) == 2
    encode(texts, max_length=16)  # max_length changed
    assert len(counted_tokenize) == 3
    other = train_tiny_tokenizer(texts, vocab_size=280)  # another tokenizer: fewer merges
    assert encode(texts, tok=other).input_ids != first.input_ids
    assert len(counted_tokenize) == 4
    encode(texts[1:] + texts[:1])  # same texts, another order: other rows, so another key
    assert len(counted_tokenize) == 5
    encode(texts)  # the first entry is still there
    assert len(counted_tokenize) == 5


def test_token_cache_survives_a_damaged_entry_and_can_be_turned_off(counted_tokenize, tmp_path, monkeypatch):
    texts = ["a short text", "and a somewhat longer one here"]
    tokenizer = train_tiny_tokenizer(texts * 5, vocab_size=300)
    label_map = data.LabelMap(("neg", "pos"))
    first = data.encode_dataset(_dataset(texts), tokenizer, 16, label_map, source="x")
    (entry,) = (tmp_path / "cache").glob("tokens-*.npz")
    entry.write_bytes(b"not an npz file")
    again = data.encode_dataset(_dataset(texts), tokenizer, 16, label_map, source="x")
    assert len(counted_tokenize) == 2 and again.input_ids == first.input_ids
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # writes are atomic: no leftovers

    monkeypatch.setenv("ROBERTA_FT_CACHE", "off")
    data.encode_dataset(_dataset(texts + ["new"]), tokenizer, 16, label_map, source="x")
    assert len(list((tmp_path / "cache").glob("tokens-*.npz"))) == 1


def test_a_second_training_run_reads_its_tokens_from_the_cache(counted_tokenize, tmp_path):
    from roberta_ft.train import train

    train_csv = _write_csv(tmp_path / "train.csv", _varied_reviews(80, seed=5))
    valid_csv = _write_csv(tmp_path / "valid.csv", _varied_reviews(20, seed=6))
    for run in ("a", "b"):
        config = TrainConfig(data=train_csv, validation=valid_csv, output=str(tmp_path / run), model="tiny", epochs=1)
        train(config)
    assert counted_tokenize == [80, 20]  # the second run tokenized nothing


# ------------------------------------------------------------------------------------------ predict


def _peak_rss_growth(function) -> float:
    """Largest resident-memory growth (MiB) seen while function runs, sampled every 2 ms."""
    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        function()
    finally:
        done.set()
        sampler.join()
    return (max(peak, process.memory_info().rss) - start) / 2**20


def test_predict_memory_stays_flat_from_2k_to_20k_lines(trained_dir, tmp_path):
    from roberta_ft.predict import predict

    rng = random.Random(8)
    words = POSITIVE + NEGATIVE + NEUTRAL
    # ~600 characters a line: 20k lines are ~12 MB of text, which a non-streaming predict would hold at once.
    lines = [" ".join(rng.choice(words) for _ in range(90)) for _ in range(20_000)]
    small, large = tmp_path / "2k.txt", tmp_path / "20k.txt"
    small.write_text("\n".join(lines[:2000]) + "\n")
    large.write_text("\n".join(lines) + "\n")

    def run(source, name):
        config = PredictConfig(
            model_dir=str(trained_dir),
            input=str(source),
            output=str(tmp_path / name),
            max_length=32,
            chunk_lines=1000,
            precision="fp32",
        )
        return lambda: predict(config)

    run(small, "warm-up.jsonl")()  # first use: model load, allocator pools, tokenizer caches
    growth_2k = _peak_rss_growth(run(small, "2k.jsonl"))
    growth_20k = _peak_rss_growth(run(large, "20k.jsonl"))
    assert (tmp_path / "20k.jsonl").read_text().count("\n") == 20_000
    # Streaming holds one 1,000-line chunk either way (measured: +0.3 MiB from 2k to 20k lines); predicting
    # all 20k lines at once (chunk_lines=20000) measured +930 MiB, so the margin leaves room for allocator noise.
    assert growth_20k - growth_2k < 100, (growth_2k, growth_20k)


# ------------------------------------------------------------------------------------------ threads


def test_threads_are_lowered_to_the_usable_cpus_unless_chosen(monkeypatch):
    import torch

    from roberta_ft import cpu_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        torch.set_num_threads(4)
        monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 2)
        cpu_threads.fit_threads_to_cpus()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(4)
        monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the user's choice wins
        cpu_threads.fit_threads_to_cpus()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
    assert 1 <= cpu_threads.usable_cpus() <= (os.cpu_count() or 1)
