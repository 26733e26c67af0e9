"""Few-shot training: a classifier from a handful of labelled rows per class (`train --method few-shot`).

Plain fine-tuning barely leaves chance with 8 rows per class: the classification head of a pretrained encoder
reads the first token through a dense layer that was never trained for the task (for a sentence encoder such
as all-MiniLM-L6-v2, never trained at all: it was trained with mean pooling). The few-shot method keeps the
standard `...ForSequenceClassification` (so `pipeline()`, eval, predict, export and serve take the model
directory unchanged) and trains it in four steps:

1. **Mean pooling built into the weights** (`add_mean_pooling_layer`): one more encoder layer whose
   first-token output is the layer-normalised mean of the token states below it (query = key = 0: uniform
   attention over the text's tokens; value = identity; attention output = 1000 x identity, so the first
   token's own state is negligible; feed-forward = 0), and the head's dense layer = 0.5 x identity. The head
   then reads tanh(0.5 x LayerNorm(mean of the token states)), which a sentence encoder was trained for.
2. **Contrastive training of the encoder** (`PairContrast`, run by the loop with checkpoints and exact
   resume): for every pair of distinct rows in a batch, the cosine of their mean token states (the
   sentence encoder's own embedding: the built layer's input, before its layer norm and the head's tanh) is
   pulled to 1 for the same label and to 0 for different labels, positive and negative pairs weighing half
   each. The word embeddings, the built layer and the head's dense layer stay fixed.
3. **The head** (`fit_head`): a multinomial logistic regression on the frozen features of the training
   rows, copied into the classifier's final linear layer.
4. **End to end** (`end_to_end`): the pretrained encoder layers and the final linear layer trained with
   cross-entropy on the rows' labels for a fixed short budget (END_TO_END).

The run trains a fixed budget chosen from the data (`BUDGET`, below the settings given) and needs no
validation rows; with --validation they score the result. docs/few-shot.md says when it is used.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from roberta_ft.errors import ConfigError

logger = logging.getLogger(__name__)

METHODS = ("auto", "few-shot", "fine-tune")
# `--method auto` trains few-shot when no class has more training rows than this.
MAX_ROWS_PER_CLASS = 64
# The few-shot budget, under the settings given (a flag, --config or a recipe wins): 20 passes over the rows,
# batches of 32 rows (every pair of distinct rows in a batch is a pair), AdamW at 6e-5 with 10% warm-up.
# 6e-5 was chosen on SST-2 training rows held out of the sampling (benchmarks/fewshot_bench.py --selection,
# never the scored split): at 32 rows per class it scored 0.8033 (median of 3 seeds) against 0.7800 at
# 2e-5 and 0.8000 at 4e-5; at 8 rows per class 0.6650 against 0.6600 and 0.6600.
BUDGET = {"epochs": 20, "batch_size": 32, "learning_rate": 6e-5, "weight_decay": 0.01, "warmup_ratio": 0.1}
# The end-to-end phase, after the head is fitted: every encoder layer below the built one and the final linear
# layer trained on the rows' labels with cross-entropy (dropout on; word embeddings, the built layer and the
# head's dense layer fixed), a fixed budget under any settings given. Chosen on SST-2 training rows held out of
# the benchmark's sampling (6 seeds, never the scored split): better on 11 of the 12 models, medians at 8 rows
# per class 0.6717 -> 0.6808 and at 32 rows 0.7742 -> 0.7900 (docs/performance.md#few-shot-training).
END_TO_END = {"epochs": 10, "batch_size": 16, "learning_rate": 2e-5, "weight_decay": 0.01}
# Long texts: with --long-text not given, when most training texts are longer than --max-length, few-shot
# training reads sliding windows (WINDOW_STRIDE tokens shared by consecutive windows), each window a training
# row of its text's class, and the model keeps that reading for eval, predict and serve. The contrastive phase
# then takes about the steps of BUDGET's epochs over whole texts (epochs x texts / windows), at least
# MIN_WINDOW_EPOCHS. Measured on BBC News (4.6 windows a text at 128 tokens, so 10 epochs): 8 rows per class
# 0.9085 -> 0.9343, 32 rows per class 0.9413 -> 0.9671 (medians; docs/performance.md#few-shot-training).
WINDOW_STRIDE = 16
MIN_WINDOW_EPOCHS = 10
# The model families whose layers and heads the mean-pooling layer is built for.
FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert")
MEAN_LAYER_SCALE = 1000.0  # attention output = this x identity: the first token's own state becomes negligible
HEAD_DENSE_SCALE = 0.5  # the head's dense layer = this x identity: tanh stays in its near-linear range
HEAD_C = 1.0  # inverse L2 strength of the logistic regression fitted as the head


@dataclass(frozen=True)
class Choice:
    """The training method a run uses, and why (logged and written into run_config.json)."""

    method: str  # "few-shot" or "fine-tune"
    reason: str


def choose(method: str, *, has_labels: bool, multi_label: bool, pretrained: bool, class_rows: dict[str, int]) -> Choice:
    """The method for `--method` (auto, few-shot or fine-tune), given the problem and the rows per class."""
    largest = max(class_rows.values()) if class_rows else 0
    if method == "fine-tune":
        return Choice("fine-tune", "--method fine-tune")
    if method == "few-shot":
        if not has_labels:
            raise ConfigError(
                "--method few-shot needs labels, but this task predicts a score (regression)",
                "drop --method few-shot (regression is fine-tuned)",
            )
        if multi_label:
            raise ConfigError(
                "--method few-shot trains single-label classifiers, not --multi-label", "drop --method few-shot"
            )
        _check_rows(class_rows)
        return Choice("few-shot", "--method few-shot")
    # auto
    if not has_labels or multi_label:
        return Choice("fine-tune", "regression and multi-label are fine-tuned")
    if not pretrained:
        return Choice("fine-tune", "a model from random weights (tiny) is fine-tuned; few-shot needs a pretrained one")
    if largest > MAX_ROWS_PER_CLASS:
        return Choice("fine-tune", f"the largest class has {largest} training rows (> {MAX_ROWS_PER_CLASS} per class)")
    _check_rows(class_rows)
    return Choice("few-shot", f"at most {largest} training rows per class (<= {MAX_ROWS_PER_CLASS})")


def window_budget(tokenizer, texts: list[str], max_length: int) -> tuple[dict[str, Any], str] | None:
    """The settings that make few-shot training read windows of long texts (see WINDOW_STRIDE), and the log line
    that says why; None when at most half of the training texts are longer than `max_length` tokens."""
    if not texts:
        return None
    from roberta_ft.data.tokens import tokenize

    stride = min(WINDOW_STRIDE, max_length // 2)
    _, _, owners, _ = tokenize(tokenizer, texts, None, max_length, "sliding", stride)
    per_text = np.bincount(owners, minlength=len(texts))
    long = int((per_text > 1).sum())
    if 2 * long <= len(texts):
        return None
    windows = int(per_text.sum())
    epochs = max(MIN_WINDOW_EPOCHS, round(BUDGET["epochs"] * len(texts) / windows))
    reason = (
        f"Few-shot: {long} of {len(texts)} training texts are longer than --max-length {max_length} tokens, so "
        f"training and prediction read windows of {max_length} tokens sharing {stride} ({windows} windows, "
        f"{windows / len(texts):.1f} a text; {epochs} epochs); pass --long-text truncate to read the first "
        f"{max_length} tokens only"
    )
    return {"long_text": "sliding", "stride": stride, "epochs": epochs}, reason


def _check_rows(class_rows: dict[str, int]) -> None:
    single = sorted(name for name, rows in class_rows.items() if rows < 2)
    if single:
        shown = ", ".join(repr(name) for name in single[:5])
        raise ConfigError(
            f"few-shot training pairs rows of the same class, but class {shown} has only one training row",
            "add at least one more row to each class (2 or more per class; 8 or more works far better)",
        )


def check_family(model, model_name: str) -> None:
    family = getattr(model.config, "model_type", None)
    if family not in FAMILIES or _final_linear(model) is None:
        raise ConfigError(
            f"--method few-shot supports {', '.join(FAMILIES)} models, not {family!r} ({model_name})",
            "pick a BERT- or RoBERTa-family model, or pass --method fine-tune",
        )


# ---------------------------------------------------------------------------------------------- the model


def _final_linear(model):
    """The linear layer that turns the head's features into logits."""
    from roberta_ft.modeling import output_layer

    return output_layer(model)


