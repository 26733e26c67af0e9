"""The output directory: a Hugging Face model dir plus run_config.json, metrics.json and a model card.

Every file is written atomically (temporary file, fsync, rename), so a crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from roberta_ft.errors import ConfigError, DataError

RUN_CONFIG = "run_config.json"
METRICS = "metrics.json"
WEIGHTS = "model.safetensors"


def umask() -> int:
    """The process's umask (read without changing it where /proc tells it; else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def plain_mode(path: Path | None = None, *, directory: bool = False) -> int:
    """The permissions a plain ``open(path, "w")`` (or ``mkdir``) would leave: an existing file keeps its own,
    a new one gets 0o666 (0o777 for a folder) less the umask. mkstemp and mkdtemp create 0o600/0o700, which a
    service running as another user cannot read, so what they create is given this mode before it is renamed."""
    if path is not None:
        try:
            return path.stat().st_mode & 0o7777
        except OSError:
            pass
    return (0o777 if directory else 0o666) & ~umask()


def atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, plain_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def check_writable(path: str | Path, option: str = "--output", *, directory: bool = False) -> None:
    """Refuse, before any work, an output path that cannot be created: one of its folders is a file, or the
    nearest existing folder is not writable. Named by the `option` and the path as the user gave them."""
    path = Path(path)
    for folder in ([path] if directory else []) + list(path.parents):
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            raise ConfigError(
                f"cannot write {option} {path}: {folder} is a file, not a folder", f"choose another {option}"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(
                f"cannot write {option} {path}: no permission to create files in {folder}", f"choose another {option}"
            )
        return


@contextlib.contextmanager
def writing(path: str | Path, option: str = "--output") -> Iterator[None]:
    """An OSError while creating or writing `path` (its temporary file included) as one ConfigError that names
    the option and the path the user gave, never the temporary file's name."""
    path = Path(path)
    target = Path(os.path.abspath(path))
    try:
        yield
    except OSError as exc:
        # Only an error on the path itself, one of its folders, or its temporary file (atomic_write's
        # ".NAME.*.tmp" beside it): an input file's error is not --output's.
        touched = [Path(os.path.abspath(name)) for name in (exc.filename, exc.filename2) if name]
        if not any(
            name == target
            or name in target.parents
            or (name.parent == target.parent and name.name.startswith(f".{target.name}."))
            for name in touched
        ):
            raise
        raise ConfigError(
            f"cannot write {option} {path}: {exc.strerror or exc}",
            f"check that its folder exists and is writable and has room, or choose another {option}",
        ) from None


def prepare_output_dir(path: str | Path, *, overwrite: bool) -> Path:
    """Refuse to write into a non-empty directory unless asked to."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} exists and is a file", "pass a directory path")
    check_writable(path, directory=True)
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"--output {path} already exists and is not empty",
                "pass --overwrite to replace it, or choose another --output",
            )
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def save_pretrained_files(output: Path, model=None, tokenizer=None) -> None:
    """Save through save_pretrained into a scratch dir, then move each file into place atomically."""
    with tempfile.TemporaryDirectory(prefix=".save-", dir=output) as scratch:
        if tokenizer is not None:
            tokenizer.save_pretrained(scratch)
        if model is not None:
            model.save_pretrained(scratch, safe_serialization=True)
        for item in sorted(Path(scratch).iterdir()):
            with open(item, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(item, plain_mode(output / item.name))  # some writers (safetensors) create files 0o600
            os.replace(item, output / item.name)
    _fsync_dir(output)


def read_run_config(model_dir: str | Path) -> dict[str, Any]:
    """The training settings saved beside a model; empty for models not trained by roberta-ft."""
    path = Path(model_dir) / RUN_CONFIG
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is unreadable: {exc}", "retrain, or delete the file to use the model as is") from None


def check_label_names(id2label: dict, model_dir: str | Path) -> None:
    """A roberta-ft model whose config.json lost its label names would predict LABEL_0, LABEL_1, ..."""
    import re

    from roberta_ft.errors import ModelLoadError

    trained_with = read_run_config(model_dir).get("label_names")
    names = [str(name) for name in (id2label or {}).values()]
    if trained_with and names and all(re.fullmatch(r"LABEL_\d+", name) for name in names):
        raise ModelLoadError(
            f"{model_dir}/config.json has no label names (only {', '.join(names)}), but the model was trained "
            f"with labels {', '.join(map(str, trained_with))}",
            "restore id2label and label2id in its config.json, or retrain the model",
        )


def check_model_dir(model_dir: str | Path, *, weights: bool = True) -> Path:
    """A trained model directory: config.json and (with `weights`) the torch weights are there."""
    path = Path(model_dir)
    if not path.exists():
        raise ConfigError(f"model directory not found: {path}", "pass the --output directory of `roberta-ft train`")
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory", "pass the --output directory of `roberta-ft train`")
    if not (path / "config.json").exists():
        raise ConfigError(f"{path} has no config.json: it is not a model directory", "pass a trained model directory")
    if weights and not any(
        (path / name).exists() for name in (WEIGHTS, "model.safetensors.index.json", "pytorch_model.bin")
    ):
        raise ConfigError(
            f"{path} has no model weights yet (training may have been stopped before the first evaluation)",
            "finish or re-run the training",
        )
    return path
