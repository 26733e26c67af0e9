"""`roberta-ft pretrain`: masking, packing, the objective, streaming, resume, and what the output is good for."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.data import corpus
from roberta_ft.masking import LocalityWarmup, MaskedLanguageModeling, Masker, SparseMaskedLM
from tests.helpers import peak_rss_growth, run_and_kill, run_to_completion

runner = CliRunner()


pytestmark = pytest.mark.slow  # end-to-end training runs (-m 'not slow' leaves them out)


@pytest.fixture
def logs(caplog, monkeypatch):
    """The package's log records (the CLI's logger does not propagate to pytest's handler by itself)."""
    import logging

    from roberta_ft import console

    original = console.setup_logging

    def setup(verbose, quiet):
        original(verbose, quiet)
        logging.getLogger("roberta_ft").addHandler(caplog.handler)

    monkeypatch.setattr(console, "setup_logging", setup)
    return caplog


# Two families of words that a masked LM can tell apart only from their contexts in the corpus.
WARM = ["sun", "fire", "summer", "desert", "oven", "flame", "lava", "beach", "sauna", "candle", "stove", "torch"]
COLD = ["snow", "ice", "winter", "glacier", "frost", "polar", "fridge", "hail", "sleet", "tundra", "arctic", "igloo"]


def _corpus_text(rng: random.Random, n: int) -> list[str]:
    """Documents in which a warm word goes with 'hot' and 'burns', a cold word with 'cold' and 'freezes'."""
    lines = []
    for _ in range(n):
        if rng.random() < 0.5:
            word, feel, verb = rng.choice(WARM), "hot", "burns"
        else:
            word, feel, verb = rng.choice(COLD), "cold", "freezes"
        lines.append(f"the {word} is {feel} and the {word} {verb} . we felt how {feel} the {word} was")
    return lines


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(_corpus_text(random.Random(0), 1500)) + "\n", encoding="utf-8")
    return path


def _pretrain_args(corpus_path: Path, output: Path, *extra: str) -> list[str]:
    return [
        "pretrain",
        str(corpus_path),
        "--output",
        str(output),
        "--model",
        "tiny",
        "--vocab-size",
        "600",
        "--max-length",
        "64",
        "--batch-size",
        "16",
        "--epochs",
        "4",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--seed",
        "3",
        *extra,
    ]


@pytest.fixture(scope="module")
def pretrained(corpus_file, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("pretrained") / "mlm"
    result = runner.invoke(app, ["--quiet", *_pretrain_args(corpus_file, output)])
    assert result.exit_code == 0, result.output
    return output


# ------------------------------------------------------------------------------------------- masking


def _masker(seed: int = 0) -> Masker:
    return Masker(mask_id=4, special_ids=np.array([0, 1, 2, 3, 4]), vocab_size=200, seed=seed)


def test_masking_picks_15_percent_of_ordinary_tokens_80_10_10_and_never_a_special_one():
    masker = _masker()
    rng = np.random.default_rng(1)
    chosen = masked = randomised = kept = ordinary = 0
    for block in range(400):
        ids = rng.integers(5, 200, size=64).astype(np.int32)
        ids[0], ids[-1], ids[20] = 0, 2, 2  # <s>, </s> and a document separator inside the block
        inputs, positions, labels = masker.mask(ids, epoch=0, block=block)
        assert not np.isin(positions, [0, 20, 63]).any()  # specials are never picked
        assert (inputs[[0, 20, 63]] == ids[[0, 20, 63]]).all()
        assert (labels == ids[positions]).all()
        assert (np.delete(inputs, positions) == np.delete(ids, positions)).all()  # nothing else changes
        ordinary += 61
        chosen += len(positions)
        masked += int((inputs[positions] == 4).sum())
        changed = (inputs[positions] != ids[positions]) & (inputs[positions] != 4)
        randomised += int(changed.sum())
        kept += int((inputs[positions] == ids[positions]).sum())
        assert not np.isin(inputs[positions][changed], [0, 1, 2, 3, 4]).any()  # random tokens are ordinary
    assert chosen / ordinary == pytest.approx(0.15, abs=0.005)
    assert masked / chosen == pytest.approx(0.8, abs=0.02)
    # A random draw equal to the original token counts as kept: 1/195 of the random share.
    assert randomised / chosen == pytest.approx(0.1, abs=0.015)
    assert kept / chosen == pytest.approx(0.1, abs=0.015)


def test_each_epoch_masks_a_block_afresh_and_the_same_epoch_masks_it_the_same():
    masker = _masker(seed=7)
    ids = np.arange(5, 133, dtype=np.int32)
    first = masker.mask(ids, epoch=0, block=3)
    again = masker.mask(ids, epoch=0, block=3)
    later = masker.mask(ids, epoch=1, block=3)
    other = masker.mask(ids, epoch=0, block=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], later[1])
    assert not np.array_equal(first[1], other[1])


