"""Training checkpoints: the whole training state, written atomically, found again and resumed exactly.

A checkpoint is a directory ``DIR/checkpoints/step-0000012/`` holding

- ``model.safetensors``: the weights (safetensors, never pickle);
- ``training_state.pt``: optimizer, scheduler, gradient scaler, RNG states and the running loss, as
  tensors and plain data only, so that ``torch.load(weights_only=True)`` reads it back;
- ``checkpoint.json``: where the run stands (step, epoch, batches done in the epoch), the metrics
  history, and the run's identity (its settings and a hash of its data), so that a resumed run can
  refuse a checkpoint made by a different run.

It is written into a hidden temporary directory, fsynced, then renamed into place: a kill at any
moment leaves the previous complete checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roberta_ft import artifacts
from roberta_ft.errors import ConfigError

if TYPE_CHECKING:
    import datasets
    import torch

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
META = "checkpoint.json"
FORMAT = 1
_NAME = re.compile(r"^step-(\d+)$")

# Settings that never change what a run computes: a resumed run may differ in these.
HARMLESS_SETTINGS = frozenset(
    {
        "output",
        "overwrite",
        "resume",
        "save_every",
        "keep_checkpoints",
        "skip_nonfinite",
        "device",
        "trust_remote_code",
        "report_to",  # experiment trackers only watch the run
        "workers",  # how many processes tokenize: the tokens are the same
        # Paths: the data themselves are compared by hash, so a moved file still resumes.
        "data",
        "validation",
        "data_dir",
    }
)


# ---------------------------------------------------------------------------------------------- identity


def data_fingerprint(*tables: datasets.Dataset) -> str:
    """A hash of the rows (text, pair, label) of each table, in order.

    Each column is hashed as the JSON list of its values, built a slice at a time: the same hash as
    ``json.dumps(list(column))`` in constant memory.
    """
    digest = hashlib.sha256()
    for table in tables:
        for column in ("text", "text_pair", "label"):
            if column in table.column_names:
                digest.update(column.encode())
                _json_list(digest, table[column], len(table))
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()


FINGERPRINT_ROWS = 100_000  # values turned into JSON at a time


def _json_list(digest, column, length: int) -> None:
    step = FINGERPRINT_ROWS
    digest.update(b"[")
    for start in range(0, length, step):
        items = json.dumps(list(column[start : start + step]))[1:-1]
        digest.update(((", " if start else "") + items).encode())
    digest.update(b"]")


def run_identity(settings: dict[str, Any], data_sha256: str) -> dict:
    """What a checkpoint must match to be resumed: the resolved settings (less harmless ones) and a hash of the
    data (`data_fingerprint` of the tables read, or of a packed corpus)."""
    kept = {key: value for key, value in sorted(settings.items()) if key not in HARMLESS_SETTINGS}
    # Through JSON, so that tuples and lists compare equal to what a checkpoint file holds.
    return {"settings": json.loads(json.dumps(kept)), "data_sha256": data_sha256}


# ---------------------------------------------------------------------------------------------- finding


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint directory and its checkpoint.json."""

    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def describe(self) -> str:
        return f"{self.path} (step {self.step}, epoch {self.meta['epoch'] + 1}, batch {self.meta['batches_done']})"

    def check_identity(self, identity: dict[str, Any]) -> None:
        """Refuse to resume a checkpoint made with other settings or other data."""
        saved = self.meta.get("identity") or {}
        then, now = saved.get("settings") or {}, identity["settings"]
        changed = [key for key in sorted(set(then) | set(now)) if then.get(key) != now.get(key)]
        if changed:
            shown = "; ".join(f"{_flag(key)} was {then.get(key)!r}, now {now.get(key)!r}" for key in changed[:3]) + (
                f"; and {len(changed) - 3} more" if len(changed) > 3 else ""
            )
            raise ConfigError(
                f"cannot resume: the checkpoint in {self.path.parent} was made with other settings ({shown})",
                "resume with the run's original settings, or pass --overwrite instead of --resume to start over",
            )
        if saved.get("data_sha256") != identity["data_sha256"]:
            raise ConfigError(
                f"cannot resume: the training or validation data differ from those the checkpoint in "
                f"{self.path.parent} was trained on",
                "resume with the same data files, or pass --overwrite instead of --resume to start over",
            )

    def load(self, model, optimizer, scheduler, scaler, device: torch.device) -> dict[str, Any]:
        """Load the weights and the optimizer, scheduler and scaler states; return the rest of the state."""
        import torch
        from safetensors.torch import load_model

        try:
            load_model(model, str(self.path / WEIGHTS), strict=True, device=str(device))
            # weights_only: this file is our own, but a checkpoint directory is still never unpickled freely.
            state = torch.load(self.path / STATE, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(
                f"cannot read checkpoint {self.path}: {_first_line(exc)}",
                f"delete {self.path} to resume from the one before it, or pass --overwrite to start over",
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        return state


def checkpoints_dir(output: str | Path) -> Path:
    return Path(output) / CHECKPOINTS


def list_checkpoints(output: str | Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (temporary and half-deleted ones are hidden)."""
    root = checkpoints_dir(output)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and all((child / name).is_file() for name in (WEIGHTS, STATE, META)):
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest(output: str | Path) -> Checkpoint | None:
    """The newest readable checkpoint in an output directory, or None."""
    for path in reversed(list_checkpoints(output)):
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("Ignoring unreadable checkpoint %s: %s", path, exc)
            continue
        if meta.get("format") != FORMAT:
            raise ConfigError(
                f"checkpoint {path} has format {meta.get('format')!r}; this roberta-ft reads format {FORMAT}",
                "resume with the roberta-ft version that wrote it, or pass --overwrite to start over",
            )
        return Checkpoint(path, meta)
    return None


def check_output_dir(output: str | Path, *, overwrite: bool, resume: bool) -> Checkpoint | None:
    """Check --output against --resume/--overwrite before any work; returns the checkpoint to resume from.

    Nothing is created or deleted here: an --overwrite run clears the directory only once its
    inputs have been checked (prepare_output_dir), so a bad input never costs the previous model.
    """
    path = Path(output)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other", "pass one of them, not both")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} exists and is a file", "pass a directory path")
    if resume:
        if not path.is_dir() or not any(path.iterdir()):
            raise ConfigError(f"--resume: {path} holds no run to resume", "drop --resume to start a new run there")
        found = latest(path)
        if found is None:
            raise ConfigError(
                f"--resume: {path} has no checkpoint (the run stopped before its first one)",
                "pass --overwrite instead of --resume to start over",
            )
        return found
    if not overwrite and path.is_dir() and any(path.iterdir()):
        found = latest(path)
        status = artifacts.read_run_config(path).get("status")
        if found is not None and status != "complete":
            raise ConfigError(
                f"--output {path} holds an unfinished run (last checkpoint at step {found.step})",
                "add --resume to continue it, pass --overwrite to start over, or choose another --output",
            )
        if status in ("training", "interrupted"):
            raise ConfigError(
                f"--output {path} holds an unfinished run that stopped before its first checkpoint",
                "pass --overwrite to start over, or choose another --output",
            )
        raise ConfigError(
            f"--output {path} already exists and is not empty",
            "pass --overwrite to replace it, or choose another --output",
        )
    artifacts.check_writable(path, directory=True)
    return None


def prepare_output_dir(output: str | Path, *, overwrite: bool, resume: Checkpoint | None) -> Path:
    """The output directory, created (or with --overwrite, cleared); a resumed run keeps it as it is."""
    if resume is not None:
        return Path(output)
    return artifacts.prepare_output_dir(output, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- saving


class Checkpointer:
    """Writes checkpoints of a run into DIR/checkpoints and keeps the newest `keep` of them."""

    def __init__(self, output: str | Path, *, keep: int, identity: dict[str, Any], enabled: bool = True) -> None:
        self.root = checkpoints_dir(output)
        self.keep = keep
        self.identity = identity
        self.enabled = enabled  # only the main process writes
        self.last: Path | None = None
        self.last_time = time.monotonic()

    def seconds_since_last(self) -> float:
        return time.monotonic() - self.last_time

    def save(
        self,
        *,
        step: int,
        epoch: int,
        batches_done: int,
        loop_state: dict[str, Any],
        model,
        optimizer,
        scheduler,
        scaler,
        tensors: dict[str, torch.Tensor],
    ) -> Path | None:
        import torch
        from safetensors.torch import save_model

        rng = rng_state()  # first, before anything else could draw a random number
        self.last_time = time.monotonic()
        if not self.enabled:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:07d}"
        scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            save_model(model, str(scratch / WEIGHTS), metadata={"format": "pt"})
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng,
                "tensors": {key: value.detach().cpu() for key, value in tensors.items()},
            }
            torch.save(state, scratch / STATE)
            meta = {
                "format": FORMAT,
                "step": step,
                "epoch": epoch,
                "batches_done": batches_done,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "identity": self.identity,
                "loop": loop_state,
            }
            (scratch / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            for item in (WEIGHTS, STATE, META):
                os.chmod(scratch / item, artifacts.plain_mode())  # safetensors writes its file 0o600
                _fsync_file(scratch / item)
            _fsync_dir(scratch)
            target = self.root / name
            if target.exists():  # only after resuming from an older checkpoint than this one
                _remove(target)
            os.chmod(scratch, artifacts.plain_mode(directory=True))  # mkdtemp's 0o700, as mkdir would make it
            os.rename(scratch, target)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.last = target
        self._prune()
        logger.debug("Checkpoint %s (epoch %d, batch %d)", target, epoch + 1, batches_done)
        return target

    def _prune(self) -> None:
        for path in list_checkpoints(self.root.parent)[: -self.keep]:
            _remove(path)
        for child in self.root.iterdir():  # leftovers of a run killed while writing or deleting
            if child.name.startswith((".tmp-", ".trash-")) and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)


def _remove(path: Path) -> None:
    """Delete a checkpoint: first renamed out of sight, so a kill midway never leaves half of one visible."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    artifacts._fsync_dir(path)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """Every random generator the training draws from, as tensors and plain values (weights_only-loadable)."""
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "mps": torch.mps.get_rng_state() if _has_mps() else None,
    }
    return state


def _has_mps() -> bool:
    import torch

    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss"]))
    saved = state["numpy"]
    np.random.set_state(
        (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("mps") is not None and _has_mps():
        torch.mps.set_rng_state(state["mps"])
