"""How `predict` writes its rows: the output file's format, stdout's plain form, and the result it reports.

The fields of a row come from the model's problem (`Problem.output_fields`, `Problem.rows`): ``label``
and ``probability``; ``labels`` and ``probabilities`` (top-k, multi-label); or ``score``
(regression). Before them come the row's key (``line`` of a text file, ``idx`` of a task split) and
its text(s). List fields are JSON lists in ``.jsonl`` output and are joined by the label separator
(``|``) in ``.csv``/``.tsv`` and on stdout, where only the key of a task split and the output fields
are printed (``label<TAB>probability``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from roberta_ft.artifacts import check_writable
from roberta_ft.errors import ConfigError

OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass
class PredictResult:
    num_lines: int
    num_predicted: int
    seconds: float
    output: str | None
    submission: str | None = None  # the leaderboard file written (task datasets with --submission)

    @property
    def texts_per_second(self) -> float:
        return self.num_predicted / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_lines": self.num_lines,
            "num_predicted": self.num_predicted,
            "seconds": self.seconds,
            "texts_per_second": self.texts_per_second,
            "output": self.output,
            **({"submission": self.submission} if self.submission else {}),
        }


def output_path(output: str | None, *, overwrite: bool) -> Path | None:
    """--output as a Path after checking its format is known and that it may be written (None: stdout)."""
    path = Path(output) if output else None
    if path is not None:
        if path.suffix.lower() not in OUTPUT_FORMATS:
            raise ConfigError(f"cannot tell the output format of {path}", "use a .csv, .tsv or .jsonl file name")
        if path.exists() and not overwrite:
            raise ConfigError(f"--output {path} already exists", "pass --overwrite to replace it")
        check_writable(path)
    return path


def output_format(path: Path) -> str:
    return OUTPUT_FORMATS[path.suffix.lower()]


class RowWriter:
    """Writes one output row per input; `fmt` "plain" (stdout) writes `fields` tab-separated, without a header."""

    def __init__(self, handle: TextIO, fmt: str, fields: list[str], separator: str = "|") -> None:
        self.handle, self.fmt, self.fields, self.separator = handle, fmt, fields, separator
        if fmt in ("csv", "tsv"):
            self.csv = csv.writer(handle, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
            self.csv.writerow(fields)

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "plain":
            self.handle.write("\t".join(self._cell(row.get(f)) for f in self.fields) + "\n")
        else:
            self.csv.writerow([self._cell(row.get(f)) for f in self.fields])

    def _cell(self, value: Any) -> str:
        """A field as text; a list (top-k or multi-label labels) joined by the label separator."""
        if value is None:
            return ""
        if isinstance(value, list):
            return self.separator.join(map(str, value))
        return str(value)