def _words(ids: np.ndarray, starts: np.ndarray, specials: np.ndarray) -> list[np.ndarray]:
    """The positions of each word in a block: a word begins at a token marked as a start or after a special."""
    words, current = [], []
    for position, token in enumerate(ids):
        if token in specials:
            words, current = words + [current] if current else words, []
            continue
        if current and starts[token]:
            words.append(current)
            current = []
        current.append(position)
    return [np.array(w) for w in words + ([current] if current else [])]


def test_whole_word_masking_chooses_whole_words_for_15_percent_and_draws_80_10_10_once_per_word():
    specials = np.array([0, 1, 2, 3, 4])
    starts = np.arange(200) % 3 == 0  # words of one to several tokens
    masker = Masker(mask_id=4, special_ids=specials, vocab_size=200, seed=0, word_starts=starts)
    rng = np.random.default_rng(1)
    chosen = ordinary = words_chosen = words_masked = words_kept = 0
    for block in range(400):
        ids = rng.integers(5, 200, size=64).astype(np.int32)
        ids[0], ids[-1], ids[20] = 0, 2, 2
        inputs, positions, labels = masker.mask(ids, epoch=0, block=block)
        assert not np.isin(positions, [0, 20, 63]).any()
        assert (labels == ids[positions]).all()
        assert (np.delete(inputs, positions) == np.delete(ids, positions)).all()
        assert all(
            np.array_equal(a, b) for a, b in zip((inputs, positions), masker.mask(ids, 0, block)[:2], strict=True)
        )
        picked = set(positions.tolist())
        for word in _words(ids, starts, specials):
            inside = [int(p) in picked for p in word]
            assert all(inside) or not any(inside), (word, positions)  # a word is chosen whole or not at all
            if all(inside):
                words_chosen += 1
                is_mask = inputs[word] == 4
                assert is_mask.all() or not is_mask.any()  # one draw per word: no piece left in view
                words_masked += int(is_mask.all())
                words_kept += int((inputs[word] == ids[word]).all())
        ordinary += 61
        chosen += len(positions)
    # The word on the 15% line is taken with the chance that keeps the expected share at 15%.
    assert chosen / ordinary == pytest.approx(0.15, abs=0.005)
    assert words_masked / words_chosen == pytest.approx(0.8, abs=0.03)
    assert words_kept / words_chosen == pytest.approx(0.1, abs=0.03)
    later = masker.mask(ids, epoch=1, block=399)
    assert not np.array_equal(later[1], positions)


