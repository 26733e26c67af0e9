"""`roberta_ft.export.export(config)`: a trained model as ONNX (fp32, and int8), verified.

Steps: the torch model (fp32, CPU) is exported with dynamic batch and sequence axes (pairs keep their
token type ids when the model has them; the last layer computes the first token only, as in
training and prediction), fused with ONNX Runtime's transformer optimizer where the architecture is
one it knows (BERT/RoBERTa: attention, LayerNorm and GELU fusions), quantized to int8 (`int8_scheme`:
dynamic, activations quantized per batch at run time, for a fine-tuned model; blockwise, per row and block,
for a few-shot model), and checked: the logits of each ONNX file
against torch's on sample texts, the largest difference printed. A failed check is an error and
leaves nothing behind. The files land beside config.json and the tokenizer, as Optimum lays them out
(``model.onnx``, ``model_quantized.onnx``), with ``onnx_export.json`` recording what was done.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roberta_ft import __version__, artifacts
from roberta_ft.config import ExportConfig
from roberta_ft.data.files import iter_lines
from roberta_ft.errors import ConfigError, DataError, ModelLoadError
from roberta_ft.onnx_model import EXPORT_RECORD, FP32_FILE, INT8_FILE, OnnxBackend, require

logger = logging.getLogger(__name__)

OPSET = 17
# What a model dir needs beside the graph for `predict --backend onnx` and Optimum: config, tokenizer, our record.
COMPANION_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    artifacts.RUN_CONFIG,
)
# ONNX Runtime's transformer optimizer knows these layouts (model_type -> its name for them).
FUSIONS = {"roberta": "bert", "bert": "bert", "xlm-roberta": "bert", "camembert": "bert", "distilbert": "bert"}
# Texts the export is verified on when the user gives none: short and long, plain and odd.
SAMPLE_TEXTS = (
    "A wonderful, moving film.",
    "The service was slow and the food arrived cold.",
    "I would not recommend this product to anyone.",
    "Absolutely loved it!",
    "It works, mostly, although the battery could last longer and the screen is a little dim in sunlight.",
    "meh",
    "The update fixed the crash on start-up but broke the login page.",
    "Please refund my order #12345: it never arrived.",
    "Five stars. Would buy again, and again, and again.",
    "The plot was predictable, the acting wooden, and the ending made no sense at all.",
    "Das ist ein Test.",
    "emoji 🙂 and café and naïve",
    "Is this the right department for billing questions?",
    "It was fine.",
    "The new policy takes effect on Monday; all staff must complete the training by Friday of the same week.",
    "Terrible.",
)
FP32_TOLERANCE = 1e-3  # largest logit difference allowed, relative to the logits' scale (at least 1)
INT8_TOLERANCE = 0.5  # int8 weights move logits more; a broken graph moves them by far more
INT8_AGREEMENT = 0.8  # share of sample texts whose label the int8 model must keep


@dataclass
class ExportResult:
    output_dir: Path
    files: dict[str, str]  # precision -> file path
    checks: dict[str, dict[str, Any]]  # precision -> {"max_abs_diff", "labels_agree", "texts"}
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "files": self.files,
            "checks": self.checks,
            "seconds": self.seconds,
            **self.details,
        }


def export(config: ExportConfig) -> ExportResult:
    started = time.perf_counter()
    config.validate()
    require("onnx")
    require("onnxruntime")
    model_dir = artifacts.check_model_dir(config.model_dir)
    output = Path(config.output) if config.output else model_dir
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} exists and is a file", "pass a directory path")
    artifacts.check_writable(output, directory=True)
    names = [FP32_FILE] + ([INT8_FILE] if config.quantize != "none" else [])
    existing = [output / name for name in names if (output / name).exists()]
    if existing and not config.overwrite:
        raise ConfigError(f"{existing[0]} already exists", "pass --overwrite to replace it")
    run = artifacts.read_run_config(model_dir)
    texts, pairs = _verification_texts(config.verify_texts, pair=bool(run.get("text_pair")))
    scheme, why = int8_scheme(config.quantize, run) if config.quantize != "none" else (None, "")
    if scheme == "blockwise":
        require("onnx_ir")  # the blockwise quantizer imports it (the onnx extra installs it): checked before any work

    import torch

    from roberta_ft.modeling import load_trained

    model, tokenizer = load_trained(model_dir, trust_remote_code=config.trust_remote_code)
    model = model.float().eval()
    _use_eager_attention(model)
    with artifacts.writing(output):
        output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=output) as scratch:
        scratch = Path(scratch)
        raw = scratch / "raw.onnx"
        with torch.inference_mode():
            reference = _torch_logits(model, tokenizer, texts, pairs)
        exported_with = _export_graph(model, tokenizer, raw)
        fused = _fuse(raw, scratch / FP32_FILE, model.config)
        files = {"fp32": scratch / FP32_FILE}
        quantized: dict[str, Any] = {}
        if scheme is not None:
            logger.info("int8: %s (%s)", scheme, why)
            quantized = _quantize(files["fp32"], scratch / INT8_FILE, scheme)
            files["int8"] = scratch / INT8_FILE
        checks = {
            precision: _check(path, precision, tokenizer, texts, pairs, reference) for precision, path in files.items()
        }
        # Everything checked: into place, one file at a time, each atomically.
        if output.resolve() != model_dir.resolve():
            for name in COMPANION_FILES:
                if (model_dir / name).is_file():
                    shutil.copy2(model_dir / name, scratch / name)
                    os.replace(scratch / name, output / name)
        placed = {}
        for precision, path in files.items():
            os.chmod(path, artifacts.plain_mode(output / path.name))
            os.replace(path, output / path.name)
            placed[precision] = str(output / path.name)
    details = {
        "opset": OPSET,
        "exporter": exported_with,
        "fused": fused,
        "first_token_last_layer": True,
        "quantization": _describe_quantization(quantized) if "int8" in placed else None,
        "int8_scheme": quantized.get("scheme"),
        "kept_fp32": quantized.get("kept_fp32"),
        "blockwise_int8": quantized.get("blockwise"),
        "int8_block_size": BLOCKWISE_BLOCK if quantized.get("scheme") == "blockwise" else None,
    }
    record = {"roberta_ft_version": __version__, "files": placed, "checks": checks, **details}
    record["versions"] = _versions()
    artifacts.write_json(output / EXPORT_RECORD, record)
    for precision, check in checks.items():
        logger.info(
            "%s (%s): largest logit difference from torch %.2e, labels agree on %d of %d sample texts",
            Path(placed[precision]).name,
            precision,
            check["max_abs_diff"],
            round(check["labels_agree"] * check["texts"]),
            check["texts"],
        )
    return ExportResult(output, placed, checks, time.perf_counter() - started, details)


def _verification_texts(path: str | None, *, pair: bool) -> tuple[list[str], list[str] | None]:
    if path is None:
        texts = list(SAMPLE_TEXTS)
        return (texts, texts[1:] + texts[:1]) if pair else (texts, None)
    firsts, seconds = [], []
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if pair:
            if "\t" not in line:
                raise DataError(
                    f"{path}: line {number} has no tab, but the model classifies text pairs", "write FIRST<TAB>SECOND"
                )
            first, second = line.split("\t", 1)
            firsts.append(first)
            seconds.append(second)
        else:
            firsts.append(line)
    if not firsts:
        raise DataError(f"{path} has no texts", "give a file with one text per line")
    return firsts, (seconds if pair else None)


def _inputs(tokenizer, texts, pairs, max_length: int = 128) -> dict[str, Any]:
    keep_types = "token_type_ids" in tokenizer.model_input_names
    return tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="np",
        return_token_type_ids=keep_types,
    )


def _torch_logits(model, tokenizer, texts, pairs) -> np.ndarray:
    import torch

    from roberta_ft.speed.first_token import first_token_only

    batch = {key: torch.from_numpy(value) for key, value in _inputs(tokenizer, texts, pairs).items()}
    with first_token_only(model):
        return model(**batch).logits.float().numpy()


def _export_graph(model, tokenizer, path: Path) -> str:
    """Trace the model with first-token last layer into ONNX; returns which exporter did it."""
    import torch

    from roberta_ft.speed.first_token import first_token_only

    # A batch with padding, so the traced graph keeps the attention mask's path for every input.
    sample = _inputs(tokenizer, SAMPLE_TEXTS[:2], SAMPLE_TEXTS[2:4] if _is_pair_tokenizer(tokenizer) else None)
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    tensors = tuple(torch.from_numpy(sample[name]) for name in names)

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *values):
            return self.inner(**dict(zip(names, values, strict=True))).logits

    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in names}
    axes["logits"] = {0: "batch_size"}
    with first_token_only(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the check below is what counts
        try:
            torch.onnx.export(
                Logits(model),
                tensors,
                str(path),
                input_names=names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot export {type(model).__name__} to ONNX: {str(exc).splitlines()[0] if str(exc) else exc}",
                "run with --verbose for details; models outside the BERT/RoBERTa family may not export",
            ) from exc
    return f"torch.onnx (TorchScript) {torch.__version__}"


def _is_pair_tokenizer(tokenizer) -> bool:
    return True  # pairs are exported for every model: the graph is the same, only inputs differ


def _use_eager_attention(model) -> None:
    """Trace the plain attention (matmul, mask, softmax, matmul): the pattern ONNX Runtime fuses into its
    Attention kernel (and its int8 QAttention); scaled_dot_product_attention traces into another graph."""
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError) as exc:  # a model without that choice: exported as it is
        logger.debug("Attention kept as %s: %s", getattr(model.config, "_attn_implementation", "?"), exc)


def _fuse(raw: Path, target: Path, model_config) -> str | None:
    """ONNX Runtime's transformer fusions where it knows the layout; else the exported graph as is."""
    kind = FUSIONS.get(getattr(model_config, "model_type", ""))
    if kind is None:
        shutil.copyfile(raw, target)
        return None
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(raw),
            model_type=kind,
            num_heads=model_config.num_attention_heads,
            hidden_size=model_config.hidden_size,
            opt_level=0,
            use_gpu=False,
        )
    optimized.save_model_to_file(str(target))
    fused = {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}
    return ", ".join(f"{op} {count}" for op, count in fused.items()) or "none"


