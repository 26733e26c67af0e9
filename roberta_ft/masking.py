"""Masked-LM pretraining's objective: RoBERTa's dynamic masking, and a vocabulary head run only where it is needed.

Masking (`Masker`): of each block's ordinary tokens (special tokens are never picked) 15% are
chosen; of those 80% become ``<mask>``, 10% a random ordinary token and 10% stay as they are. The
mask is drawn afresh each time a block is seen: its random numbers come from (seed, epoch, block),
so every epoch masks a block differently, and a resumed run draws exactly the masks the interrupted
one would have. Validation blocks get one fixed mask, so evaluations compare.

The head (`SparseMaskedLM`): a masked LM's vocabulary projection costs hidden x vocabulary
multiply-adds per position (about 40% of roberta-base's arithmetic per token with 50k words), and
85% of positions carry no label. The encoder runs on every position; the LM head (its transform and
the projection) runs on the masked positions alone. The loss is the same cross-entropy over the same
positions, so only the arithmetic changes; `sparse=False` runs the usual full head for comparison.

The locality warm-up (`LocalityWarmup`): a masked LM from random weights first learns the corpus's
word frequencies and then sits on that plateau, attending evenly over the block, because to learn
that a word's neighbours tell it most the attention must already look at them, and it cannot learn
to look until the values it would find there are useful. So while pretraining from scratch, each
head's attention scores start with a bias toward nearby tokens, -slope x distance (ALiBi's shape;
slopes 2, 1, 1/2, ... per head), which fades linearly to nothing over the first share of the
steps. The model learns what neighbours say while the bias points at them, and its own
position embeddings take over as the bias fades; evaluation, the saved model and everything after
it run without any bias (docs/pretraining.md).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

logger = logging.getLogger(__name__)

MLM_PROBABILITY = 0.15
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen tokens; the rest stay unchanged
EVAL_EPOCH = 2**32 - 1  # the "epoch" of the validation masks: fixed, never a training epoch


class MaskingError(ValueError):
    """The tokenizer cannot be masked as asked; the message names what it lacks."""


@dataclass
class Masker:
    mask_id: int
    special_ids: np.ndarray  # never masked, never drawn as random replacements
    vocab_size: int
    seed: int
    probability: float = MLM_PROBABILITY
    word_starts: np.ndarray | None = None  # per token id: does it begin a word? None: tokens are masked singly
    replacements: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.special_ids = np.unique(np.asarray(self.special_ids, dtype=np.int64))
        self.replacements = np.setdiff1d(np.arange(self.vocab_size), self.special_ids)

    @classmethod
    def for_tokenizer(
        cls, tokenizer, vocab_size: int, seed: int, probability: float = MLM_PROBABILITY, whole_words: bool = False
    ) -> Masker:
        """Raises MaskingError when the tokenizer has no mask token, or (`whole_words`) no word boundaries."""
        if tokenizer.mask_token_id is None:
            raise MaskingError("the tokenizer has no mask token")
        starts = word_start_table(tokenizer, vocab_size) if whole_words else None
        return cls(
            tokenizer.mask_token_id, np.asarray(tokenizer.all_special_ids), vocab_size, seed, probability, starts
        )

    def mask(self, ids: np.ndarray, epoch: int, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(model inputs, masked positions, their original ids) for one block seen in `epoch`."""
        rng = np.random.default_rng([self.seed, epoch, block])
        candidates = np.flatnonzero(~np.isin(ids, self.special_ids))
        count = min(len(candidates), max(1, round(self.probability * len(candidates)))) if len(candidates) else 0
        if self.word_starts is None:
            positions = np.sort(rng.choice(candidates, size=count, replace=False)) if count else candidates
            draw = rng.random(count)
        else:
            positions, draw = self._whole_words(ids, candidates, count, rng)
        labels = ids[positions].astype(np.int64)
        inputs = ids.astype(np.int64)
        inputs[positions[draw < MASK_SHARE]] = self.mask_id
        random = (draw >= MASK_SHARE) & (draw < MASK_SHARE + RANDOM_SHARE)
        if random.any():
            inputs[positions[random]] = rng.choice(self.replacements, size=int(random.sum()))
        return inputs, positions, labels

    def _whole_words(self, ids, candidates, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Whole words in a random order while their tokens fit in `count`, and the next word with the
        chance that makes `count` tokens the expected number (so the share stays 15%, not under it); the
        positions, and one 80-10-10 draw per word repeated over its tokens."""
        if not len(candidates):
            return candidates, np.empty(0)
        # A word begins at a token that says so, and after a special token (a document's first word
        # has no leading space in byte-level BPE).
        begins = self.word_starts[ids[candidates]]
        begins[0] = True
        begins[1:] |= np.diff(candidates) > 1
        word = np.cumsum(begins) - 1
        lengths = np.bincount(word)
        order = rng.permutation(len(lengths))
        total = np.cumsum(lengths[order])
        taken = int(np.searchsorted(total, count, side="right"))
        short = count - (int(total[taken - 1]) if taken else 0)
        edge = rng.random()  # drawn every time, so the draws after it never depend on this branch
        if taken < len(order) and edge * lengths[order[taken]] < short:
            taken += 1
        chosen = np.zeros(len(lengths), dtype=bool)
        chosen[order[:taken]] = True
        picked = chosen[word]
        per_word = np.zeros(len(lengths))
        per_word[order[:taken]] = rng.random(taken)
        return candidates[picked], per_word[word[picked]]


def word_start_table(tokenizer, vocab_size: int) -> np.ndarray:
    """Per token id, whether the token begins a word: WordPiece marks the pieces that continue one
    (``##``); byte-level BPE and SentencePiece mark the tokens after a space (``Ġ``, ``▁``), and a
    token that starts with neither a letter nor a digit (punctuation) begins a word of its own."""
    import json

    serialised = tokenizer.backend_tokenizer.to_str()
    backend = json.loads(serialised)
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    starts = np.ones(vocab_size, dtype=bool)
    if backend["model"]["type"] == "WordPiece":
        prefix = backend["model"].get("continuing_subword_prefix") or "##"
        starts[: len(tokens)] = [not token.startswith(prefix) for token in tokens]
        return starts
    marker = next((m for m, kind in (("Ġ", "ByteLevel"), ("▁", "Metaspace")) if kind in serialised), None)
    if marker is None:
        raise MaskingError(
            "--whole-word-masking: the tokenizer marks no word boundaries (no WordPiece ##, byte-level Ġ or "
            "SentencePiece ▁)"
        )
    starts[: len(tokens)] = [t.startswith(marker) or not t[:1].isalnum() for t in tokens]
    return starts


@dataclass(frozen=True)
class LocalityWarmup:
    """Attention scores biased by -slope x |i - j| (slopes 2, 1, 1/2, ... per head), fading linearly
    to no bias at all by optimizer step `steps`."""

    steps: int  # optimizer steps until the bias is gone; 0: none at all
    heads: int

    def weight(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.steps) if self.steps > 0 else 0.0

    def bias(self, length: int, step: int, device) -> torch.Tensor | None:
        """The additive attention mask, (1, heads, length, length), for optimizer step `step`; None once faded."""
        weight = self.weight(step)
        if weight == 0.0:
            return None
        return weight * _full_locality_bias(self.heads, length, torch.device(device))


@functools.lru_cache(maxsize=8)
def _full_locality_bias(heads: int, length: int, device: torch.device) -> torch.Tensor:
    """-slope x |i - j| for each head, made once per block length and device (not per forward pass)."""
    slopes = 2.0 ** (1 - torch.arange(heads, dtype=torch.float32))
    where = torch.arange(length, dtype=torch.float32)
    distance = (where[None, :] - where[:, None]).abs()
    return (-slopes[:, None, None] * distance)[None].to(device)


def lm_head_name(model) -> str | None:
    """The masked LM's head module (the one child besides the encoder), or None when it has several parts."""
    prefix = getattr(model, "base_model_prefix", "")
    others = [name for name, _ in model.named_children() if name != prefix]
    return others[0] if len(others) == 1 and hasattr(model, prefix) else None


class SparseMaskedLM(torch.nn.Module):
    """A `...ForMaskedLM` model whose forward returns the summed cross-entropy at the masked positions."""

    def __init__(self, model: torch.nn.Module, sparse: bool = True) -> None:
        super().__init__()
        self.model = model
        self.head = lm_head_name(model) if sparse else None  # a name, so no parameter is registered twice
        if sparse and self.head is None:
            logger.info("%s: the LM head has several parts; it runs on every position", type(model).__name__)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        labels: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
    ):
        """Summed loss and correct predictions over `positions` (indices into the flattened batch);
        `attention_bias` is added to every layer's attention scores (LocalityWarmup)."""
        if self.head is not None:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=input_ids, attention_mask=attention_bias).last_hidden_state
            logits = getattr(self.model, self.head)(hidden.flatten(0, 1).index_select(0, positions))
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_bias).logits
            logits = logits.flatten(0, 1).index_select(0, positions)
        logits = logits.float()
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.detach().argmax(-1) == labels).sum()
        return loss, correct


