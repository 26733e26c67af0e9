"""Pick the device and precision (autodetected unless the user says otherwise) and build the Accelerator."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from roberta_ft.errors import DeviceError

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")  # what runs a trained model at eval/predict time (inference.load)
DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast is a real speed-up."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@dataclass(frozen=True)
class Runtime:
    device: str  # "cuda", "mps" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32"
    reason: str

    @property
    def mixed_precision(self) -> str:
        return {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[self.precision]


# On a CPU, bf16 autocast pays for its casts only on wide layers: on a 2-core AVX-512 BF16 host the tiny model
# (hidden size 128) trained 5.4x slower in bf16 than in fp32, while MiniLM (384) predicts 1.95x faster
# (docs/performance.md). `auto` keeps fp32 for models narrower than this.
CPU_BF16_MIN_WIDTH = 256


def resolve_runtime(device: str = "auto", precision: str = "auto", *, width: int | None = None) -> Runtime:
    """The device and precision; `width` (the model's hidden size, where known) lets `auto` keep a narrow model
    in fp32 on a CPU with native bf16."""
    import torch

    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}", f"use one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    has_cuda = torch.cuda.is_available()
    has_mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if device == "cuda" and not has_cuda:
        raise DeviceError("--device cuda was requested but no CUDA GPU is available", "use --device auto or cpu")
    if device == "mps" and not has_mps:
        raise DeviceError("--device mps was requested but Apple MPS is not available", "use --device auto or cpu")
    if device == "auto":
        device = "cuda" if has_cuda else "mps" if has_mps else "cpu"

    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            reason = f"{torch.cuda.get_device_name(0)}: {'native bf16' if precision == 'bf16' else 'no bf16, fp16'}"
        elif device == "cpu" and cpu_supports_bf16() and width is not None and width < CPU_BF16_MIN_WIDTH:
            precision = "fp32"
            reason = f"CPU with native bf16, but a model of hidden size {width} runs faster in fp32"
        elif device == "cpu" and cpu_supports_bf16():
            precision, reason = "bf16", "CPU with native bf16 (AVX-512 BF16/AMX)"
        else:
            precision, reason = "fp32", f"{device} without native bf16"
    else:
        reason = "requested"
        if precision == "fp16" and device == "cpu":
            raise DeviceError("fp16 is not supported on the CPU", "use --precision bf16 or fp32")
        if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError("this GPU has no bf16 support", "use --precision fp16 or fp32")
    return Runtime(device=device, precision=precision, reason=reason)


def make_accelerator(runtime: Runtime, log_with: list[str] | None = None, project_dir: str | None = None):
    """The Accelerator owns device placement, autocast and (under accelerate/torchrun) distribution."""
    from accelerate import Accelerator

    if runtime.device == "cpu":
        from roberta_ft.speed.cpu_threads import fit_threads_to_cpus, keep_freed_memory

        fit_threads_to_cpus()
        keep_freed_memory()
    _forget_other_settings(runtime)
    return Accelerator(
        cpu=runtime.device == "cpu",
        mixed_precision=runtime.mixed_precision,
        log_with=log_with,
        project_dir=project_dir,
    )


def _forget_other_settings(runtime: Runtime) -> None:
    """Let one process run with other settings than its previous run (train in bf16, then eval in fp32).

    Accelerate keeps one device/precision state per process and refuses a second Accelerator with other
    settings. In a single process (no torchrun/accelerate launch) that state is ours alone, and the
    previous run is over, so it is reset; a distributed launch keeps accelerate's rule.
    """
    from accelerate.state import AcceleratorState, PartialState

    shared = AcceleratorState._shared_state
    if not shared or PartialState().num_processes > 1:
        return
    device = shared.get("device")
    same_device = device is not None and (device.type == "cpu") == (runtime.device == "cpu")
    if shared.get("_mixed_precision") != runtime.mixed_precision or not same_device:
        logger.debug("Resetting accelerate's state for %s/%s", runtime.device, runtime.precision)
        AcceleratorState._reset_state()