def _head_dense(model):
    """The head's dense layer in front of the tanh: BERT's pooler, RoBERTa's classifier.dense."""
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is not None and getattr(pooler, "dense", None) is not None:
        return pooler.dense
    return model.classifier.dense


def add_mean_pooling_layer(model) -> None:
    """Append the mean-pooling encoder layer (see the module doc) in place; config.json says one more layer."""
    import copy

    import torch

    layers = model.base_model.encoder.layer
    layer = copy.deepcopy(layers[-1])
    size = model.config.hidden_size
    eye = torch.eye(size)
    with torch.no_grad():
        attention = layer.attention
        for linear in (attention.self.query, attention.self.key):
            linear.weight.zero_()
            linear.bias.zero_()
        attention.self.value.weight.copy_(eye)
        attention.self.value.bias.zero_()
        attention.output.dense.weight.copy_(MEAN_LAYER_SCALE * eye)
        attention.output.dense.bias.zero_()
        for norm in (attention.output.LayerNorm, layer.output.LayerNorm):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
        for linear in (layer.intermediate.dense, layer.output.dense):
            linear.weight.zero_()
            linear.bias.zero_()
        dense = _head_dense(model)
        dense.weight.copy_(HEAD_DENSE_SCALE * eye)
        dense.bias.zero_()
    layers.append(layer)
    model.config.num_hidden_layers = len(layers)
    if hasattr(layer, "layer_idx"):
        layer.layer_idx = len(layers) - 1


