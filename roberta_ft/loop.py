"""The one training loop, on Accelerate. It never branches on a task, a problem kind or a kind of run.

`train` is a stream of optimizer steps: set-up (optimizer, schedule, distribution) and resuming, then
for each epoch (`_Run.epochs_left`) its global batches, one optimizer step per batch (`_Run.step`:
forward and backward over micro-batches, clipping, the non-finite check), the same bookkeeping after
each step (loss records, progress, checkpoints), and an evaluation wherever `_Run.evaluation_due` says
(`_Run.evaluate`: metrics, the best-epoch rule, early stopping). What is optimised and how it is
evaluated is the run's `Objective`: a classifier's loss and validation metrics (`Classification`, the
loss from problems.py, the logits from forward.py), or pretraining's masked-LM loss (masking.py). The
best-epoch rule comes from best_epoch.py; forward-only inference lives in forward.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from roberta_ft.best_epoch import BestEpochRule
from roberta_ft.checkpoint import Checkpoint, Checkpointer, set_rng_state
from roberta_ft.data.batches import bucketed_batches
from roberta_ft.data.tokens import Encoded
from roberta_ft.errors import TrainingError
from roberta_ft.forward import device_batch, predict_logits
from roberta_ft.speed.cpu_dropout import fast_cpu_dropout
from roberta_ft.speed.first_token import first_token_only

logger = logging.getLogger(__name__)

# (logits, targets) -> the mean loss of a micro-batch: the problem's loss (problems.py).
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs of a run's settings (lifecycle.loop_settings builds it: every default stays in config.py)."""

    epochs: int
    batch_size: int  # samples per optimizer step, over all processes and accumulation steps
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    gradient_accumulation: int
    max_grad_norm: float
    seed: int
    eval_batch_size: int
    rule: BestEpochRule
    adam_betas: tuple[float, float]
    adam_epsilon: float
    save_every: int | None  # optimizer steps between checkpoints; None: every save_every_seconds
    save_every_seconds: float | None
    skip_nonfinite: int  # non-finite steps skipped (with a warning) before the run stops
    length_bucketing: bool  # batches of similar-length rows (False: plain shuffled batches)
    max_steps: int | None  # stop after this many optimizer steps (the schedule spans them); None: epochs decide
    eval_every: int | None  # evaluate every N optimizer steps (and at the end) instead of every epoch
    # Checkpoint at every epoch's end (else only by save_every / save_every_seconds): a run of many one-step
    # epochs (few-shot) would write its whole state once a step.
    checkpoint_epochs: bool = True


class Objective(Protocol):
    """What the loop optimises and how it evaluates: the loop itself never looks inside a batch."""

    def loss(self, model: torch.nn.Module, indices: np.ndarray, epoch: int, accelerator, step: int) -> torch.Tensor:
        """The mean loss over the training samples `indices` (a micro-batch), forward pass included;
        `step`: the optimizer steps done before this one (for objectives with a schedule of their own)."""
        ...

    def evaluate(self, model: torch.nn.Module, accelerator) -> dict[str, float]:
        """The validation metrics of `model` (named; the best-epoch rule reads one of them)."""
        ...