@dataclass
class MaskedLanguageModeling:
    """The loop's objective (loop.Objective) for pretraining on packed blocks (data/corpus.py)."""

    train_blocks: object  # corpus.Blocks
    validation_blocks: object
    masker: Masker
    eval_batch_size: int
    locality: LocalityWarmup | None = None  # training only; evaluation never has a bias

    def _groups(self, blocks, indices, epoch: int, device):
        """The micro-batch as forward passes of equal-length blocks (only a share's last block is shorter)."""
        by_length: dict[int, list[int]] = {}
        for index in indices:
            by_length.setdefault(int(blocks.offsets[index + 1] - blocks.offsets[index]), []).append(int(index))
        for length, members in sorted(by_length.items()):
            inputs, positions, labels = [], [], []
            for row, index in enumerate(members):
                ids, picked, targets = self.masker.mask(blocks[index], epoch, index)
                inputs.append(ids)
                positions.append(picked + row * length)
                labels.append(targets)
            yield (
                torch.from_numpy(np.stack(inputs)).to(device, non_blocking=True),
                torch.from_numpy(np.concatenate(positions)).to(device, non_blocking=True),
                torch.from_numpy(np.concatenate(labels)).to(device, non_blocking=True),
            )

    def loss(self, model, indices, epoch, accelerator, step) -> torch.Tensor:
        total, count = None, 0
        for input_ids, positions, labels in self._groups(self.train_blocks, indices, epoch, accelerator.device):
            bias = self.locality.bias(input_ids.shape[1], step, input_ids.device) if self.locality else None
            with accelerator.autocast():
                loss, _ = model(input_ids, positions, labels, bias)
            total = loss if total is None else total + loss
            count += len(labels)
        if total is None or count == 0:  # blocks of special tokens only: nothing to predict
            return sum(p.sum() * 0.0 for p in model.parameters())
        return total / count

    @torch.inference_mode()
    def evaluate(self, model, accelerator) -> dict[str, float]:
        model = accelerator.unwrap_model(model)
        model.eval()
        blocks = self.validation_blocks
        total, correct, count = 0.0, 0, 0
        order = np.arange(len(blocks))
        for start in range(0, len(order), self.eval_batch_size):
            indices = order[start : start + self.eval_batch_size]
            for input_ids, positions, labels in self._groups(blocks, indices, EVAL_EPOCH, accelerator.device):
                with accelerator.autocast():
                    loss, right = model(input_ids, positions, labels)
                total += float(loss)
                correct += int(right)
                count += len(labels)
        eval_loss = total / max(1, count)
        return {
            "eval_loss": eval_loss,
            "perplexity": math.exp(min(eval_loss, 50.0)),
            "masked_accuracy": correct / max(1, count),
        }
