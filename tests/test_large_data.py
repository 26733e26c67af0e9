"""Data bigger than memory: the streamed reader, the data and token caches on disk, parallel tokenizing,
flat memory, and the options for big runs (--max-steps, --eval-every, --max-eval-samples)."""

from __future__ import annotations

import csv
import io
import json
import random

import numpy as np
import pytest

from roberta_ft import data
from roberta_ft.config import TrainConfig
from roberta_ft.data import files, sources, tokens
from roberta_ft.errors import DataError
from roberta_ft.registry import get_task
from tests.helpers import (
    TINY,
    TRAIN_ERRORS,
    assert_one_clear_line,
    invoke,
    peak_growth,
    peak_rss_growth,
    review,
    write_bad_inputs,
    write_reviews,
)


def _old_reader(path, fmt: str) -> tuple[list[str], list[dict], list[int]]:
    """The reader before streaming: the whole file decoded, parsed from one StringIO."""
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t")
    header = [name.strip() for name in next(reader)]
    rows, lines, line_number = [], [], reader.line_num
    for record in reader:
        start, line_number = line_number + 1, reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        rows.append(dict(zip(header, record + [None] * (len(header) - len(record)), strict=True)))
        lines.append(start)
    return header, rows, lines


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_the_streamed_reader_reads_what_the_whole_file_reader_read(tmp_path, monkeypatch, block):
    """Quoted newlines, CRLF and lone CR endings, blank lines and a BOM across block boundaries of any size."""
    monkeypatch.setattr(files, "BLOCK_BYTES", block)
    rng = random.Random(block)
    lines = ["text,label"]
    for i in range(60):
        kind = i % 5
        if kind == 0:
            lines.append(f'"{review(rng, "pos")}\nsecond line, quoted",pos')
        elif kind == 1:
            lines.append(f"{review(rng, 'neg')},neg")
        elif kind == 2:
            lines.append("")
        else:
            lines.append(f'"caf\u00e9, ""quoted"" {i}",{rng.choice(["pos", "neg"])}')
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines[:30]) + "\r" + "\n".join(lines[30:]) + "\n").encode())
    table = files.read_table(path)
    header, rows, numbers = _old_reader(path, "csv")
    assert (table.columns, table.rows, table.line_numbers) == (header, rows, numbers)


@pytest.mark.parametrize(
    "case, arguments, expected",
    TRAIN_ERRORS,
    ids=[case[0] for case in TRAIN_ERRORS],
)
def test_the_bad_input_catalogue_holds_with_tiny_blocks_and_chunks(
    work, tmp_path, monkeypatch, case, arguments, expected
):
    """Every message of the catalogue, when the file is read 5 bytes and standardized 2 rows at a time."""
    monkeypatch.setattr(files, "BLOCK_BYTES", 5)
    monkeypatch.setattr(sources, "CHUNK_ROWS", 2)
    output = tmp_path / "out"
    result = invoke("train", *TINY, *[a.format(w=work, o=output) for a in arguments], "--output", str(output))
    assert_one_clear_line(result, *expected)
    assert not output.exists()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))  # the catalogue's files


