"""Load or build the model and tokenizer through the Auto classes (RoBERTa family first)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from roberta_ft.artifacts import check_label_names
from roberta_ft.errors import ModelLoadError
from roberta_ft.hub import hub_reachable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

logger = logging.getLogger(__name__)

TINY = "tiny"
# A small RoBERTa trained from scratch: big enough to learn simple tasks in seconds on a laptop CPU.
TINY_SHAPE = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 514,
}
# The tiny masked LM's weight scale. BERT's 0.02 suits 768 hidden units; for 128, the same scale
# (0.02 x sqrt(768 / 128)) lets attention learn to use positions within hundreds of steps instead of
# sitting on a bag-of-words plateau for thousands (docs/pretraining.md). The tiny classifier keeps 0.02.
TINY_MLM_INITIALIZER_RANGE = 0.05
TINY_VOCAB_SIZE = 4096
TINY_MAX_LENGTH = TINY_SHAPE["max_position_embeddings"] - 2  # RoBERTa positions start after the padding index
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's ids 0..4


def _offline_error(name: str) -> ModelLoadError:
    return ModelLoadError(
        f"cannot load model {name!r}: it is not a local directory, not in the Hugging Face cache, "
        "and the Hugging Face Hub is unreachable",
        "pass a local model directory with --model PATH, or try the toolkit with --model tiny",
    )


def _from_pretrained(loader, name: str, **kwargs):
    """Call `loader.from_pretrained`, failing in seconds with one clear line when offline."""
    if Path(name).expanduser().exists():
        try:
            return loader.from_pretrained(str(Path(name).expanduser()), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"cannot load {name!r} as a model: {_first_line(exc)}",
                "pass a directory written by save_pretrained or `roberta-ft train`",
            ) from exc
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass  # not cached: try the hub below
    if not hub_reachable():
        raise _offline_error(name)
    try:
        return loader.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model {name!r}: {_first_line(exc)}",
            "check the model id on the Hub, pass a local directory with --model PATH, or use --model tiny",
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_tokenizer(name: str, *, trust_remote_code: bool = False):
    """A pretrained model's tokenizer alone (a Hub id or a directory), with the same offline errors."""
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, name, trust_remote_code=trust_remote_code)


def load_pretrained(name: str, *, head: Mapping, trust_remote_code: bool = False):
    """A tokenizer and a sequence classifier with a fresh head: `head` is its config (Problem.head())."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    model = _from_pretrained(
        AutoModelForSequenceClassification,
        name,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,  # weights are never unpickled
        ignore_mismatched_sizes=True,  # a checkpoint fine-tuned on other labels gets a new head
        **head,
    )
    _ensure_pad_token(tokenizer, model)
    architectures = getattr(model.config, "architectures", None) or []
    if any(name.endswith("ForMaskedLM") for name in architectures):
        logger.info(
            "%s is a masked-LM checkpoint (%s): its LM head is dropped and a new classification head is trained",
            name,
            architectures[0],
        )
    return model, tokenizer


def load_masked_lm(name: str, *, trust_remote_code: bool = False):
    """A tokenizer and a `...ForMaskedLM` model to pretrain further; a missing LM head is initialised (logged)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, name, trust_remote_code=trust_remote_code)
    if tokenizer.mask_token_id is None:
        raise ModelLoadError(
            f"the tokenizer of {name!r} has no mask token, so it cannot be pretrained with masked-LM",
            "pick a RoBERTa- or BERT-style model",
        )
    model, info = _from_pretrained(
        AutoModelForMaskedLM,
        name,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        output_loading_info=True,
    )
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        logger.warning(
            "%s has no trained masked-LM head (%d tensors missing, e.g. %s): it is initialised randomly and "
            "learnt in this run",
            name,
            len(missing),
            missing[0],
        )
    unused = sorted(info.get("unexpected_keys") or [])
    if unused:
        logger.info(
            "Not used by the masked LM (left out): %s", ", ".join(unused[:4]) + (" ..." if len(unused) > 4 else "")
        )
    _ensure_pad_token(tokenizer, model)
    return model, tokenizer


def build_tiny_masked_lm(
    documents: Iterable[str], *, seed: int = 42, vocab_size: int = TINY_VOCAB_SIZE, tokenizer=None
):
    """A small RoBERTa masked LM with random weights and a byte-level BPE tokenizer trained on `documents`
    (or the given `tokenizer`, when a run resumes)."""
    import torch
    from transformers import AutoModelForMaskedLM

    if tokenizer is None:
        tokenizer = train_tiny_tokenizer(documents, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(_tiny_config(tokenizer, initializer_range=TINY_MLM_INITIALIZER_RANGE))
    logger.info(
        "--model tiny: a %.1fM-parameter RoBERTa masked LM from scratch, with a %d-token byte-level BPE "
        "vocabulary trained on the corpus",
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(tokenizer),
    )
    return model, tokenizer


def load_trained(model_dir: str | Path, *, trust_remote_code: bool = False):
    """Load a fine-tuned classifier as saved (its head and labels untouched)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = str(model_dir)
    tokenizer = _from_pretrained(AutoTokenizer, model_dir, trust_remote_code=trust_remote_code)
    model = _from_pretrained(
        AutoModelForSequenceClassification, model_dir, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    _ensure_pad_token(tokenizer, model)
    check_label_names(model.config.id2label, model_dir)
    return model, tokenizer


def output_layer(model):
    """The classifier's last linear layer (the one whose outputs are the logits); None for another head shape.

    BERT: dropout(pooler output) -> classifier; RoBERTa: dense -> tanh -> dropout -> classifier.out_proj."""
    import torch

    head = getattr(model, "classifier", None)
    if isinstance(head, torch.nn.Linear):
        return head
    out_proj = getattr(head, "out_proj", None)
    return out_proj if isinstance(out_proj, torch.nn.Linear) else None


def position_limit(model) -> int | None:
    """The most tokens per input the model's position embeddings allow."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return None
    # RoBERTa-family position ids start after the padding index.
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= model.config.pad_token_id + 1
    return limit


def _ensure_pad_token(tokenizer, model) -> None:
    # GPT-style checkpoints have no pad token; reuse EOS so batches can be padded.
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = TINY_VOCAB_SIZE, model_max_length: int = 512):
    """A byte-level BPE tokenizer trained on the given texts, wrapped as a RoBERTa tokenizer."""
    from tokenizers import AddedToken, ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        iter(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    vocab = model["vocab"]
    # As in roberta-base, <mask> takes the space before it: "is <mask> ." masks the word " hot" of
    # "is hot .", not a lone space followed by a mask.
    mask = AddedToken("<mask>", lstrip=True, rstrip=False)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length, mask_token=mask)
    return tokenizer


def _tiny_config(tokenizer, **extra):
    """The tiny RoBERTa's config for a tokenizer (its vocabulary and special tokens); `extra`: e.g. a head."""
    from transformers import RobertaConfig

    return RobertaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        **TINY_SHAPE,
        **extra,
    )


def build_tiny(texts: Sequence[str], *, head: Mapping, seed: int = 42):
    """A small RoBERTa with random weights and a tokenizer trained on `texts`: no download needed.

    `head` is the classifier head's config (Problem.head()).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    tokenizer = train_tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(_tiny_config(tokenizer, **head))
    logger.warning(
        "--model tiny: a %.1fM-parameter RoBERTa with random weights (NOT pretrained) and a tokenizer "
        "trained on your training texts; good for trying the toolkit, not for real accuracy",
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return model, tokenizer
