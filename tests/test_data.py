"""Reading files, picking columns by the naming rules, labels, batching."""

from __future__ import annotations

import numpy as np
import pytest

from roberta_ft.data import LabelMap, bucketed_batches, collate, read_table, resolve_columns, sorted_batches
from roberta_ft.errors import DataError
from roberta_ft.registry import get_task


@pytest.mark.parametrize(
    "columns, expected",
    [
        (["text", "label"], ("text", None, "label")),
        (["Review", "Sentiment"], ("Review", None, "Sentiment")),
        (["id", "sentence", "class"], ("sentence", None, "class")),
        (["premise", "hypothesis", "gold_label"], ("premise", "hypothesis", "gold_label")),
        (["sentence1", "sentence2", "label"], ("sentence1", "sentence2", "label")),
        (["tweet_body", "label"], ("tweet_body", None, "label")),  # the only other column
    ],
)
def test_columns_are_picked_by_clear_rules(columns, expected):
    picked = resolve_columns(columns)
    assert (picked.text, picked.text_pair, picked.label) == expected


def test_ambiguous_columns_stop_and_list_the_columns():
    with pytest.raises(DataError) as error:
        resolve_columns(["title", "body", "comment", "label"])
    message = error.value.one_line()
    assert "--text-column" in message and "'title'" in message and "'comment'" in message


def test_named_column_that_does_not_exist_suggests_the_closest():
    with pytest.raises(DataError) as error:
        resolve_columns(["message", "department"], text="mesage", label="department")
    assert "did you mean 'message'" in error.value.one_line()


def test_pair_task_needs_two_text_columns():
    with pytest.raises(DataError, match="takes text pairs"):
        resolve_columns(["text", "label"], task=get_task("nli"))


def test_task_text_fields_are_preferred():
    picked = resolve_columns(["id", "premise", "hypothesis", "label"], task=get_task("nli"))
    assert (picked.text, picked.text_pair) == ("premise", "hypothesis")


def test_csv_tsv_jsonl_read_the_same_rows(tmp_path):
    from tests.helpers import write_reviews

    tables = [read_table(write_reviews(tmp_path / f"r.{fmt}", n=30, fmt=fmt)) for fmt in ("csv", "tsv", "jsonl")]
    assert tables[0].rows == tables[1].rows == tables[2].rows
    assert tables[0].columns == ["review", "sentiment"]


def test_integer_coded_labels_use_the_task_label_names():
    label_map = LabelMap.infer(["0", "1", "2"], get_task("nli"))
    assert label_map.names == ("entailment", "neutral", "contradiction")
    assert label_map.encode(["2", "Entailment"], source="x").tolist() == [2, 0]


def test_unknown_label_is_named_with_its_line():
    with pytest.raises(DataError) as error:
        LabelMap(("neg", "pos")).encode(["pos", "meh"], source="valid.csv", lines=[2, 3])
    assert "'meh' (line 3)" in error.value.one_line()


@pytest.mark.parametrize("n, batch_size", [(1, 4), (37, 8), (1000, 32), (64, 64)])
def test_bucketed_batches_keep_every_sample_exactly_once(n, batch_size):
    lengths = np.random.default_rng(0).integers(3, 200, size=n)
    for epoch in range(3):
        batches = bucketed_batches(lengths, batch_size, seed=1, epoch=epoch)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(n))
        assert sum(len(b) != batch_size for b in batches) <= 1  # at most one short batch


def test_bucketed_batches_cut_padding_and_change_order_by_epoch():
    lengths = np.random.default_rng(0).integers(3, 200, size=2048)
    batches = bucketed_batches(lengths, 32, seed=1, epoch=0)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_batches = np.array_split(np.random.default_rng(2).permutation(2048), 64)
    padded_random = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.75 * padded_random
    again = bucketed_batches(lengths, 32, seed=1, epoch=0)
    other = bucketed_batches(lengths, 32, seed=1, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=False))


def test_sorted_batches_cut_mixed_lengths_where_padding_would_cost_more_than_a_pass():
    import itertools

    uniform = np.full(200, 30)
    assert [len(b) for b in sorted_batches(uniform, 64, overhead_tokens=256)] == [64, 64, 64, 8]
    served = np.array([60] * 4 + [10] * 28)  # a few long texts among short ones, in one served batch
    batches = sorted_batches(np.random.default_rng(0).permutation(served), 64, overhead_tokens=100)
    assert [len(b) for b in batches] == [4, 28]
    rng = np.random.default_rng(1)
    for _ in range(40):  # the cuts are the cheapest of all cuts into runs of at most 4
        lengths = rng.integers(1, 50, rng.integers(1, 9))
        batches = sorted_batches(lengths, 4, overhead_tokens=20)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        assert all(len(b) <= 4 for b in batches) and lengths[batches[0][0]] == lengths.max()

        def cost(runs):
            return sum(len(run) * max(run) + 20 for run in runs)

        ordered = sorted(lengths.tolist(), reverse=True)
        best = min(
            cost([ordered[a:b] for a, b in itertools.pairwise((0, *cuts, len(ordered)))])
            for k in range(len(ordered))
            for cuts in itertools.combinations(range(1, len(ordered)), k)
            if all(b - a <= 4 for a, b in itertools.pairwise((0, *cuts, len(ordered))))
        )
        assert cost([lengths[b].tolist() for b in batches]) == best


def test_sorted_batches_cover_everything_and_collate_pads_to_multiple_of_8():
    lengths = np.array([5, 1, 9, 3])
    batches = sorted_batches(lengths, 3, overhead_tokens=None)  # plain runs of 3, longest first
    assert [b.tolist() for b in batches] == [[2, 0, 3], [1]]
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3]
    ids = [[0] * n for n in lengths]
    batch = collate(ids, batches[0], pad_id=1)
    assert batch["input_ids"].shape == (3, 16)
    assert batch["attention_mask"].sum() == 9 + 5 + 3