# The int8 schemes (`int8_scheme`):
# - dynamic: ONNX Runtime's dynamic quantization (int8 weights with a scale per output column, the activations
#   quantized with one scale per batch), the residual projections (`residual_projections`) kept in fp32;
# - blockwise: every matrix product with a weight as ONNX Runtime's MatMulNBits at 8 bits, symmetric, a scale per
#   BLOCKWISE_BLOCK weights of a column, run at accuracy level 4 (int8 arithmetic with the activations quantized
#   per row and block of BLOCKWISE_BLOCK values); the fused attention and the embeddings stay fp32;
# - full (--quantize int8-full): dynamic quantization of everything it quantizes.
# Blocks of 64: on twelve few-shot SST-2 models (600 held-out training texts each) they kept 99.65% of the labels
# (lowest model 99.17%) against 99.51% (98.83%) for 128, at the same speed; blocks of 32 kept 99.76% but ran
# 0.9x as fast, no faster than the fp32 file (docs/performance.md).
BLOCKWISE_BLOCK = 64
BLOCKWISE_ACCURACY_LEVEL = 4


def int8_scheme(quantize: str, run: dict[str, Any]) -> tuple[str, str]:
    """The int8 scheme for --quantize and the model's run record, and why.

    --quantize int8 takes blockwise for a few-shot model and dynamic for the others. A few-shot model holds many
    texts near its decision boundary, where one activation scale per batch tips labels: on ten few-shot MiniLM
    SST-2 models dynamic kept 97.2-98.9% of the torch labels (median 98.2%), blockwise in blocks of 64 99.3-100%
    (median 99.6%); a fine-tuned model keeps 99.15% with dynamic, which is 1.3x blockwise's speed (docs/performance.md).
    """
    if quantize == "int8-full":
        return "full", "--quantize int8-full"
    if quantize == "int8-blockwise":
        return "blockwise", "--quantize int8-blockwise"
    if (run.get("method") or {}).get("name") == "few-shot":
        return "blockwise", "a few-shot model: per-row activation scales keep the labels of texts near its boundary"
    return "dynamic", "a fine-tuned model; --quantize int8-blockwise keeps more labels at 0.8x the speed"