@dataclass
class Classification:
    """A classifier's objective: the problem's loss on padded batches, metrics from the validation logits."""

    train_data: Encoded
    validation_data: Encoded
    pad_id: int
    loss_function: LossFunction
    metrics: Callable[[np.ndarray], dict[str, float]]
    eval_batch_size: int

    def __post_init__(self) -> None:
        self.targets = torch.from_numpy(self.train_data.targets)

    def loss(self, model, indices, epoch, accelerator, step) -> torch.Tensor:
        batch = device_batch(self.train_data, indices, self.pad_id, accelerator)
        batch_targets = self.targets[indices].to(accelerator.device, non_blocking=True)
        with accelerator.autocast():
            logits = model(**batch).logits
        return self.loss_function(logits, batch_targets)

    def evaluate(self, model, accelerator) -> dict[str, float]:
        logits = predict_logits(
            model, self.validation_data, self.eval_batch_size, accelerator=accelerator, pad_id=self.pad_id
        )
        return self.metrics(logits)


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
        self.unit = "samples/s"  # what the speed counts (pretraining shows tokens/s)

    def start(self, total_steps: int, epochs: int) -> None:
        self.total = total_steps
        self.last = time.monotonic()

    def step(self, step, epoch, loss, learning_rate, samples_per_second) -> None:
        if time.monotonic() - self.last >= self.every_seconds:
            self.last = time.monotonic()
            logger.info(
                "step %d/%d epoch %.2f loss %.4f lr %.2e %.1f %s",
                step,
                self.total,
                epoch,
                loss,
                learning_rate,
                samples_per_second,
                self.unit,
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
    # {"step", "epoch", "loss", "learning_rate"} whenever the loss is read: the mean loss since the last record.
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def train_samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0


@dataclass
class LoopState:
    """Where a run stands: everything besides tensors that a checkpoint must carry to resume it exactly."""

    step: int = 0  # optimizer steps done (skipped non-finite steps included)
    epoch: int = 0  # the epoch in progress (0-based)
    batches_done: int = 0  # global batches of that epoch done
    running_count: int = 0  # samples in the epoch's running loss
    micro_batch: int = 1  # samples per forward pass on one process (halved on out-of-memory)
    epochs_without_improvement: int = 0  # evaluations, with --eval-every
    skipped_nonfinite: int = 0
    last_evaluated_step: int = -1
    counted_batches: int = 0  # global batches of the epoch counted in history.train_samples
    # The epoch's loss sum and sample count at the last History.steps record.
    logged_loss: float = 0.0
    logged_count: int = 0
    history: History = field(default_factory=History)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LoopState:
        return cls(**{**values, "history": History(**values["history"])})


# torch.OutOfMemoryError is torch >= 2.5; torch.cuda.OutOfMemoryError is the same class.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def train(
    model: torch.nn.Module,
    train_data: Encoded,
    settings: LoopSettings,
    *,
    objective: Objective,
    accelerator,
    on_best: Callable[[torch.nn.Module, dict[str, Any]], None],
    progress: Progress | None = None,
    checkpoints: Checkpointer | None = None,
    resume: Checkpoint | None = None,
    train_lines: Sequence[int] | None = None,
) -> History:
    """Train `model` on `objective`; evaluate when due; call `on_best` whenever the rule's metric improves.

    The loop is a stream of optimizer steps: one per global batch of `settings.batch_size` training
    samples (`train_data` need only have a length and `lengths`, for batching), each followed by the same
    bookkeeping, and an evaluation wherever `_Run.evaluation_due` says (the end of an epoch is one case).
    With `checkpoints`, the whole training state is saved every `settings.save_every` steps (else every
    `settings.save_every_seconds`), after every evaluation and every epoch (unless `settings.checkpoint_epochs`
    is off); `resume` continues from such
    a checkpoint exactly where it was taken. `train_lines` (the file line of each training sample) make
    error messages point at the data.
    """
    progress = progress or LogProgress()
    # --- set-up: optimizer, learning-rate schedule, distribution ---------------------------------
    run = _Run.start(model, train_data, settings, accelerator, objective, checkpoints)
    # --- resuming: weights, optimizer, schedule, counters and random state of a checkpoint ----------
    rng = run.restore(resume) if resume is not None else None
    progress.start(run.total_steps, run.epochs)
    try:
        with _speed_levers(run.bare_model, accelerator.device):
            if rng is not None:
                # Last, so the random numbers drawn from here on are those the interrupted run would have drawn.
                set_rng_state(rng)
            for batches in run.epochs_left():
                for global_batch in batches[run.state.batches_done :]:
                    # --- one optimizer step, then its bookkeeping: the loss curve and progress ------------
                    run.step(global_batch, len(batches), train_lines)
                    run.report(progress, len(batches))
                    # --- an evaluation when due (the best model, early stopping), else maybe a checkpoint --
                    end_of_epoch = run.state.batches_done == len(batches)
                    if run.evaluation_due(end_of_epoch):
                        run.evaluate(batches, end_of_epoch, on_best, progress)
                        if not end_of_epoch:  # the epoch's end is checkpointed once the next epoch is set up
                            run.save_checkpoint()
                    elif not end_of_epoch and run.checkpoint_due():
                        run.save_checkpoint()
                    if run.stopping:
                        break
    finally:
        progress.stop()
    return run.state.history


