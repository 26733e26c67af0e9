"""The one train / evaluate / predict loop, on Accelerate. It never branches on a task's name."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from roberta_ft.data import Encoded, bucketed_batches, collate, sorted_batches
from roberta_ft.errors import TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int  # samples per optimizer step, over all processes and accumulation steps
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    gradient_accumulation: int
    max_grad_norm: float
    seed: int
    eval_batch_size: int
    early_stopping_patience: int | None
    primary_metric: str
    greater_is_better: bool = True
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_epsilon: float = 1e-6
    regression: bool = False


class Progress(Protocol):
    def start(self, total_steps: int, epochs: int) -> None: ...
    def step(self, step: int, epoch: float, loss: float, learning_rate: float, samples_per_second: float) -> None: ...
    def epoch_end(self, epoch: int, metrics: dict[str, float], best: bool) -> None: ...
    def stop(self) -> None: ...


class LogProgress:
    """Progress through `logging` (for --quiet, scripts and tests)."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        self.every_seconds = every_seconds
        self.last = 0.0
        self.total = 0

    def start(self, total_steps: int, epochs: int) -> None:
        self.total = total_steps
        self.last = time.monotonic()

    def step(self, step, epoch, loss, learning_rate, samples_per_second) -> None:
        if time.monotonic() - self.last >= self.every_seconds:
            self.last = time.monotonic()
            logger.info(
                "step %d/%d epoch %.2f loss %.4f lr %.2e %.1f samples/s",
                step,
                self.total,
                epoch,
                loss,
                learning_rate,
                samples_per_second,
            )

    def epoch_end(self, epoch, metrics, best) -> None:
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        logger.info("epoch %d: %s%s", epoch, shown, " (best)" if best else "")

    def stop(self) -> None:
        pass


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    train_seconds: float = 0.0
    train_samples: int = 0
    stopped_early: bool = False

    @property
    def train_samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0


def _optimizer(model: torch.nn.Module, settings: LoopSettings, device: torch.device) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights (as in BERT/RoBERTa fine-tuning).
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass; it exists for CPU and CUDA in current torch.
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        groups, lr=settings.learning_rate, betas=settings.adam_betas, eps=settings.adam_epsilon, fused=fused
    )


def _linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value).to(device, non_blocking=True) for key, value in batch.items()}


def compute_loss(logits: torch.Tensor, targets: torch.Tensor, regression: bool, class_weights=None) -> torch.Tensor:
    logits = logits.float()
    if regression:
        return torch.nn.functional.mse_loss(logits.squeeze(-1), targets.float())
    return torch.nn.functional.cross_entropy(logits, targets, weight=class_weights)


def shard(batches: list[np.ndarray], process_index: int, num_processes: int) -> list[np.ndarray]:
    """Split every global batch into `num_processes` disjoint parts: each sample goes to exactly one process."""
    if num_processes == 1:
        return batches
    return [np.array_split(batch, num_processes)[process_index] for batch in batches]


