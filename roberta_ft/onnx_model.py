"""A trained model as an ONNX graph, run by ONNX Runtime: the `onnx` inference backend.

`roberta-ft export MODEL_DIR` writes ``model.onnx`` (fp32) and ``model_quantized.onnx`` (int8
quantization) beside config.json and the tokenizer, the layout Hugging Face Optimum reads. This module
finds those files, checks the extra is installed, and runs them: it imports onnxruntime, numpy and
the `tokenizers` library only (neither torch nor transformers), so `predict --backend onnx` starts in
a fraction of the torch backend's time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from roberta_ft.data.batches import collate, sorted_batches
from roberta_ft.data.tokens import Encoded
from roberta_ft.errors import ConfigError, DeviceError, ModelLoadError

logger = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"
EXPORT_RECORD = "onnx_export.json"
EXTRA_HINT = 'pip install "roberta-ft[onnx]"'
PRECISIONS = ("auto", "fp32", "int8")


def require(module: str = "onnxruntime"):
    """Import an optional dependency of the onnx extra, or fail with one line naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"the ONNX backend and `roberta-ft export` need the {module!r} package, which is not installed",
            EXTRA_HINT,
        ) from None


def pick_file(model_dir: Path, precision: str) -> tuple[Path, str]:
    """The ONNX file for `precision` (auto: int8 when exported, else fp32) and the precision it has."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"--precision {precision} is not available with --backend onnx", f"use one of {', '.join(PRECISIONS)}"
        )
    int8, fp32 = model_dir / INT8_FILE, model_dir / FP32_FILE
    if precision in ("auto", "int8") and int8.is_file():
        return int8, "int8"
    if precision == "int8":
        raise ConfigError(
            f"{model_dir} has no int8 ONNX model ({INT8_FILE})", f"run `roberta-ft export {model_dir} --quantize int8`"
        )
    if fp32.is_file():
        return fp32, "fp32"
    raise ConfigError(f"{model_dir} has no ONNX model ({FP32_FILE})", f"run `roberta-ft export {model_dir}` first")


def model_config(model_dir: Path) -> SimpleNamespace:
    """config.json as attributes (num_labels, id2label, problem_type, ...), read without transformers."""
    path = model_dir / "config.json"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", "re-save the model directory") from None
    id2label = {int(k): v for k, v in (values.get("id2label") or {}).items()}
    num_labels = values.get("num_labels") or len(id2label) or 2
    # As transformers reads it: a config.json without label names has LABEL_0, LABEL_1, ...
    values["id2label"] = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}
    values["num_labels"] = len(values["id2label"])
    values.setdefault("problem_type", None)
    return SimpleNamespace(**values)


class OnnxBackend:
    """An ONNX Runtime session on the CPU (or CUDA with onnxruntime-gpu), fed length-sorted padded batches."""

    name = "onnx"

    def __init__(self, path: Path, precision: str, *, pad_id: int, device: str = "auto", threads: int | None = None):
        ort = require("onnxruntime")
        from roberta_ft.speed.cpu_threads import usable_cpus

        providers = ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        if device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise DeviceError(
                    "--device cuda with --backend onnx needs ONNX Runtime's CUDA provider, which is not installed",
                    "pip install onnxruntime-gpu, or use --device cpu",
                )
            providers = ["CUDAExecutionProvider", *providers]
        elif device == "auto" and "CUDAExecutionProvider" in available:
            providers = ["CUDAExecutionProvider", *providers]
        elif device not in ("auto", "cpu"):
            raise DeviceError(f"--device {device} is not available with --backend onnx", "use --device cpu or auto")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or usable_cpus()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # a damaged or foreign file: ONNX Runtime says what it could not read
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"cannot load ONNX model {path}: {first}", f"re-run `roberta-ft export {path.parent} --overwrite`"
            ) from None
        self.path, self.precision, self.pad_id = path, precision, pad_id
        self.inputs = [item.name for item in self.session.get_inputs()]
        self.version = ort.__version__
        self.provider = self.session.get_providers()[0]
        self.threads = options.intra_op_num_threads

    @property
    def uses_token_types(self) -> bool:
        return "token_type_ids" in self.inputs

    def logits(self, encoded: Encoded, batch_size: int) -> np.ndarray:
        outputs, order = [], []
        for indices in sorted_batches(encoded.lengths, batch_size):
            batch = collate(
                encoded.input_ids, indices, self.pad_id, token_type_ids=encoded.token_type_ids, pad_to_multiple_of=1
            )
            if self.uses_token_types and "token_type_ids" not in batch:
                batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
            feed = {name: batch[name] for name in self.inputs}
            outputs.append(self.session.run(["logits"], feed)[0].astype(np.float32, copy=False))
            order.append(indices)
        if not outputs:
            return np.zeros((0, self.session.get_outputs()[0].shape[-1] or 1), dtype=np.float32)
        logits = np.empty((len(encoded), outputs[0].shape[-1]), dtype=np.float32)
        logits[np.concatenate(order)] = np.concatenate(outputs)
        return logits

    def describe(self) -> str:
        where = "CUDA" if self.provider.startswith("CUDA") else "CPU"
        return (
            f"Backend onnx: {self.path.name} ({self.precision}), ONNX Runtime {self.version} on the {where}, "
            f"{self.threads} thread(s)"
        )


@dataclass
class ExportRecord:
    """What onnx_export.json says about an export (written by `roberta-ft export`)."""

    values: dict[str, Any]

    @classmethod
    def read(cls, model_dir: Path) -> ExportRecord | None:
        path = model_dir / EXPORT_RECORD
        try:
            return cls(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None
        except (OSError, ValueError):
            return None
