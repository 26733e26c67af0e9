"""What `roberta-ft tune` searches: the named spaces (roberta-paper, wide) and TOML space files.

A space is plain data (no Optuna here), so a bad space file is refused before anything is installed
or started. A space file names TrainConfig settings, one table each::

    grid = true                # optional: try every combination of the choices below, in a random order

    [learning_rate]            # a range: low and high (log = true: log-uniform; step: a grid of values)
    low = 1e-5
    high = 1e-3
    log = true

    [batch_size]               # or choices
    choices = [16, 32]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from roberta_ft.config import TUNE_SPACES, TrainConfig, _closest_key
from roberta_ft.errors import ConfigError

# The RoBERTa paper's GLUE grid (Liu et al. 2019, appendix): learning rate x batch size, 5 seeds each.
ROBERTA_PAPER = {"learning_rate": (1e-5, 2e-5, 3e-5), "batch_size": (16, 32), "seed": (1, 2, 3, 4, 5)}
# Settings a space may not search: they change what a trial is measured on, or they do not change what
# a run computes at all (checkpoint.HARMLESS_SETTINGS), or they belong to the search itself.
_MEASURED_ON = ("task", "metric", "metric_for_best", "multi_label", "validation_split", "split_seed")
_ENTRY_KEYS = ("low", "high", "log", "step", "choices")


@dataclass(frozen=True)
class Parameter:
    """One searched setting: a range (low, high, log or step) or a list of choices."""

    name: str
    kind: str  # int | float | bool | str: the TrainConfig field's type
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {{{', '.join(map(_shown, self.choices))}}}"
        scale = ", log" if self.log else f", step {_shown(self.step)}" if self.step else ""
        return f"{self.name} {self.kind} in [{_shown(self.low)}, {_shown(self.high)}{scale}]"

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, **({"step": self.step} if self.step else {})}


@dataclass(frozen=True)
class SearchSpace:
    name: str  # roberta-paper, wide, or the file's path
    parameters: tuple[Parameter, ...]
    grid: bool = False  # every combination of the choices (Optuna's GridSampler)

    @property
    def names(self) -> list[str]:
        return [parameter.name for parameter in self.parameters]

    @property
    def grid_size(self) -> int | None:
        return math.prod(len(p.choices or ()) for p in self.parameters) if self.grid else None

    def without(self, names) -> SearchSpace:
        """The space less the settings in `names` (settings the user fixed)."""
        kept = tuple(p for p in self.parameters if p.name not in set(names))
        return SearchSpace(self.name, kept, self.grid)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "grid": self.grid, "parameters": {p.name: p.to_dict() for p in self.parameters}}


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _field_kinds() -> dict[str, str]:
    """TrainConfig setting -> int | float | bool | str | tuple, from its annotation ("int | None", ...)."""
    kinds = {}
    for f in fields(TrainConfig):
        first = str(f.type).split("|")[0].split("[")[0].strip()
        kinds[f.name] = first
    return kinds


def searchable(name: str, source: str) -> str:
    """The kind of setting `name` if a space may search it; else one line naming the problem and the fix."""
    from roberta_ft.checkpoint import HARMLESS_SETTINGS

    kinds = _field_kinds()
    if name not in kinds:
        known = [key for key in kinds if key not in HARMLESS_SETTINGS and key not in _MEASURED_ON]
        raise ConfigError(
            f"unknown setting {name!r} in {source}",
            f"{_closest_key(name, known)}a space names train settings such as {', '.join(known[:8])}, ...",
        )
    if name in HARMLESS_SETTINGS:
        raise ConfigError(f"{source}: {name!r} does not change what a trial computes", "it cannot be searched")
    if name in _MEASURED_ON:
        raise ConfigError(
            f"{source}: {name!r} decides what trials are measured on, so their scores would not compare",
            "fix it with a flag instead of searching it",
        )
    if kinds[name] == "tuple":
        raise ConfigError(f"{source}: {name!r} is a list of values and cannot be searched", "fix it with a flag")
    return kinds[name]


def load_space(spec: str, base: TrainConfig) -> SearchSpace:
    """The space `--space` names: roberta-paper, wide (around `base`, a resolved TrainConfig), or a TOML file."""
    if spec == "roberta-paper":
        return SearchSpace(spec, tuple(_choices(name, values) for name, values in ROBERTA_PAPER.items()), grid=True)
    if spec == "wide":
        return wide(base)
    if not str(spec).lower().endswith(".toml"):
        raise ConfigError(
            f"--space {spec!r} is neither a named space nor a .toml file", f"use {', '.join(TUNE_SPACES)}"
        )
    return read_space_file(spec)


def wide(base: TrainConfig) -> SearchSpace:
    """Around the settings a run would use: learning rate a decade either side (log-uniform), batch size,
    warm-up, weight decay, epochs from half to twice as many, and the seed (init and data order)."""
    rate, epochs = base.learning_rate, base.epochs
    return SearchSpace(
        "wide",
        (
            Parameter("learning_rate", "float", low=rate / 10, high=rate * 10, log=True),
            _choices("batch_size", (8, 16, 32, 64)),
            Parameter("warmup_ratio", "float", low=0.0, high=0.2),
            Parameter("weight_decay", "float", low=0.0, high=0.2),
            Parameter("epochs", "int", low=max(1, math.ceil(epochs / 2)), high=max(2, 2 * epochs)),
            Parameter("seed", "int", low=0, high=9999),
        ),
    )


def _choices(name: str, values) -> Parameter:
    return Parameter(name, _field_kinds()[name], choices=tuple(values))


def read_space_file(path: str | Path) -> SearchSpace:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"space file not found: {path}", "check the --space path")
    import tomllib

    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"cannot parse space file {path}: {str(exc).splitlines()[0]}", "fix its TOML syntax"
        ) from None
    grid = table.pop("grid", False)
    if not isinstance(grid, bool):
        raise ConfigError(f"{path}: grid must be true or false, got {grid!r}", "write grid = true")
    parameters = []
    for raw_name, entry in table.items():
        name = raw_name.replace("-", "_")
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{path}: {raw_name!r} must be a table of a range or choices",
                f"write [{raw_name}] then low = ... and high = ..., or choices = [...]",
            )
        parameters.append(_parameter(name, entry, f"space file {path}"))
    if not parameters:
        raise ConfigError(f"space file {path} names no setting", "add e.g. [learning_rate] low = 1e-5 high = 1e-4")
    if grid and any(p.choices is None for p in parameters):
        ranged = next(p.name for p in parameters if p.choices is None)
        raise ConfigError(f"{path}: grid = true needs choices for every setting, {ranged!r} has a range", "list them")
    return SearchSpace(str(path), tuple(parameters), grid=grid)


def _parameter(name: str, entry: dict[str, Any], source: str) -> Parameter:
    kind = searchable(name, source)
    where = f"{source}: [{name}]"
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise ConfigError(
                f"{where} has unknown key {key!r}",
                f"{_closest_key(key, list(_ENTRY_KEYS))}use low, high, log, step or choices",
            )
    if "choices" in entry:
        if set(entry) != {"choices"}:
            raise ConfigError(f"{where} has choices and a range", "give either choices or low/high")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list", "write e.g. choices = [16, 32]")
        for value in choices:
            if not _fits(value, kind):
                raise ConfigError(f"{where}: choice {value!r} is not {_a(kind)}", f"{name} takes {kind} values")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where} repeats a choice", "give each choice once")
        return Parameter(name, kind, choices=tuple(choices))
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}: {name} is a {kind} setting", "give it choices = [...] instead of a range")
    if "low" not in entry or "high" not in entry:
        raise ConfigError(f"{where} needs low and high (or choices)", "write e.g. low = 1e-5 and high = 1e-3")
    low, high, step, log = entry["low"], entry["high"], entry.get("step"), entry.get("log", False)
    for label, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and not _fits(value, kind):
            raise ConfigError(f"{where}: {label} {value!r} is not {_a(kind)}", f"{name} takes {kind} values")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}", "write log = true")
    if not low < high:
        raise ConfigError(f"{where}: low {low!r} must be less than high {high!r}", "swap or widen them")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low!r}", "raise low, or drop log = true")
    if log and step is not None:
        raise ConfigError(f"{where} has both log and step", "give one of them")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be positive, got {step!r}", "write e.g. step = 2")
    number = int if kind == "int" else float
    return Parameter(
        name, kind, low=number(low), high=number(high), log=log, step=None if step is None else number(step)
    )


def _a(kind: str) -> str:
    return {"int": "an int", "float": "a float", "bool": "true or false", "str": "a string"}.get(kind, kind)


def _fits(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int":
        return isinstance(value, int)
    return math.isfinite(value)