def test_word_starts_follow_the_tokenizers_own_marks():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    from roberta_ft.masking import word_start_table

    bpe = _tokenizer(_corpus_text(random.Random(0), 200) + ["unbelievably , good"])
    table = word_start_table(bpe, len(bpe))
    tokens = bpe.convert_ids_to_tokens(bpe(" unbelievably , good")["input_ids"][1:-1])
    starts = dict(zip(tokens, table[bpe.convert_tokens_to_ids(tokens)].tolist(), strict=True))
    assert len(tokens) > 4  # the tiny vocabulary has "unbelievably" in pieces: only a space-led piece begins it
    assert all(starts[t] == (t.startswith("Ġ") or t == ",") for t in tokens), starts
    assert starts[","]  # punctuation begins a word of its own

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##bel", "##ievably", "good"]
    wordpiece = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    assert word_start_table(wordpiece, len(vocab)).tolist() == [not w.startswith("##") for w in vocab]

    plain = Tokenizer(WordLevel({"[UNK]": 0, "good": 1}, unk_token="[UNK]"))
    plain.pre_tokenizer = Whitespace()
    with pytest.raises(ValueError, match="marks no word boundaries"):
        word_start_table(PreTrainedTokenizerFast(tokenizer_object=plain, unk_token="[UNK]"), 2)


# ------------------------------------------------------------------------------------------- packing


def _tokenizer(texts):
    from roberta_ft.modeling import train_tiny_tokenizer

    return train_tiny_tokenizer(texts, vocab_size=500)


def test_packing_keeps_every_token_once_in_full_blocks_and_never_pads(tmp_path):
    documents = _corpus_text(random.Random(2), 300) + ["a much longer document " * 40]
    tokenizer = _tokenizer(documents)
    info = corpus.pack(iter(documents), tokenizer, tmp_path, max_length=32, validation_split=0.1, seed=0)
    shares = {share: corpus.Blocks(tmp_path, share) for share in ("train", "validation")}
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    # The held-out documents are those the seeded draw picks, in order.
    held_out = np.random.default_rng(0).random(len(documents)) < 0.1
    for share, blocks in shares.items():
        assert info[share]["blocks"] == len(blocks) > 0
        lengths = blocks.lengths
        assert (lengths[:-1] == 32).all() and 2 < lengths[-1] <= 32  # only the last block is shorter
        stream = []
        for i in range(len(blocks)):
            block = blocks[i]
            assert block[0] == bos and block[-1] == eos and pad not in block
            stream.extend(block[1:-1].tolist())
        expected = []
        for document, validation in zip(documents, held_out, strict=True):
            if validation == (share == "validation"):
                expected.extend(tokenizer(document, add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id])
        assert stream == expected  # every token of the share's documents, once, in order, separated


def test_a_corpus_much_larger_than_a_chunk_packs_in_flat_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_DOCUMENTS", 500)
    rng = random.Random(0)
    tokenizer = _tokenizer(_corpus_text(rng, 200))
    growth = {}
    for documents in (10_000, 200_000):
        path = tmp_path / f"corpus-{documents}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for line in _corpus_text(rng, documents):
                handle.write(line + "\n")
        folder = tmp_path / f"blocks-{documents}"
        folder.mkdir()
        spec = corpus.CorpusSpec(str(path))

        def pack(spec=spec, folder=folder):
            corpus.pack(corpus.iter_documents(spec), tokenizer, folder, max_length=64, validation_split=0.05, seed=0)

        growth[documents] = peak_rss_growth(pack)
        assert corpus.Blocks(folder, "train").num_tokens > documents * 10
    # 20x the documents (about 13 MB of text and 50 MB of blocks more): memory grows by a chunk at most.
    assert growth[200_000] - growth[10_000] < 30, growth


