"""Which columns hold the text, the second text of a pair and the label: the user's names first, then naming rules."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roberta_ft.errors import DataError

if TYPE_CHECKING:
    from roberta_ft.registry import Task

logger = logging.getLogger(__name__)

TEXT_CANDIDATES = (
    "text", "sentence", "review", "content", "document", "body", "comment", "tweet", "utterance",
    "message", "input", "abstract", "description", "question",
)  # fmt: skip
PAIR_CANDIDATES = (
    ("text", "text_pair"), ("text_a", "text_b"), ("sentence1", "sentence2"), ("premise", "hypothesis"),
    ("question1", "question2"), ("question", "sentence"), ("query", "passage"),
)  # fmt: skip
LABEL_CANDIDATES = ("label", "labels", "class", "category", "target", "gold_label", "sentiment", "y", "score")
# Names a label column often has, used only when exactly one of them is a column (and no LABEL_CANDIDATES one is):
# a file with both `topic` and `sentiment` leaves the choice to --label-column.
LABEL_NAMES_IF_ALONE = (
    "verdict", "topic", "categories", "classes", "class_label", "label_name", "intent", "emotion", "stance",
    "polarity", "genre", "tag", "tags", "outcome", "decision", "rating", "stars", "toxic", "toxicity", "spam",
    "is_spam",
)  # fmt: skip


@dataclass(frozen=True)
class Columns:
    text: str
    label: str | None
    text_pair: str | None = None


def _closest(name: str, columns: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), [c.lower() for c in columns], n=1, cutoff=0.5
    )
    return f"did you mean {close[0]!r}? " if close else ""


def resolve_columns(
    columns: Sequence[str],
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str | None = None,
    task: Task | None = None,
    need_label: bool = True,
    source: str = "the file",
) -> Columns:
    """Pick the text, pair and label columns: the user's names first, then clear naming rules."""
    if not columns:  # e.g. a JSON Lines file of empty objects
        raise DataError(
            f"{source} has no columns", "give each row a text field, and a label field to train or evaluate"
        )
    by_lower = {c.lower(): c for c in columns}
    listing = ", ".join(repr(c) for c in columns)

    def check(name: str, option: str) -> str:
        if name in columns:
            return name
        if name.lower() in by_lower:
            return by_lower[name.lower()]
        raise DataError(
            f"column {name!r} (from {option}) is not in {source}",
            f"{_closest(name, columns)}columns are: {listing}",
        )

    picked: list[str] = []
    if label is None and need_label:
        label = _auto_label_column(by_lower, columns, text, text_pair, source)
        picked.append(f"label column {label!r}")
    elif label is not None:
        label = check(label, "--label-column")

    if text is None:
        text, auto_pair = _auto_text_columns(by_lower, columns, label, task, single=text_pair is None)
        if text_pair is None and auto_pair is not None:
            text_pair = auto_pair
            picked.append(f"text pair columns {text!r} + {text_pair!r}")
        else:
            picked.append(f"text column {text!r}")
    else:
        text = check(text, "--text-column")
    if text_pair is not None:
        text_pair = check(text_pair, "--text-pair-column")
    elif task is not None and task.is_pair:
        raise DataError(
            f"task {task.name!r} takes text pairs but {source} has no second text column",
            f"pass --text-pair-column; columns are: {listing}",
        )
    if label is not None and label in (text, text_pair):
        raise DataError(f"column {label!r} is used as both text and label", "pass --text-column and --label-column")
    if picked:
        logger.info("Columns of %s: picked %s (override with --text-column/--label-column)", source, ", ".join(picked))
    return Columns(text=text, label=label, text_pair=text_pair)


def _auto_label_column(
    by_lower: dict[str, str], columns: Sequence[str], text: str | None, text_pair: str | None, source: str
) -> str:
    """The naming rules for the label column: a well-known name, else the one column with a usual label name;
    when they cannot tell, the error suggests a ready-to-paste --label-column."""
    found = next((by_lower[c] for c in LABEL_CANDIDATES if c in by_lower), None)
    if found is not None:
        return found
    alone = [by_lower[c] for c in LABEL_NAMES_IF_ALONE if c in by_lower]
    if len(alone) == 1:
        return alone[0]
    listing = ", ".join(repr(c) for c in columns)
    if alone:
        shown = " or ".join(f"--label-column {_shell_word(c)}" for c in alone)
        raise DataError(f"cannot tell which column of {source} holds the labels ({len(alone)} could)", f"pass {shown}")
    # The columns that are not the text: the last one is where a label column usually is.
    taken = {name for name in (text, text_pair) if name} | {by_lower[c] for c in TEXT_CANDIDATES if c in by_lower}
    others = [c for c in columns if c not in taken] or list(columns)
    suggestion = f"--label-column {_shell_word(others[-1])}"
    raise DataError(
        f"cannot tell which column of {source} holds the labels",
        f"pass {suggestion} if that column holds them; columns are: {listing}",
    )


def _shell_word(name: str) -> str:
    """A column name as one shell word, ready to paste."""
    import shlex

    return shlex.quote(name)


def _auto_text_columns(
    by_lower: dict[str, str], columns: Sequence[str], label: str | None, task: Task | None, *, single: bool
) -> tuple[str, str | None]:
    """The naming rules: the task's own field names, then well-known pair names, then one text-like column."""
    listing = ", ".join(repr(c) for c in columns)
    own = [tuple(task.text_fields)] if task is not None else []
    # Pairs first, so a pair file is never read as single texts; then the task's own single field.
    candidates = [f for f in own if len(f) == 2] + list(PAIR_CANDIDATES) + [f for f in own if len(f) == 1]
    for fields in candidates:
        if all(f.lower() in by_lower for f in fields):
            names = [by_lower[f.lower()] for f in fields]
            return names[0], (names[1] if len(names) == 2 and single else None)
    if task is not None and task.is_pair and single:
        raise DataError(
            f"task {task.name!r} takes text pairs but no pair of text columns was recognised",
            f"pass --text-column and --text-pair-column; columns are: {listing}",
        )
    found = [by_lower[c] for c in TEXT_CANDIDATES if c in by_lower and by_lower[c] != label]
    others = [c for c in columns if c != label]
    if len(found) == 1:
        return found[0], None
    if not found and len(others) == 1:
        return others[0], None
    clash = f" ({', '.join(repr(f) for f in found)} all could)" if found else ""
    raise DataError(
        f"cannot tell which column holds the text{clash}",
        f"pass --text-column (and --text-pair-column for pairs); columns are: {listing}",
    )