def train(
    model: torch.nn.Module,
    train_data: Encoded,
    validation_data: Encoded,
    settings: LoopSettings,
    *,
    accelerator,
    pad_id: int,
    metrics: Callable[[np.ndarray], dict[str, float]],
    on_best: Callable[[torch.nn.Module, dict[str, Any]], None],
    progress: Progress | None = None,
) -> History:
    """Fine-tune `model`; evaluate each epoch; call `on_best` whenever the primary metric improves.

    `metrics(logits)` turns validation logits (in the validation data's order) into named metrics.
    """
    progress = progress or LogProgress()
    processes = accelerator.num_processes
    micro_batch = settings.batch_size // (settings.gradient_accumulation * processes)
    lengths = train_data.lengths
    steps_per_epoch = math.ceil(len(train_data) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    warmup_steps = round(settings.warmup_ratio * total_steps)

    optimizer = _optimizer(model, settings, accelerator.device)
    scheduler = _linear_warmup_decay(optimizer, warmup_steps, total_steps)
    # The scheduler is stepped by hand: the loop already counts optimizer steps across processes.
    model, optimizer = accelerator.prepare(model, optimizer)
    targets = torch.from_numpy(train_data.targets)

    history = History()
    best_value = -math.inf if settings.greater_is_better else math.inf
    epochs_without_improvement = 0
    step = 0
    progress.start(total_steps, settings.epochs)
    try:
        for epoch in range(settings.epochs):
            model.train()
            # Global batches of `batch_size` samples, bucketed by length, then split into micro-batches.
            global_batches = bucketed_batches(lengths, settings.batch_size, seed=settings.seed, epoch=epoch)
            epoch_start = time.perf_counter()
            running_loss = torch.zeros((), device=accelerator.device)
            running_count = 0
            shown_loss = math.nan
            for global_batch in global_batches:
                local = shard([global_batch], accelerator.process_index, processes)[0]
                micro_batches = [local[i : i + micro_batch] for i in range(0, len(local), micro_batch)] or [local]
                for k, indices in enumerate(micro_batches):
                    batch = _to_device(
                        collate(train_data.input_ids, indices, pad_id, token_type_ids=train_data.token_type_ids),
                        accelerator.device,
                    )
                    batch_targets = targets[indices].to(accelerator.device, non_blocking=True)
                    last = k == len(micro_batches) - 1
                    # Gradients are all-reduced once per optimizer step, not per micro-batch.
                    context = accelerator.no_sync(model) if not last else contextlib.nullcontext()
                    with context:
                        with accelerator.autocast():
                            logits = model(**batch).logits
                        loss = compute_loss(logits, batch_targets, settings.regression)
                        # Weight each micro-batch by its share of the global batch, so the step is a mean over samples.
                        accelerator.backward(loss * (len(indices) * processes / len(global_batch)))
                    running_loss += loss.detach() * len(indices)
                    running_count += len(indices)
                if settings.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
                if not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                elapsed = history.train_seconds + time.perf_counter() - epoch_start
                done = history.train_samples + running_count * processes
                if _should_read(step):
                    shown_loss = float(running_loss) / max(1, running_count)
                progress.step(
                    step,
                    epoch + (step - epoch * steps_per_epoch) / steps_per_epoch,
                    shown_loss,
                    scheduler.get_last_lr()[0],
                    done / elapsed if elapsed else 0.0,
                )
            if accelerator.device.type == "cuda":
                torch.cuda.synchronize()
            history.train_seconds += time.perf_counter() - epoch_start
            history.train_samples += len(train_data)
            epoch_loss = accelerator.reduce(running_loss, reduction="sum").item() / max(1, running_count * processes)
            if not math.isfinite(epoch_loss):
                raise TrainingError(
                    f"the training loss became {epoch_loss} in epoch {epoch + 1}",
                    "lower --learning-rate, use --precision fp32, or check the data",
                )

            logits = predict_logits(
                model, validation_data, settings.eval_batch_size, accelerator=accelerator, pad_id=pad_id
            )
            scores = metrics(logits)
            record = {"epoch": epoch + 1, "step": step, "train_loss": epoch_loss, **scores}
            history.epochs.append(record)
            value = scores[settings.primary_metric]
            improved = value > best_value if settings.greater_is_better else value < best_value
            if improved or history.best is None:
                best_value = value
                history.best = dict(record)
                epochs_without_improvement = 0
                on_best(accelerator.unwrap_model(model), record)
            else:
                epochs_without_improvement += 1
            progress.epoch_end(epoch + 1, record, improved)
            if (
                settings.early_stopping_patience is not None
                and epochs_without_improvement >= settings.early_stopping_patience
            ):
                logger.info(
                    "Early stopping: %s has not improved for %d epoch(s)",
                    settings.primary_metric,
                    epochs_without_improvement,
                )
                history.stopped_early = True
                break
    finally:
        progress.stop()
    return history


def _should_read(step: int) -> bool:
    # Reading the loss forces a device sync; on a GPU do it every few steps only.
    return step % 10 == 1 or not torch.cuda.is_available()


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, data: Encoded, batch_size: int, *, accelerator, pad_id: int) -> np.ndarray:
    """Logits for every row of `data`, in its original order (float32 numpy)."""
    model.eval()
    if len(data) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    batches = shard(sorted_batches(data.lengths, batch_size), 0, 1)
    process, processes = accelerator.process_index, accelerator.num_processes
    mine = batches[process::processes]
    outputs = []
    order = []
    for indices in mine:
        batch = _to_device(
            collate(data.input_ids, indices, pad_id, token_type_ids=data.token_type_ids), accelerator.device
        )
        with accelerator.autocast():
            logits = model(**batch).logits
        outputs.append(logits.float())
        order.append(torch.from_numpy(indices))
    local_logits = (
        torch.cat(outputs) if outputs else torch.zeros((0, model.config.num_labels), device=accelerator.device)
    )
    local_order = torch.cat(order) if order else torch.zeros((0,), dtype=torch.long)
    if processes > 1:
        local_logits = accelerator.gather_for_metrics(local_logits, use_gather_object=True)
        local_order = accelerator.gather_for_metrics(local_order.to(accelerator.device), use_gather_object=True)
    logits = np.empty((len(data), local_logits.shape[-1]), dtype=np.float32)
    logits[local_order.cpu().numpy()] = local_logits.cpu().numpy()
    return logits