@contextlib.contextmanager
def _speed_levers(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    with contextlib.ExitStack() as levers:
        # The classifier reads only the first token: the last layer computes nothing else (speed/first_token.py).
        levers.enter_context(first_token_only(model))
        if device.type == "cpu":  # torch's CPU dropout draws numbers serially (speed/cpu_dropout.py)
            levers.enter_context(fast_cpu_dropout(model))
        yield


@dataclass
class _Run:
    """The objects of one training run and the operations of its phases."""

    model: torch.nn.Module  # as prepared by accelerate (a DDP wrapper under data parallelism)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    accelerator: Any
    train_data: Encoded
    objective: Objective
    settings: LoopSettings
    checkpoints: Checkpointer | None
    total_steps: int
    epochs: int  # epochs the loop may start: settings.epochs, or as many as max_steps needs
    state: LoopState
    running_loss: torch.Tensor  # the epoch's summed loss, on the device
    best_value: float = math.nan  # the rule's metric at the best evaluation so far (its worst before any)
    clock: float = 0.0  # when training time was last counted (time.perf_counter)
    shown_loss: float = math.nan  # the epoch's mean loss as last read, for progress

    @classmethod
    def start(cls, model, train_data: Encoded, settings: LoopSettings, accelerator, objective, checkpoints) -> _Run:
        processes = accelerator.num_processes
        steps_per_epoch = math.ceil(len(train_data) / settings.batch_size)
        total_steps = planned_steps(len(train_data), settings.batch_size, settings.epochs, settings.max_steps)
        epochs = settings.epochs
        if settings.max_steps is not None:  # the steps decide: as many epochs as they need
            epochs = math.ceil(settings.max_steps / max(1, steps_per_epoch))
        optimizer = _optimizer(model, settings, accelerator.device)
        scheduler = _linear_warmup_decay(optimizer, round(settings.warmup_ratio * total_steps), total_steps)
        # The scheduler is stepped by hand: the loop already counts optimizer steps across processes.
        model, optimizer = accelerator.prepare(model, optimizer)
        return cls(
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            accelerator=accelerator,
            train_data=train_data,
            objective=objective,
            settings=settings,
            checkpoints=checkpoints,
            total_steps=total_steps,
            epochs=epochs,
            state=LoopState(micro_batch=settings.batch_size // (settings.gradient_accumulation * processes)),
            running_loss=torch.zeros((), device=accelerator.device),
            best_value=settings.rule.worst,
        )

    @property
    def finished(self) -> bool:
        """--max-steps reached."""
        return self.settings.max_steps is not None and self.state.step >= self.settings.max_steps

    @property
    def stopping(self) -> bool:
        """Early stopping decided, or --max-steps reached."""
        return self.state.history.stopped_early or self.finished

    def evaluation_due(self, end_of_epoch: bool) -> bool:
        """The one place that decides when the run evaluates: at the end of each epoch, or with --eval-every
        every N steps (and at the end of the last epoch); always when --max-steps ends the run."""
        state, every = self.state, self.settings.eval_every
        if every is None:
            return end_of_epoch or self.finished
        if state.last_evaluated_step == state.step:
            return False
        return state.step % every == 0 or self.finished or (end_of_epoch and state.epoch + 1 >= self.epochs)

    def epochs_left(self) -> Iterator[list[np.ndarray]]:
        """Each epoch's global batches, from the one in progress; after an epoch's last batch, the next epoch
        is set up and checkpointed."""
        state, history = self.state, self.state.history
        while state.epoch < self.epochs and not self.stopping:
            self.model.train()
            batches = self.epoch_batches(state.epoch)
            self.shown_loss = math.nan
            self._restart_clock()
            yield batches
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self._tick()
            if state.batches_done < len(batches):  # stopped within the epoch (and evaluated there)
                return
            history.train_samples += self.samples_of(batches)
            self.next_epoch()
            if self.settings.checkpoint_epochs or self.checkpoint_due():
                self.save_checkpoint()

    def report(self, progress: Progress, batches: int) -> None:
        """After a step: the loss curve (when the loss is read) and progress."""
        state, history = self.state, self.state.history
        read = self.record_loss(batches)
        self.shown_loss = self.shown_loss if read is None else read
        done = history.train_samples + state.running_count * self.processes
        progress.step(
            state.step,
            state.epoch + state.batches_done / batches,
            self.shown_loss,
            self.scheduler.get_last_lr()[0],
            done / history.train_seconds if history.train_seconds else 0.0,
        )

    def evaluate(self, batches: list[np.ndarray], end_of_epoch: bool, on_best, progress: Progress) -> None:
        """An evaluation: the record, the best-epoch rule (`on_best` when it improves), early stopping."""
        state, history, rule = self.state, self.state.history, self.settings.rule
        history.train_samples += self.samples_of(batches)
        if end_of_epoch:  # the end of epoch 2 is 2 (2.0 with --eval-every); 1.5 is half-way through epoch 2
            epoch = state.epoch + 1 if self.settings.eval_every is None else float(state.epoch + 1)
        else:
            epoch = round(state.epoch + state.batches_done / len(batches), 3)
        record = self.evaluation_record(epoch)
        value = record[rule.metric]
        improved = rule.improves(value, self.best_value)
        if improved or history.best is None:
            self.best_value = value
            history.best = dict(record)
            state.epochs_without_improvement = 0
            on_best(self.bare_model, record)
        else:
            state.epochs_without_improvement += 1
        progress.epoch_end(record["epoch"], record, improved)
        if rule.should_stop(state.epochs_without_improvement):
            logger.info(
                "Early stopping: %s has not improved for %d %s",
                rule.metric,
                state.epochs_without_improvement,
                "evaluation(s)" if self.settings.eval_every else "epoch(s)",
            )
            history.stopped_early = True
        self.model.train()
        self._restart_clock()  # evaluating is not training time

    def _restart_clock(self) -> None:
        self.clock = time.perf_counter()

    def _tick(self) -> None:
        """Count the time since the clock last (re)started as training time."""
        now = time.perf_counter()
        self.state.history.train_seconds += now - self.clock
        self.clock = now

    def samples_of(self, batches: list[np.ndarray]) -> int:
        """Samples in the epoch's global batches done since they were last counted (each counted once)."""
        state = self.state
        counted = sum(len(batch) for batch in batches[state.counted_batches : state.batches_done])
        state.counted_batches = state.batches_done
        return counted

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def bare_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def restore(self, resume: Checkpoint) -> dict[str, Any]:
        """Load a checkpoint's tensors and counters; returns its random state, to be set last."""
        saved = resume.load(self.bare_model, self.optimizer, self.scheduler, self.accelerator.scaler, self.device)
        self.state = LoopState.from_dict(resume.meta["loop"])
        self.running_loss = saved["tensors"]["running_loss"].to(self.device)
        self.best_value = self.settings.rule.best_value(self.state.history.best)
        logger.info("Resuming from checkpoint %s", resume.describe())
        if self.state.epoch >= self.settings.epochs or self.state.history.stopped_early:
            logger.info("The run was already complete: nothing left to train")
        return saved["rng"]

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches, bucketed by length: a function of (seed, epoch) only, so a resumed
        run skips the batches already done and sees the same ones after them."""
        pools = 64 if self.settings.length_bucketing else 1  # 1: each batch sorted only within itself
        return bucketed_batches(
            self.train_data.lengths,
            self.settings.batch_size,
            seed=self.settings.seed,
            epoch=epoch,
            bucket_batches=pools,
        )

    def step(self, global_batch: np.ndarray, batches: int, train_lines: Sequence[int] | None) -> None:
        """One optimizer step over one global batch; a non-finite loss or gradient skips it (or stops the run)."""
        state, settings = self.state, self.settings
        step_loss, samples = _accumulate_gradients_or_shrink(self, global_batch)
        grad_norm = None
        if settings.max_grad_norm > 0:
            grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
        scaler = self.accelerator.scaler
        fault = _nonfinite(step_loss, grad_norm if scaler is None else None, self.accelerator)
        if fault is None:
            self.optimizer.step()
            if not self.accelerator.optimizer_step_was_skipped:
                self.scheduler.step()
            self.running_loss += step_loss
            state.running_count += samples
        else:
            state.skipped_nonfinite += 1
            where = _describe_step(state, batches, global_batch, train_lines, self.scheduler)
            if state.skipped_nonfinite > settings.skip_nonfinite:
                raise TrainingError(
                    f"the training {fault} at {where}",
                    _nonfinite_hint(self.checkpoints, settings.skip_nonfinite, state.history.best is not None),
                )
            logger.warning(
                "The training %s at %s: skipping this step (%d of --skip-nonfinite %d)",
                fault,
                where,
                state.skipped_nonfinite,
                settings.skip_nonfinite,
            )
            if scaler is not None:
                _close_scaler_step(scaler, self.optimizer)
            with warnings.catch_warnings():  # torch warns when the very first step is skipped
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                self.scheduler.step()  # the batch is spent: keep the schedule in step with the data
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.batches_done += 1
        self._tick()

    def record_loss(self, batches: int) -> float | None:
        """The epoch's mean loss so far, None when not read this step; adds a point to the loss curve when read."""
        state = self.state
        if not _should_read(state.step):
            return None
        loss_total = float(self.running_loss)
        if state.running_count > state.logged_count:
            state.history.steps.append(
                {
                    "step": state.step,
                    "epoch": state.epoch + state.batches_done / batches,
                    "loss": (loss_total - state.logged_loss) / (state.running_count - state.logged_count),
                    "learning_rate": self.scheduler.get_last_lr()[0],
                }
            )
            state.logged_loss, state.logged_count = loss_total, state.running_count
        return loss_total / max(1, state.running_count)

    def checkpoint_due(self) -> bool:
        if self.checkpoints is None:
            return False
        if self.settings.save_every is not None:
            return self.state.step % self.settings.save_every == 0
        seconds = self.settings.save_every_seconds
        return seconds is not None and self.checkpoints.seconds_since_last() >= seconds

    def save_checkpoint(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.save(
                step=self.state.step,
                epoch=self.state.epoch,
                batches_done=self.state.batches_done,
                loop_state=self.state.to_dict(),
                model=self.bare_model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.accelerator.scaler,
                tensors={"running_loss": self.running_loss},
            )
            self._restart_clock()  # time spent saving is not training time

    def evaluation_record(self, epoch: float) -> dict:
        """An evaluation's record: the epoch's training loss so far (mean over every process's samples) and the
        objective's validation metrics; `epoch` is the epoch number (the end of epoch 2 is 2; 1.5 is half-way
        through 2)."""
        state = self.state
        state.last_evaluated_step = state.step
        epoch_loss = self.accelerator.reduce(self.running_loss, reduction="sum").item() / max(
            1, state.running_count * self.processes
        )
        metrics = self.objective.evaluate(self.model, self.accelerator)
        record = {"epoch": epoch, "step": state.step, "train_loss": epoch_loss, **metrics}
        state.history.epochs.append(record)
        return record

    def next_epoch(self) -> None:
        state = self.state
        state.counted_batches = 0
        state.epoch, state.batches_done, state.running_count = state.epoch + 1, 0, 0
        state.logged_loss, state.logged_count = 0.0, 0
        self.running_loss.zero_()


def planned_steps(samples: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """The optimizer steps a run will take: --max-steps when given, else the epochs' batches."""
    return max_steps if max_steps is not None else math.ceil(samples / batch_size) * epochs


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


def shard(batches: list[np.ndarray], process_index: int, num_processes: int) -> list[np.ndarray]:
    """Split every global batch into `num_processes` disjoint parts: each sample goes to exactly one process."""
    if num_processes == 1:
        return batches
    return [np.array_split(batch, num_processes)[process_index] for batch in batches]


def _accumulate_gradients_or_shrink(run: _Run, global_batch) -> tuple[torch.Tensor, int]:
    """Forward and backward one global batch; on out-of-memory, halve the micro-batch and redo it.

    Halving the micro-batch doubles the accumulation steps, so the optimizer step is over the same
    samples, weighted the same: only the memory use changes.
    """
    state, accelerator = run.state, run.accelerator
    while True:
        try:
            return _accumulate_gradients(run, global_batch, state.micro_batch)
        except OutOfMemoryError:
            if state.micro_batch == 1:
                raise TrainingError(
                    f"out of {accelerator.device.type.upper()} memory at step {state.step + 1} even with one sample "
                    "per forward pass",
                    "lower --max-length, use --precision bf16 or fp16, or pick a smaller --model",
                ) from None
            smaller = state.micro_batch // 2
        # Outside the except block, so the failed attempt's tensors are freed before retrying.
        run.optimizer.zero_grad(set_to_none=True)
        if accelerator.device.type == "cuda":
            torch.cuda.empty_cache()
        local = math.ceil(len(global_batch) / accelerator.num_processes)
        logger.warning(
            "Out of memory at step %d with %d samples per forward pass: retrying with %d x %d accumulation steps "
            "(the same --batch-size %d)",
            state.step + 1,
            state.micro_batch,
            smaller,
            math.ceil(local / smaller),
            run.settings.batch_size,
        )
        state.micro_batch = smaller


def _accumulate_gradients(run: _Run, global_batch, micro_batch: int) -> tuple[torch.Tensor, int]:
    """Accumulate one global batch's gradients over micro-batches; returns the summed loss and the sample count."""
    accelerator = run.accelerator
    processes = accelerator.num_processes
    local = shard([global_batch], accelerator.process_index, processes)[0]
    micro_batches = [local[i : i + micro_batch] for i in range(0, len(local), micro_batch)] or [local]
    loss_sum = torch.zeros((), device=accelerator.device)
    for k, indices in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        # Gradients are all-reduced once per optimizer step, not per micro-batch.
        context = accelerator.no_sync(run.model) if not last else contextlib.nullcontext()
        with context:
            loss = run.objective.loss(run.model, indices, run.state.epoch, accelerator, run.state.step)
            # Weight each micro-batch by its share of the global batch, so the step is a mean over samples.
            accelerator.backward(loss * (len(indices) * processes / len(global_batch)))
        loss_sum += loss.detach() * len(indices)
    return loss_sum, len(local)


def _nonfinite(loss_sum: torch.Tensor, grad_norm: torch.Tensor | None, accelerator) -> str | None:
    """What went non-finite in this step, if anything (one device sync per optimizer step)."""
    values = torch.stack(
        [loss_sum.float(), torch.zeros_like(loss_sum.float()) if grad_norm is None else grad_norm.float()]
    )
    finite = torch.isfinite(values).to(torch.float32)
    if accelerator.num_processes > 1:
        finite = accelerator.reduce(finite, reduction="mean")  # all processes agree to skip or stop
    finite = finite.tolist()
    if finite[0] < 1:
        return f"loss became {float(loss_sum):g}"
    if finite[1] < 1:
        return f"gradient norm became {float(grad_norm):g}"
    return None


def _close_scaler_step(scaler, optimizer) -> None:
    """End a skipped step for the fp16 gradient scaler, as its own skipped step would (else its next unscale_ fails)."""
    try:
        scaler.unscale_(getattr(optimizer, "optimizer", optimizer))
    except RuntimeError:
        pass  # already unscaled, by the gradient clipping
    scaler.update()


def _describe_step(state: LoopState, batches: int, global_batch, train_lines, scheduler) -> str:
    where = f"step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batches_done + 1} of {batches}"
    if train_lines is not None:
        lines = sorted(int(train_lines[i]) for i in global_batch)
        shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
        where += f", rows at lines {shown}"
    return where + f"; learning rate {scheduler.get_last_lr()[0]:.2e})"


def _nonfinite_hint(checkpoints: Checkpointer | None, allowed: int, has_best: bool) -> str:
    kept = []
    if checkpoints is not None and checkpoints.last is not None:
        kept.append(f"the last good checkpoint is {checkpoints.last}")
    if has_best:
        kept.append("the best model so far is kept")
    skip = f"--skip-nonfinite {max(1, allowed * 2)}"
    if checkpoints is not None and checkpoints.last is not None:
        advice = (
            "lower --learning-rate, use --precision fp32 or check those rows and start over with --overwrite, "
            f"or continue with --resume {skip} to skip such steps"
        )
    else:
        advice = f"lower --learning-rate, use --precision fp32 or check those rows, or pass {skip} to skip such steps"
    return "; ".join([*kept, advice])


def _should_read(step: int) -> bool:
    # Reading the loss forces a device sync; on a GPU do it every few steps only.
    return step % 10 == 1 or not torch.cuda.is_available()