def residual_projections(model) -> list[str]:
    """The MatMul nodes that write back into the residual stream: each layer's attention output and
    feed-forward output projections, found by what reads them (a LayerNorm, directly or through an Add).

    Their inputs (attention contexts, GELU outputs) carry the outlier activations that one int8 scale per
    batch quantizes worst: on MiniLM SST-2, quantizing them too moves dev accuracy by -0.8 points and
    keeps 98.5% of torch's labels; keeping them in fp32, +-0.1 points and 99.2% (docs/performance.md).
    """
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    norms = ("SkipLayerNormalization", "LayerNormalization", "SkipSimplifiedLayerNormalization")

    def feeds_norm(output: str, hops: int = 2) -> bool:
        for reader in readers.get(output, ()):
            if reader.op_type in norms:
                return True
            if reader.op_type == "Add" and hops and any(feeds_norm(out, hops - 1) for out in reader.output):
                return True
        return False

    return [node.name for node in model.graph.node if node.op_type == "MatMul" and feeds_norm(node.output[0])]


def _quantize(source: Path, target: Path, scheme: str) -> dict[str, Any]:
    """Int8 quantization of `source` into `target` by `scheme`; returns the scheme and the nodes it treated
    apart (kept_fp32 for dynamic, blockwise for blockwise)."""
    import onnx

    if scheme == "blockwise":
        return {"scheme": scheme, "blockwise": _quantize_blockwise(source, target), "kept_fp32": []}
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept = residual_projections(onnx.load(str(source), load_external_data=False)) if scheme == "dynamic" else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The fused operators (Attention, SkipLayerNormalization) are outside ONNX's shape inference:
        # their outputs are float tensors.
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,  # a scale per output column: on MiniLM SST-2, 98.8% labels kept vs 96.5% per tensor
            nodes_to_exclude=kept,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {"scheme": scheme, "kept_fp32": kept, "blockwise": []}