def _fixed_parameters(model) -> list:
    """What stays fixed while the encoder trains contrastively: the word embeddings, the built layer and the
    head's dense layer (and the final linear layer, which the contrastive loss never reaches)."""
    fixed = [model.base_model.embeddings.word_embeddings.weight]
    fixed += list(model.base_model.encoder.layer[-1].parameters())
    fixed += list(_head_dense(model).parameters()) + list(_final_linear(model).parameters())
    return fixed


@contextlib.contextmanager
def contrastive_setup(model) -> Iterator[None]:
    """For the contrastive phase: the fixed parameters frozen, and the dropout in front of the final linear
    layer off (the head takes no part in the phase's loss)."""
    import torch

    head_dropouts = [
        module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Dropout) and name in ("dropout", "classifier.dropout")
    ]
    rates = [(module, module.p) for module in head_dropouts]
    for module in head_dropouts:
        module.p = 0.0
    try:
        with _frozen(_fixed_parameters(model)):
            yield
    finally:
        for module, rate in rates:
            module.p = rate


@contextlib.contextmanager
def _frozen(parameters) -> Iterator[None]:
    """`parameters` fixed (requires_grad off) within the block, each as it was after it."""
    states = [(parameter, parameter.requires_grad) for parameter in parameters]
    for parameter, _ in states:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, requires_grad in states:
            parameter.requires_grad_(requires_grad)


@contextlib.contextmanager
def head_inputs(model) -> Iterator[list]:
    """Within the block, each forward pass through `model` appends the final linear layer's input (the head's
    features) to the yielded list: the features, whatever wraps the model (DDP included)."""
    captured: list = []
    handle = _final_linear(model).register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        yield captured
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------- the objective


def pair_loss(features, labels):
    """SetFit's cosine target over every pair of distinct rows: cos -> 1 for the same label, 0 for different
    labels; positive and negative pairs weigh half each (all of them when the batch has only one sort)."""
    import torch

    normalized = torch.nn.functional.normalize(features.float(), dim=-1)
    similarity = normalized @ normalized.T
    rows, columns = torch.triu_indices(len(labels), len(labels), 1, device=features.device)
    cosine = similarity[rows, columns]
    same = (labels[rows] == labels[columns]).float()
    error = (cosine - same) ** 2
    positive, negative = same > 0, same == 0
    if positive.any() and negative.any():
        return 0.5 * error[positive].mean() + 0.5 * error[negative].mean()
    return error.mean()


def batch_pairs(batch_rows: int, class_rows: dict[str, int]) -> tuple[int, int]:
    """(pairs, positive pairs) in a batch of `batch_rows` rows drawn from classes of these sizes (expected)."""
    total = sum(class_rows.values())
    pairs = batch_rows * (batch_rows - 1) // 2
    if total < 2:
        return pairs, 0
    same = sum(rows * (rows - 1) for rows in class_rows.values()) / (total * (total - 1))
    return pairs, round(pairs * same)


@dataclass
class PairContrast:
    """The contrastive phase as the loop's objective: a micro-batch's rows, every pair of distinct rows."""

    train_data: Any  # data.tokens.Encoded with targets (label ids)
    pad_id: int

    def __post_init__(self) -> None:
        import torch

        self.targets = torch.from_numpy(np.asarray(self.train_data.targets))

    def loss(self, model, indices, epoch, accelerator, step):
        from roberta_ft.forward import device_batch

        batch = device_batch(self.train_data, indices, self.pad_id, accelerator)
        labels = self.targets[indices].to(accelerator.device)
        with accelerator.autocast():
            hidden = model(**batch, output_hidden_states=True).hidden_states
        # hidden[-1] is the built layer's output; hidden[-2] the pretrained encoder's last layer, below it
        return pair_loss(token_mean(hidden[-2], batch["attention_mask"]), labels)

    def evaluate(self, model, accelerator) -> dict[str, float]:
        return {}  # no validation rows here: the phase trains a fixed budget


def token_mean(hidden, attention_mask):
    """The mean of each text's token states (padding left out): a sentence encoder's own embedding, before
    the built layer's layer norm and the head's tanh."""
    hidden = hidden.float()
    mask = attention_mask.unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


# ---------------------------------------------------------------------------------------------- the head