def test_corpora_from_folders_globs_paragraphs_and_a_data_files_column(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second file\n\nstill second\n", encoding="utf-8")
    (folder / "sub" / "a.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    (folder / "notes.csv").write_text("x\n", encoding="utf-8")  # not a .txt: not part of the folder corpus
    assert list(corpus.iter_documents(corpus.CorpusSpec(str(folder)))) == [
        "second file",
        "still second",
        "first line",
        "second line",
    ]
    paragraphs = corpus.CorpusSpec(str(folder / "b.txt"), blank_line_documents=True)
    assert list(corpus.iter_documents(paragraphs)) == ["second file", "still second"]
    (tmp_path / "c.txt").write_text("one\nline two\n", encoding="utf-8")
    assert list(corpus.iter_documents(corpus.CorpusSpec(str(tmp_path / "*.txt")))) == ["one", "line two"]
    table = tmp_path / "labelled.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["review", "label"], ["good film", "pos"], ["bad film", "neg"]])
    assert list(corpus.iter_documents(corpus.CorpusSpec(str(table), text_column="review"))) == ["good film", "bad film"]


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d / "missing.txt", [], "corpus not found"),
        (lambda d: _write(d / "empty.txt", "\n\n"), [], "holds no text"),
        (
            lambda d: _write(d / "t.csv", "review,label\ngood,pos\n"),
            ["--text-column", "body"],
            "'body' is not a column",
        ),
        (lambda d: _write(d / "t.csv", "review,label\ngood,pos\n"), [], "no 'text' column"),
        (lambda d: _write(d / "few.txt", "one document\n"), [], "held out none"),
        (lambda d: _write(d / "ok.txt", "some text\n" * 50), ["--recipe", "bert"], "'bert' is not one of"),
        (lambda d: _write(d / "ok.txt", "some text\n" * 50), ["--max-length", "4000"], "more than model 'tiny'"),
        (
            lambda d: _write(d / "ok.txt", "some text\n" * 50),
            ["--locality-warmup", "1.5"],
            "--locality-warmup must be between 0 and 1",
        ),
    ],
)
def test_bad_corpora_and_settings_get_one_line_and_leave_no_output(tmp_path, make, extra, message):
    source = make(tmp_path)
    output = tmp_path / "out"
    args = ["pretrain", str(source), "--output", str(output), "--model", "tiny", "--max-length", "32", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert not output.exists() or not any(output.iterdir())


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ the objective


def test_the_sparse_head_gives_the_full_heads_loss_and_gradients():
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = RobertaForMaskedLM(config).eval()
    input_ids = torch.randint(5, 300, (3, 24))
    positions = torch.tensor([1, 5, 30, 31, 50, 70])
    labels = torch.randint(5, 300, (6,))
    results = []
    for sparse in (True, False):
        model.zero_grad()
        loss, correct = SparseMaskedLM(model, sparse=sparse)(input_ids, positions, labels)
        loss.backward()
        results.append((loss.detach(), correct, model.roberta.embeddings.word_embeddings.weight.grad.clone()))
    assert SparseMaskedLM(model).head == "lm_head"
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert results[0][1] == results[1][1]
    assert torch.allclose(results[0][2], results[1][2], atol=1e-6)


def test_the_locality_bias_is_minus_slope_times_distance_and_fades_to_none():
    warmup = LocalityWarmup(steps=10, heads=4)
    bias = warmup.bias(5, 0, "cpu")
    assert bias.shape == (1, 4, 5, 5)
    distance = torch.tensor([[abs(i - j) for j in range(5)] for i in range(5)], dtype=torch.float32)
    for head, slope in enumerate([2.0, 1.0, 0.5, 0.25]):
        assert torch.equal(bias[0, head], -slope * distance)
    assert torch.allclose(warmup.bias(5, 5, "cpu"), 0.5 * bias)  # halfway: half the bias
    assert warmup.bias(5, 10, "cpu") is None and warmup.bias(5, 11, "cpu") is None  # faded: plain attention
    assert LocalityWarmup(steps=0, heads=4).bias(5, 0, "cpu") is None


class _Blocks:
    """Packed blocks as the objective reads them (corpus.Blocks' offsets and indexing)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.offsets = np.arange(len(rows) + 1) * rows.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.rows[index]


def test_the_locality_bias_changes_training_steps_until_it_fades_and_never_evaluation():
    from accelerate import Accelerator
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = SparseMaskedLM(RobertaForMaskedLM(config).eval())
    blocks = _Blocks(np.random.default_rng(0).integers(5, 300, size=(6, 24)))
    masker = _masker()
    plain = MaskedLanguageModeling(blocks, blocks, masker, eval_batch_size=4)
    biased = MaskedLanguageModeling(blocks, blocks, masker, eval_batch_size=4, locality=LocalityWarmup(8, 4))
    accelerator = Accelerator(cpu=True)
    indices = np.arange(6)
    with torch.no_grad():
        assert not torch.allclose(
            biased.loss(model, indices, 0, accelerator, 0), plain.loss(model, indices, 0, accelerator, 0)
        )
        assert torch.equal(
            biased.loss(model, indices, 0, accelerator, 8), plain.loss(model, indices, 0, accelerator, 8)
        )
    assert biased.evaluate(model, accelerator) == plain.evaluate(model, accelerator)


# ------------------------------------------------------------------------------ a run and its output


def test_pretraining_lowers_the_held_out_masked_lm_loss(pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    initial, best = metrics["initial"], metrics["best"]
    assert len(metrics["epochs"]) == 4
    # The corpus's structure is learnable: the held-out loss falls far below its starting point.
    assert best["eval_loss"] < 0.6 * initial["eval_loss"], (initial, best)
    assert best["perplexity"] == pytest.approx(np.exp(best["eval_loss"]), rel=1e-6)
    assert metrics["train_tokens_per_second"] > 0
    run_config = json.loads((pretrained / "run_config.json").read_text())
    assert run_config["status"] == "complete" and run_config["kind"] == "pretraining"
    assert run_config["batch"] == {"sequences": 16, "per_forward_pass": 16, "accumulation": 1}
    assert (pretrained / "training_curves.png").stat().st_size > 0
    assert "perplexity" in (pretrained / "README.md").read_text()
    config = json.loads((pretrained / "config.json").read_text())
    assert config["architectures"] == ["RobertaForMaskedLM"]


def test_whole_word_masking_pretrains_and_says_so(corpus_file, tmp_path):
    output = tmp_path / "wwm"
    # A later --epochs wins over the helper's 4.
    result = runner.invoke(
        app, ["--quiet", *_pretrain_args(corpus_file, output, "--whole-word-masking", "--epochs", "2")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["best"]["eval_loss"] < metrics["initial"]["eval_loss"]
    assert json.loads((output / "run_config.json").read_text())["config"]["whole_word_masking"] is True
    assert "in whole words" in (output / "README.md").read_text()


def test_whole_word_masking_with_a_tokenizer_that_marks_no_words_is_one_error_line(corpus_file, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForMaskedLM

    words = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *sorted(set(corpus_file.read_text().split()))]
    plain = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    plain.pre_tokenizer = Whitespace()
    model_dir = tmp_path / "wordlevel"
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    PreTrainedTokenizerFast(tokenizer_object=plain, mask_token="<mask>", **specials).save_pretrained(model_dir)
    config = RobertaConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    RobertaForMaskedLM(config).save_pretrained(model_dir)
    output = tmp_path / "out"
    args = ["pretrain", str(corpus_file), "--output", str(output), "--model", str(model_dir), "--max-length", "32"]
    result = runner.invoke(app, [*args, "--whole-word-masking", "--device", "cpu"])
    assert result.exit_code != 0
    assert "marks no word boundaries" in result.output and "drop --whole-word-masking" in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert not output.exists() or not any(output.iterdir())


def test_the_fill_mask_pipeline_loads_the_output(pretrained):
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(pretrained), device="cpu")
    answers = fill("the snow is <mask> and the snow freezes .", top_k=5)
    assert len(answers) == 5
    scores = [answer["score"] for answer in answers]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    vocabulary = set(json.loads((pretrained / "tokenizer.json").read_text())["model"]["vocab"])
    assert all(answer["token_str"].strip() for answer in answers)
    assert all(fill.tokenizer.convert_ids_to_tokens(answer["token"]) in vocabulary for answer in answers)
    # <mask> takes the space before it, as in roberta-base: it stands where the word " cold" stood.
    masked = fill.tokenizer("the snow is <mask> and")["input_ids"]
    plain = fill.tokenizer("the snow is cold and")["input_ids"]
    assert len(masked) == len(plain) and masked.index(fill.tokenizer.mask_token_id) == plain.index(
        fill.tokenizer.convert_tokens_to_ids("Ġcold")
    )


def test_train_fine_tunes_from_the_pretrained_directory_and_says_the_lm_head_was_dropped(pretrained, tmp_path, logs):
    rng = random.Random(1)
    data = tmp_path / "labelled.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(60):
            warm = rng.random() < 0.5
            writer.writerow([f"we went to see the {rng.choice(WARM if warm else COLD)}", "warm" if warm else "cold"])
    output = tmp_path / "classifier"
    args = ["train", str(data), "--output", str(output), "--model", str(pretrained), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--batch-size", "16", "--device", "cpu", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "its LM head is dropped and a new classification head is trained" in logs.text
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["RobertaForSequenceClassification"]
    weights = load_file(output / "model.safetensors")
    assert not any(name.startswith("lm_head") for name in weights)
    # The encoder starts from the pretrained weights, not from a fresh initialisation.
    pretrained_weights = load_file(pretrained / "model.safetensors")
    name = "roberta.embeddings.word_embeddings.weight"
    assert weights[name].shape == pretrained_weights[name].shape


# Short documents whose word order a masked LM from scratch can learn within a test's few hundred steps.
ORDER_TEMPLATES = [
    "the {word} is {feel} today",
    "i touched the {word} and it felt {feel}",
    "everyone knows a {word} is {feel}",
    "near the {word} the air was {feel}",
    "my hands got {feel} from the {word}",
]


def _ordered_document(rng: random.Random) -> str:
    warm = rng.random() < 0.5
    feel = rng.choice(["hot", "warm", "burning"] if warm else ["cold", "icy", "freezing"])
    return rng.choice(ORDER_TEMPLATES).format(word=rng.choice(WARM if warm else COLD), feel=feel)


@pytest.fixture(scope="module")
def order_corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("order") / "corpus.txt"
    path.write_text("\n".join(_ordered_document(rng) for _ in range(1500)) + "\n", encoding="utf-8")
    return path


def _pretrain_order(corpus_path: Path, output: Path, *extra: str) -> dict:
    args = _pretrain_args(corpus_path, output, *extra)
    args[args.index("--max-length") + 1] = "32"
    args[args.index("--epochs") + 1] = "20"  # 460 steps
    result = runner.invoke(app, ["--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads((output / "metrics.json").read_text())


@pytest.fixture(scope="module")
def order_pretrained(order_corpus, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("order-pretrained") / "mlm"
    _pretrain_order(order_corpus, output)  # --model tiny's default locality warm-up
    return output


def test_the_locality_warm_up_gets_a_model_from_scratch_off_the_word_frequency_plateau(
    order_corpus, order_pretrained, tmp_path
):
    warmed = json.loads((order_pretrained / "metrics.json").read_text())
    assert json.loads((order_pretrained / "run_config.json").read_text())["config"]["locality_warmup"] == 0.3
    assert "attention biased toward nearby tokens" in (order_pretrained / "README.md").read_text()
    plain = _pretrain_order(order_corpus, tmp_path / "plain", "--locality-warmup", "0")
    # The same steps, seed and masks: with the warm-up the held-out masked words are far better predicted.
    assert warmed["best"]["eval_loss"] < plain["best"]["eval_loss"] - 0.5, (warmed["best"], plain["best"])
    assert warmed["best"]["masked_accuracy"] > plain["best"]["masked_accuracy"] + 0.1


def test_fine_tuning_from_the_pretrained_tiny_model_beats_the_same_fine_tune_from_scratch(order_pretrained, tmp_path):
    """Tell a corpus sentence from the same sentence with two neighbouring words swapped: the pretrained
    model knows the corpus's word order; from scratch, 160 labelled rows teach little of it."""

    def write(path: Path, rows: int, seed: int) -> Path:
        rng = random.Random(seed)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(rows):
                words = _ordered_document(rng).split()
                if rng.random() < 0.5:
                    writer.writerow([" ".join(words), "ordered"])
                    continue
                swapped = words[:]
                while swapped == words:
                    swapped = words[:]
                    i = rng.randrange(len(words) - 1)
                    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
                writer.writerow([" ".join(swapped), "swapped"])
        return path

    train_file, test_file = write(tmp_path / "train.csv", 160, 1), write(tmp_path / "test.csv", 300, 2)
    accuracy = {}
    for name, model in (("pretrained", str(order_pretrained)), ("scratch", "tiny")):
        for seed in (1, 2):
            output = tmp_path / f"{name}-{seed}"
            args = ["--quiet", "train", str(train_file), "--output", str(output), "--model", model]
            args += ["--epochs", "10", "--batch-size", "16", "--learning-rate", "1e-3", "--seed", str(seed)]
            result = runner.invoke(app, [*args, "--device", "cpu", "--precision", "fp32"])
            assert result.exit_code == 0, result.output
            result = runner.invoke(app, ["--quiet", "eval", str(output), str(test_file), "--json", "--device", "cpu"])
            assert result.exit_code == 0, result.output
            metrics = json.loads(result.output.strip().splitlines()[-1])["metrics"]
            accuracy.setdefault(name, []).append(metrics["accuracy"])
    assert np.mean(accuracy["pretrained"]) > np.mean(accuracy["scratch"]) + 0.1, accuracy


def test_continued_pretraining_of_an_encoder_without_an_lm_head_initialises_it(tmp_path, logs):
    """As with MiniLM: a BERT checkpoint saved without its masked-LM head."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *sorted({w for line in _corpus_text(random.Random(0), 200) for w in line.split()}),
    ]
    encoder_dir = tmp_path / "bert"
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(encoder_dir)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    BertModel(config).save_pretrained(encoder_dir)
    corpus_path = _write(tmp_path / "c.txt", "\n".join(_corpus_text(random.Random(4), 300)) + "\n")
    output = tmp_path / "continued"
    args = ["pretrain", str(corpus_path), "--output", str(output), "--model", str(encoder_dir), "--max-length", "32"]
    args += ["--batch-size", "16", "--epochs", "2", "--learning-rate", "1e-3", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "has no trained masked-LM head" in logs.text
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["best"]["eval_loss"] < metrics["initial"]["eval_loss"]
    assert json.loads((output / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]


# ------------------------------------------------------------------------------------------ resume


def _command(corpus_path: Path, output: Path) -> list[str]:
    args = _pretrain_args(corpus_path, output, "--save-every", "3")
    args[args.index("--epochs") + 1] = "2"  # the kill after checkpoint step 6 comes well before the end
    return [sys.executable, "-m", "roberta_ft", "--quiet", *args]


def test_killed_and_resumed_pretraining_equals_the_uninterrupted_run(corpus_file, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_completion(_command(corpus_file, reference))
    run_and_kill(_command(corpus_file, killed), killed, kill_after="step-0000006", log=tmp_path / "killed.txt")
    assert not (killed / "metrics.json").exists()
    result = runner.invoke(app, [*_command(corpus_file, killed)[3:], "--resume"])
    assert result.exit_code == 0, result.output
    expected = json.loads((reference / "metrics.json").read_text())
    got = json.loads((killed / "metrics.json").read_text())
    for key in ("initial", "epochs", "best", "steps"):
        assert got[key] == expected[key], key  # exact floats
    before, after = load_file(reference / "model.safetensors"), load_file(killed / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