def _quantize_blockwise(source: Path, target: Path) -> list[str]:
    """Every MatMul of `source` with a weight as an 8-bit MatMulNBits, into `target`; returns their names."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(source))
    weights = {initializer.name for initializer in model.graph.initializer}
    names = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=8,
        block_size=BLOCKWISE_BLOCK,
        is_symmetric=True,
        accuracy_level=BLOCKWISE_ACCURACY_LEVEL,
        nodes_to_include=names,
    )
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # it logs a line per node at INFO
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    onnx.save(quantizer.model.model, str(target))
    return names


def _describe_quantization(quantized: dict[str, Any]) -> str:
    if quantized["scheme"] == "blockwise":
        return (
            f"blockwise: the {len(quantized['blockwise'])} weight matrix products as 8-bit MatMulNBits (symmetric, "
            f"a scale per {BLOCKWISE_BLOCK} weights of a column; int8 arithmetic with the activations quantized "
            f"per row and block of {BLOCKWISE_BLOCK}); the attention and the embeddings in fp32"
        )
    text = f"{quantized['scheme']}: int8 weights (QInt8, a scale per output column), activations quantized per batch"
    if quantized["kept_fp32"]:
        text += f"; the {len(quantized['kept_fp32'])} residual projections (attention and feed-forward outputs) in fp32"
    return text


def _check(path: Path, precision: str, tokenizer, texts, pairs, reference: np.ndarray) -> dict[str, Any]:
    """The ONNX file's logits against torch's on the sample texts; an error when they are too far apart."""
    inputs = _inputs(tokenizer, texts, pairs)
    backend = OnnxBackend(path, precision, pad_id=tokenizer.pad_token_id, device="cpu")
    feed = {name: inputs[name].astype(np.int64) for name in backend.inputs}
    got = backend.session.run(["logits"], feed)[0]
    difference = float(np.abs(got - reference).max()) if len(reference) else 0.0
    agree = float((got.argmax(-1) == reference.argmax(-1)).mean()) if reference.shape[-1] > 1 else 1.0
    scale = max(1.0, float(np.abs(reference).max()))
    limit = (FP32_TOLERANCE if precision == "fp32" else INT8_TOLERANCE) * scale
    if not np.isfinite(got).all() or difference > limit or (precision == "int8" and agree < INT8_AGREEMENT):
        raise ModelLoadError(
            f"the exported {precision} model does not match torch: largest logit difference {difference:.3g} "
            f"(allowed {limit:.3g}), labels agree on {agree:.0%} of {len(texts)} sample texts",
            "nothing was written; report the model type, or export with --quantize none",
        )
    return {"max_abs_diff": difference, "labels_agree": agree, "texts": len(texts)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