def features(model, data, batch_size: int, *, accelerator, pad_id: int):
    """The head's features of every row of `data` (eval mode), in its order, as a float64 numpy array."""
    import torch

    from roberta_ft.forward import device_batch

    bare = accelerator.unwrap_model(model)
    bare.eval()
    rows = []
    with torch.inference_mode(), head_inputs(bare) as captured:
        for start in range(0, len(data), batch_size):
            indices = np.arange(start, min(start + batch_size, len(data)))
            with accelerator.autocast():
                bare(**device_batch(data, indices, pad_id, accelerator))
            rows.append(captured[-1].float().cpu().numpy())
    return np.concatenate(rows).astype(np.float64)


def fit_head(model, data, *, accelerator, pad_id: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Fit a logistic regression on the frozen features of the training rows and copy it into the final
    linear layer; returns what the model card and metrics.json say of it."""
    import torch
    from sklearn.linear_model import LogisticRegression

    inputs = features(model, data, batch_size, accelerator=accelerator, pad_id=pad_id)
    targets = np.asarray(data.targets)
    fitted = LogisticRegression(C=HEAD_C, max_iter=2000, random_state=seed).fit(inputs, targets)
    linear = _final_linear(accelerator.unwrap_model(model))
    coef, intercept = fitted.coef_, fitted.intercept_
    labels = linear.out_features
    if coef.shape[0] == 1:  # two classes: softmax over [-z/2, z/2] is the regression's sigmoid(z)
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    full_weight = np.zeros((labels, coef.shape[1]))
    full_bias = np.full(labels, -1e4)  # a class the rows never showed is never predicted
    full_weight[fitted.classes_] = coef
    full_bias[fitted.classes_] = intercept
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(full_weight).to(linear.weight))
        linear.bias.copy_(torch.from_numpy(full_bias).to(linear.bias))
    return {"C": HEAD_C, "train_accuracy": float(fitted.score(inputs, targets)), "rows": int(len(targets))}


def end_to_end(model, data, *, accelerator, pad_id: int, seed: int) -> dict[str, Any]:
    """The end-to-end phase (END_TO_END) on `data`'s rows and targets, in place; what metrics.json says of it.

    Seconds long, so it keeps no checkpoints of its own: it is seeded from the run's seed, and a run killed in
    it resumes from the contrastive phase's checkpoint and repeats the head and this phase bitwise alike."""
    import torch

    from roberta_ft.forward import device_batch

    bare = accelerator.unwrap_model(model)
    trainable = [p for layer in list(bare.base_model.encoder.layer)[:-1] for p in layer.parameters()]
    trainable += list(_final_linear(bare).parameters())
    chosen = {id(parameter) for parameter in trainable}
    budget = END_TO_END
    optimizer = torch.optim.AdamW(trainable, lr=budget["learning_rate"], weight_decay=budget["weight_decay"])
    targets = torch.as_tensor(np.asarray(data.targets))
    order_rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # the dropout masks
    losses: list[float] = []
    bare.train()
    try:
        with _frozen([parameter for parameter in bare.parameters() if id(parameter) not in chosen]):
            for _ in range(budget["epochs"]):
                order = order_rng.permutation(len(data))
                for start in range(0, len(order), budget["batch_size"]):
                    indices = order[start : start + budget["batch_size"]]
                    batch = device_batch(data, indices, pad_id, accelerator)
                    with accelerator.autocast():
                        logits = bare(**batch).logits
                    loss = torch.nn.functional.cross_entropy(logits.float(), targets[indices].to(logits.device))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(float(loss))
    finally:
        bare.eval()
    return {**budget, "steps": len(losses), "last_loss": losses[-1] if losses else float("nan")}


def describe(rows: int, batch_size: int, epochs: int, class_rows: dict[str, int], texts: int | None = None) -> str:
    """The log line that says what the contrastive phase trains on (`rows`: model inputs, which are windows of
    `texts` texts when long texts are read as windows)."""
    batch = min(batch_size, rows)
    pairs, positive = batch_pairs(batch, class_rows)
    steps = math.ceil(rows / batch_size) * epochs
    what = f"{rows} training rows" if texts in (None, rows) else f"{rows} training windows of {texts} texts"
    classes = sum(1 for count in class_rows.values() if count)
    return (
        f"Few-shot: {what} in {classes} classes; contrastive phase of {epochs} epochs x "
        f"{math.ceil(rows / batch_size)} step(s) = {steps} steps, each over every pair of distinct rows of a batch "
        f"of {batch} ({pairs} pairs, about {positive} of the same class; positive and negative pairs weigh half "
        "each), then a logistic-regression head on the frozen features, then "
        f"{END_TO_END['epochs']} epochs end to end (cross-entropy, learning rate {END_TO_END['learning_rate']:g})"
    )
