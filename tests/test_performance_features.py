"""What the speed work must not change: every sample once, metrics, input order, flat memory; and the token cache."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from roberta_ft import data
from roberta_ft.config import PredictConfig, TrainConfig
from roberta_ft.modeling import train_tiny_tokenizer
from tests.helpers import NEGATIVE, NEUTRAL, POSITIVE, peak_rss_growth, review


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


@pytest.mark.slow
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
    assert len(list((tmp_path / "cache").glob("tokens-*.tok"))) == 1
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
    (entry,) = (tmp_path / "cache").glob("tokens-*.tok")
    entry.write_bytes(b"not an npz file")
    again = data.encode_dataset(_dataset(texts), tokenizer, 16, label_map, source="x")
    assert len(counted_tokenize) == 2 and again.input_ids == first.input_ids
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # writes are atomic: no leftovers

    monkeypatch.setenv("ROBERTA_FT_CACHE", "off")
    data.encode_dataset(_dataset(texts + ["new"]), tokenizer, 16, label_map, source="x")
    assert len(list((tmp_path / "cache").glob("tokens-*.tok"))) == 1


def test_a_second_training_run_reads_its_tokens_from_the_cache(counted_tokenize, tmp_path):
    from roberta_ft.train import train

    train_csv = _write_csv(tmp_path / "train.csv", _varied_reviews(80, seed=5))
    valid_csv = _write_csv(tmp_path / "valid.csv", _varied_reviews(20, seed=6))
    for run in ("a", "b"):
        config = TrainConfig(data=train_csv, validation=valid_csv, output=str(tmp_path / run), model="tiny", epochs=1)
        train(config)
    assert counted_tokenize == [80, 20]  # the second run tokenized nothing


# ------------------------------------------------------------------------------------------ predict


@pytest.mark.slow
def test_predict_memory_stays_flat_from_1k_to_10k_lines(trained_dir, tmp_path):
    from roberta_ft.predict import predict

    rng = random.Random(8)
    words = POSITIVE + NEGATIVE + NEUTRAL
    # ~600 characters a line: 10k lines are ~6 MB of text, which a non-streaming predict would hold at once.
    lines = [" ".join(rng.choice(words) for _ in range(90)) for _ in range(10_000)]
    small, large = tmp_path / "1k.txt", tmp_path / "10k.txt"
    small.write_text("\n".join(lines[:1000]) + "\n")
    large.write_text("\n".join(lines) + "\n")

    def run(source, name):
        config = PredictConfig(
            model_dir=str(trained_dir),
            input=str(source),
            output=str(tmp_path / name),
            max_length=32,
            chunk_lines=500,
            precision="fp32",
        )
        return lambda: predict(config)

    run(small, "warm-up.jsonl")()  # first use: model load, allocator pools, tokenizer caches
    growth_1k = peak_rss_growth(run(small, "1k.jsonl"))
    growth_10k = peak_rss_growth(run(large, "10k.jsonl"))
    assert (tmp_path / "10k.jsonl").read_text().count("\n") == 10_000
    # Streaming holds one 500-line chunk either way; predicting all the lines at once measured +930 MiB for
    # 20k lines (about 465 MiB for these 10k), so the margin leaves room for allocator noise.
    assert growth_10k - growth_1k < 100, (growth_1k, growth_10k)


# ------------------------------------------------------------------------------------------ threads


def test_threads_are_lowered_to_the_usable_cpus_unless_chosen(monkeypatch):
    import torch

    from roberta_ft.speed import cpu_threads

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


# ------------------------------------------------------------------------------------------ fast paths


def _tiny_classifier(attn_implementation="sdpa", **shape):
    import torch
    from transformers import AutoModelForSequenceClassification, RobertaConfig

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        num_labels=3, **shape,
    )  # fmt: skip
    return AutoModelForSequenceClassification.from_config(config, attn_implementation=attn_implementation)


def _padded_batch(seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 120, (6, 11), generator=generator)
    mask = torch.ones_like(ids)
    mask[2:, 7:] = 0  # rows of different real lengths, padded on the right
    mask[4:, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_first_token_only_gives_the_same_logits_and_gradients(attention):
    import torch

    from roberta_ft.speed.first_token import first_token_only

    model = _tiny_classifier(attention).eval()  # eval: no dropout, so both passes see the same function
    batch = _padded_batch()
    full = model(**batch)
    full.loss.backward()
    full_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    last = model.roberta.encoder.layer[-1]
    with first_token_only(model) as switched:
        assert switched and "forward" in vars(last)
        fast = model(**batch)
        fast.loss.backward()
    assert "forward" not in vars(last)  # restored: the model is transformers' own again
    torch.testing.assert_close(fast.logits, full.logits, rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, full_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    # The padding really matters: without the mask the first token's output changes.
    unmasked = model(input_ids=batch["input_ids"]).logits
    assert not torch.allclose(unmasked[2:], full.logits[2:], atol=1e-4)


def test_first_token_only_leaves_other_heads_and_layouts_alone():
    from transformers import AutoModelForTokenClassification, RobertaConfig

    from roberta_ft.speed.first_token import first_token_only

    config = RobertaConfig(
        vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    token_model = AutoModelForTokenClassification.from_config(config)  # reads every position: must stay whole
    with first_token_only(token_model) as switched:
        assert not switched and "forward" not in vars(token_model.roberta.encoder.layer[-1])
    chunked = _tiny_classifier(chunk_size_feed_forward=4)
    with first_token_only(chunked) as switched:
        assert not switched


def _tiny_bert_classifier():
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        num_labels=3, type_vocab_size=2,
    )  # fmt: skip
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def _mixed_length_rows(count, seed, *, pairs=False):
    """Token ids of texts from 2 to 40 tokens (a served batch in arrival order), with token types for pairs."""
    rng = np.random.default_rng(seed)
    ids, types = [], []
    for _ in range(count):
        length = int(rng.choice([2, 3, 5, 8, 13, 21, 40]))
        ids.append([0, *rng.integers(5, 120, length - 1).tolist()])
        first = max(1, length // 2)
        types.append([0] * first + [1] * (length - first))
    return ids, (types if pairs else None)


@pytest.mark.parametrize("kind", ["roberta", "bert-pairs"])
def test_packed_inference_gives_each_texts_own_logits(kind, monkeypatch):
    """Texts packed into shared rows get the logits each text gets alone, in order; the padded path agrees."""
    import torch

    from roberta_ft.data.tokens import Encoded
    from roberta_ft.forward import predict_logits
    from roberta_ft.runtime import Runtime, make_accelerator
    from roberta_ft.speed import packing

    model = (_tiny_classifier() if kind == "roberta" else _tiny_bert_classifier()).eval()
    pad_id = model.config.pad_token_id
    ids, types = _mixed_length_rows(37, seed=4, pairs=kind != "roberta")
    data = Encoded(ids, None, token_type_ids=types)
    accelerator = make_accelerator(Runtime("cpu", "fp32", "test"))
    shapes = []
    real_pack, real_packer = packing.pack, packing.packer

    def counting_pack(*args, **kwargs):
        packed = real_pack(*args, **kwargs)
        shapes.append(None if packed is None else (len(packed.rows), packed.input_ids.shape[0]))
        return packed

    monkeypatch.setattr(packing, "pack", counting_pack)
    packed_logits = predict_logits(model, data, 16, accelerator=accelerator, pad_id=pad_id)
    # It really packed: fewer rows than texts in some batch.
    assert any(shape is not None and shape[1] < shape[0] for shape in shapes), shapes
    with torch.inference_mode():
        alone = np.concatenate([
            model(
                input_ids=torch.tensor([row]),
                **({"token_type_ids": torch.tensor([types[i]])} if types else {}),
            ).logits.numpy()
            for i, row in enumerate(ids)
        ])  # fmt: skip
    np.testing.assert_allclose(packed_logits, alone, rtol=1e-4, atol=2e-5)
    monkeypatch.setattr(packing, "packer", lambda model: None)
    padded_logits = predict_logits(model, data, 16, accelerator=accelerator, pad_id=pad_id)
    np.testing.assert_allclose(packed_logits, padded_logits, rtol=1e-4, atol=2e-5)
    # The positions matter: the same rows with positions not restarting at each text give other logits.
    if kind == "roberta":
        packer = real_packer(model)
        assert packer is not None and packer.position_offset == model.config.pad_token_id + 1
        monkeypatch.setattr(packing, "packer", lambda model: packing.Packer(0))
        shifted = predict_logits(model, data, 16, accelerator=accelerator, pad_id=pad_id)
        assert not np.allclose(shifted, alone, atol=1e-3)


def test_packing_keeps_every_token_once_and_leaves_similar_lengths_padded():
    from roberta_ft.speed import packing

    ids, types = _mixed_length_rows(50, seed=7, pairs=True)
    indices = list(range(3, 50, 2))
    packed = packing.pack(ids, indices, 1, position_offset=2, token_type_ids=types)
    assert packed is not None
    width = max(len(ids[i]) for i in indices)
    assert packed.input_ids.shape[1] == width and packed.input_ids.shape[0] < len(indices)
    for k, i in enumerate(indices):
        row, start = packed.rows[k], packed.starts[k]
        span = slice(start, start + len(ids[i]))
        assert packed.input_ids[row, span].tolist() == ids[i]
        assert packed.token_type_ids[row, span].tolist() == types[i]
        assert packed.position_ids[row, span].tolist() == list(range(2, 2 + len(ids[i])))
        assert (packed.segments[row, span] == k).all()
    assert (packed.segments >= 0).sum() == sum(len(ids[i]) for i in indices)  # every token once, none lost
    mask = packed.model_inputs()["attention_mask"]
    assert mask.shape == (packed.input_ids.shape[0], 1, width, width)
    # A text's tokens see exactly its own tokens.
    k = 5
    row, start, length = packed.rows[k], packed.starts[k], len(ids[indices[k]])
    assert mask[row, 0, start].sum() == length and mask[row, 0, start, start : start + length].all()
    # Lengths where no two texts fit in one row: the padded batch runs (None).
    similar = [[0] + [7] * n for n in (20, 22, 25, 30)]
    assert packing.pack(similar, [0, 1, 2, 3], 1, position_offset=2) is None
    assert packing.pack(ids, [0], 1, position_offset=2) is None
    # On CUDA the rows are rounded up to a multiple of 8, as padded batches are: room for more texts.
    three = [[0] * 7, [0] * 4, [0] * 4]
    assert packing.pack(three, [0, 1, 2], 1, position_offset=0) is None  # 7 wide: the two 4s do not fit together
    rounded = packing.pack(three, [0, 1, 2], 1, position_offset=0, pad_to_multiple_of=8)
    assert rounded is not None and rounded.input_ids.shape == (2, 8) and rounded.rows.tolist() == [0, 1, 1]


@pytest.mark.slow
def test_training_with_the_fast_paths_matches_a_plain_run(tmp_path, monkeypatch):
    """The whole loop with and without the first-token last layer: the same losses and metrics.

    Dropout is off in both (the fast path draws fewer dropout numbers in the last layer, so with dropout
    the two runs would see different masks, not a different function).
    """
    from roberta_ft import modeling
    from roberta_ft.speed import first_token
    from roberta_ft.train import train

    monkeypatch.setattr(
        modeling, "TINY_SHAPE", {**modeling.TINY_SHAPE, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    )
    rows = _varied_reviews(96, seed=3)
    train_csv = _write_csv(tmp_path / "train.csv", rows[:64])
    valid_csv = _write_csv(tmp_path / "valid.csv", rows[64:])

    def run(name):
        config = TrainConfig(
            data=train_csv, validation=valid_csv, output=str(tmp_path / name), model="tiny", epochs=2, batch_size=8,
            seed=5,
        )  # fmt: skip
        return train(config).metrics["epochs"]

    fast = run("fast")
    monkeypatch.setattr(first_token, "FIRST_TOKEN_HEADS", set())  # switch the fast path off
    plain = run("plain")
    assert fast[-1]["train_loss"] < fast[0]["train_loss"]  # it trained
    for a, b in zip(fast, plain, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["accuracy"] == b["accuracy"]


def test_cpu_dropout_keeps_one_minus_p_scales_and_repeats_under_a_seed():
    import torch

    from roberta_ft.speed.cpu_dropout import dropout, keep_mask

    for p in (0.1, 0.5):
        mask = keep_mask(2_000_000, p)
        assert mask.float().mean().item() == pytest.approx(1 - p, abs=2e-3)
    big = keep_mask(1_000_000, 0.5).float()
    assert abs(torch.corrcoef(torch.stack([big[:-1], big[1:]]))[0, 1].item()) < 0.01  # neighbours independent
    assert abs(torch.corrcoef(torch.stack([big, keep_mask(1_000_000, 0.5).float()]))[0, 1].item()) < 0.01

    torch.manual_seed(7)
    x = torch.randn(8, 5, 16, requires_grad=True)
    first = dropout(x, 0.25)
    torch.manual_seed(7)
    torch.randn(8, 5, 16)
    again = dropout(x, 0.25)
    assert torch.equal(first, again)  # the mask is a function of torch's generator: seeded runs repeat
    kept = first != 0
    torch.testing.assert_close(first[kept], x[kept] / 0.75)
    first.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert torch.equal(dropout(x, 0.0), x) and not dropout(x, 1.0).any()


def test_fast_cpu_dropout_patches_only_inside_the_block_and_only_in_training():
    import torch

    from roberta_ft.speed.cpu_dropout import fast_cpu_dropout

    model = _tiny_classifier()
    modules = [m for m in model.modules() if type(m) is torch.nn.Dropout]
    x = torch.randn(4, 64)
    with fast_cpu_dropout(model) as count:
        assert count == len(modules) > 0 and all("forward" in vars(m) for m in modules)
        modules[0].train()
        dropped = modules[0](x)
        assert (dropped == 0).any() and not torch.equal(dropped, x)
        modules[0].eval()
        assert torch.equal(modules[0](x), x)
    assert not any("forward" in vars(m) for m in modules)


def test_freed_memory_is_kept_unless_the_user_set_glibc_thresholds(monkeypatch):
    import sys

    from roberta_ft.speed.cpu_threads import keep_freed_memory

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    if sys.platform.startswith("linux") and os.path.exists("/usr/lib/x86_64-linux-gnu/libc.so.6"):
        assert keep_freed_memory() is True


def test_auto_precision_keeps_a_narrow_model_in_fp32_on_a_bf16_cpu(monkeypatch):
    """bf16 autocast on a CPU pays only on wide layers: `auto` picks it for a wide (or unknown) model and keeps a
    narrow one (tiny: hidden size 128) in fp32; an explicit --precision is obeyed either way."""
    from roberta_ft import runtime

    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_runtime("cpu", "auto", width=128).precision == "fp32"
    assert runtime.resolve_runtime("cpu", "auto", width=384).precision == "bf16"
    assert runtime.resolve_runtime("cpu", "auto").precision == "bf16"
    assert runtime.resolve_runtime("cpu", "bf16", width=128).precision == "bf16"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    assert runtime.resolve_runtime("cpu", "auto", width=384).precision == "fp32"