def test_a_decoding_error_deep_in_a_big_file_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "BLOCK_BYTES", 100)
    rows = [f"text {i} was great,pos" for i in range(500)]
    rows[321] = "caf\xe9 was great,pos"
    path = tmp_path / "latin.csv"
    path.write_bytes(("text,label\n" + "\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"line 323 is not valid utf-8 \(byte 0xe9\)"):
        files.read_table(path)
    assert len(files.read_table(path, encoding="latin-1").rows) == 500


def test_a_second_read_comes_from_the_data_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    path = write_reviews(tmp_path / "r.csv", n=50)
    with path.open("a") as handle:
        handle.write(",pos\n")  # an empty text, skipped with --drop-invalid
    task = get_task("classification")
    first, columns = sources.load_file(path, task=task, drop_invalid=True)
    assert list((tmp_path / "cache").glob("rows-*.arrow"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(sources, "open_rows", no_reading)
    caplog.clear()
    again, again_columns = sources.load_file(path, task=task, drop_invalid=True)
    assert again_columns == columns and again.to_dict() == first.to_dict() and len(again) == 50
    assert "skipped 1 row(s) with an empty text" in caplog.text  # the warning is said again
    path.write_text(path.read_text().replace("great", "fine"))  # other bytes: read again
    with pytest.raises(AssertionError, match="read again"):
        sources.load_file(path, task=task, drop_invalid=True)


@pytest.mark.parametrize("strategy, pairs", [("truncate", False), ("truncate", True), ("sliding", False)])
def test_parallel_tokenizing_gives_the_serial_tokens(tmp_path, monkeypatch, strategy, pairs):
    from roberta_ft.modeling import train_tiny_tokenizer

    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    rng = random.Random(2)
    texts = [" ".join(review(rng, "pos") for _ in range(rng.randint(1, 4))) for _ in range(900)]
    seconds = [review(rng, "neg") for _ in range(900)] if pairs else None
    tokenizer = train_tiny_tokenizer(texts, vocab_size=500)
    serial = tokens.tokenize(tokenizer, texts, seconds, 24, strategy, 8 if strategy == "sliding" else None)
    monkeypatch.setattr(tokens, "SERIAL_TEXTS", 100)  # 900 texts: cut into chunks, tokenized by 2 processes
    parallel = tokens.encode_texts(
        tokenizer, texts, seconds, 24, strategy=strategy, stride=8 if strategy == "sliding" else None, workers=2
    )
    assert parallel.input_ids == serial[0] and parallel.truncated == serial[3]
    assert (parallel.owners is None and serial[2] is None) or np.array_equal(parallel.owners, serial[2])
    assert (parallel.token_type_ids is None) == (serial[1] is None)


def test_memory_mapped_training_gives_the_in_memory_losses(tmp_path, monkeypatch):
    from roberta_ft.data import token_cache
    from roberta_ft.train import train

    path = write_reviews(tmp_path / "r.csv", n=120, seed=3)
    losses = {}
    for mode in ("in-memory", "mapped"):
        if mode == "mapped":
            monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
            monkeypatch.setattr(token_cache, "MAP_BYTES", 0)  # even a small entry is memory-mapped
        else:
            monkeypatch.setenv("ROBERTA_FT_CACHE", "off")  # tokens in lists, as before the caches
        result = train(TrainConfig(data=str(path), output=str(tmp_path / mode), model="tiny", epochs=2, seed=4))
        losses[mode] = [step["loss"] for step in result.metrics["steps"]] + [
            epoch["accuracy"] for epoch in result.metrics["epochs"]
        ]
    assert losses["mapped"] == losses["in-memory"]


def _big_csv(path, rows: int) -> None:
    rng = random.Random(rows)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            label = rng.choice(["pos", "neg"])
            writer.writerow([review(rng, label), label])


@pytest.mark.slow
def test_memory_stays_flat_when_the_file_grows_twenty_times(tmp_path, monkeypatch):
    from roberta_ft.data import token_cache
    from roberta_ft.modeling import train_tiny_tokenizer

    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(token_cache, "MAP_BYTES", 0)
    # Chunks smaller than both files: memory is bounded by a chunk, whatever the file's size.
    monkeypatch.setattr(sources, "CHUNK_ROWS", 5_000)
    monkeypatch.setattr(tokens, "SERIAL_TEXTS", 5_000)
    monkeypatch.setattr(token_cache, "DIGEST_ROWS", 5_000)
    tokenizer = train_tiny_tokenizer([review(random.Random(0), "pos") for _ in range(300)], vocab_size=400)
    task = get_task("classification")
    growth = {}
    for rows in (10_000, 200_000):
        path = tmp_path / f"big-{rows}.csv"
        _big_csv(path, rows)

        def read_and_tokenize(path=path):
            dataset, _ = sources.load_file(path, task=task)
            encoded = tokens.encode_dataset(
                dataset, tokenizer, 32, data.LabelMap(("neg", "pos")), source="big", workers=1
            )
            assert len(encoded) == len(dataset)

        growth[rows] = peak_rss_growth(read_and_tokenize)
    # 20x the rows (about 4.5 MB of CSV more): the growth stays within a few MB; 20 MB over the 190,000 rows
    # more is 110 bytes a row, less than one Python object per row holds.
    assert growth[200_000] - growth[10_000] < 20, growth


def test_max_steps_eval_every_and_max_eval_samples(tmp_path):
    from roberta_ft.train import train

    path = write_reviews(tmp_path / "r.csv", n=200, seed=5)
    result = train(
        TrainConfig(
            data=str(path), output=str(tmp_path / "m"), model="tiny", batch_size=16, max_steps=25, eval_every=10,
            max_eval_samples=12, validation_split=0.2, seed=2,
        )
    )  # fmt: skip
    evaluations = result.metrics["epochs"]
    # 160 training rows = 10 steps an epoch: evaluations at steps 10, 20 and the last one, 25 (mid-epoch 3).
    assert [record["step"] for record in evaluations] == [10, 20, 25]
    assert [record["epoch"] for record in evaluations] == [1.0, 2.0, 2.5]
    best = max(evaluations, key=lambda record: record["accuracy"])
    assert result.metrics["best"]["step"] == best["step"]
    run = json.loads((tmp_path / "m" / "run_config.json").read_text())
    assert run["num_validation_examples"] == 12 and "sampled from" in run["validation_source"]
    assert set(run["timings"]) == {"read_seconds", "tokenize_seconds"}
    # The sample is stratified and seeded: the same rows again, both labels in it.
    dataset, _ = sources.load_file(path, task=get_task("classification"))
    one = sources.subsample(dataset, 12, 2)
    assert one["line"] == sources.subsample(dataset, 12, 2)["line"] and set(one["label"]) == {"pos", "neg"}


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("stratified", [True, False])
def test_the_split_holds_out_the_rows_scikit_learn_holds_out(seed, stratified):
    """The numpy split draws what train_test_split draws (so a seed keeps naming the same rows), ties
    between classes' remainders included."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    for rows, classes in ((50, 3), (997, 2), (1000, 4), (1203, 7)):
        codes = rng.integers(0, classes, rows)
        codes[:classes] = np.arange(classes)  # every class present ...
        codes[classes : 2 * classes] = np.arange(classes)  # ... twice
        for n_test in (classes, rows // 10, rows // 3):
            expected = train_test_split(
                np.arange(rows), test_size=n_test, random_state=seed, stratify=codes if stratified else None
            )
            found = sources.split_indices(rows, rows - n_test, n_test, seed, codes if stratified else None)
            assert [list(part) for part in found] == [sorted(part) for part in expected]
        kept, _ = train_test_split(np.arange(rows), train_size=rows // 4, random_state=seed, stratify=codes)
        assert list(sources.split_indices(rows, rows // 4, rows - rows // 4, seed, codes)[0]) == sorted(kept)


def test_a_large_selection_is_a_table_of_its_own_in_the_data_cache(tmp_path, monkeypatch):
    """Held-out rows bigger than SELECT_IN_MEMORY_ROWS go to an Arrow file, not an indices mapping; the
    rows are those `select` gives, and a second split maps the same file again."""
    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 70)  # several record batches
    monkeypatch.setattr(sources, "SELECT_IN_MEMORY_ROWS", 100)
    path = write_reviews(tmp_path / "r.csv", n=400, seed=6)
    dataset, _ = sources.load_file(path, task=get_task("classification"))
    train_set, validation_set = sources.stratified_split(dataset, 0.2, seed=3)
    train_idx, valid_idx = sources.split_indices(len(dataset), 320, 80, 3, data.labels.label_codes(dataset)[0])
    assert train_set.to_dict() == dataset.select(train_idx).to_dict()
    assert validation_set.to_dict() == dataset.select(valid_idx).to_dict()
    assert train_set._indices is None and validation_set._indices is None
    assert (
        len(train_set.cache_files) == 1 and train_set.cache_files[0]["filename"] != dataset.cache_files[0]["filename"]
    )
    entries = sorted((tmp_path / "cache").glob("rows-*.arrow"))
    again, _ = sources.stratified_split(dataset, 0.2, seed=3)
    assert sorted((tmp_path / "cache").glob("rows-*.arrow")) == entries
    assert again.cache_files == train_set.cache_files and again.to_dict() == train_set.to_dict()


@pytest.mark.slow
def test_training_set_up_memory_stays_flat_when_the_file_grows_twenty_times(tmp_path, monkeypatch):
    """Everything between the file and the first step that touches every row: the split, the label codes,
    the run identity, the tiny tokenizer's texts and the token-cache key."""
    from roberta_ft import checkpoint, problems, train
    from roberta_ft.data import token_cache

    monkeypatch.setenv("ROBERTA_FT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 5_000)
    monkeypatch.setattr(token_cache, "DIGEST_ROWS", 5_000)
    monkeypatch.setattr(checkpoint, "FINGERPRINT_ROWS", 5_000)
    task = get_task("classification")
    config = TrainConfig(data="unused.csv", output=str(tmp_path / "m"), model="tiny").resolved()
    growth = {}
    for rows in (20_000, 400_000):
        path = tmp_path / f"big-{rows}.csv"
        _big_csv(path, rows)
        dataset, _ = sources.load_file(path, task=task)

        def set_up(dataset=dataset):
            train_set, validation_set = sources.stratified_split(dataset, 0.1, seed=1)
            validation_set = sources.subsample(validation_set, 500, seed=1)
            problems.SingleLabel.fit(
                train_set, validation_set, task=task, config=config, source="big", validation_source="held out"
            )
            checkpoint.data_fingerprint(train_set, validation_set)
            assert sum(1 for _ in train._slices(train_set["text"], len(train_set), 5_000, every=3)) == -(
                -len(train_set) // 3
            )
            assert len(token_cache.text_digest(train_set["text"])) == 72

        growth[rows] = _peak_anonymous_growth(set_up)
    # 20x the rows: a few MB of index and label arrays more, not a Python object per row (which was
    # 450 bytes a row when the split was an indices mapping). Mapped file pages are page cache, not counted.
    assert growth[400_000] - growth[20_000] < 30, growth  # MiB: under 80 bytes a row


def _peak_anonymous_growth(function) -> float:
    """Largest growth (MiB) of the process's anonymous memory (RssAnon: heap, arrays; not the pages of
    memory-mapped files) seen while function runs, sampled every 2 ms."""
    from pathlib import Path

    def anonymous() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no RssAnon in /proc/self/status")

    return peak_growth(function, anonymous) / 2**20
