"""Property-based: reading, column picking, standardizing and label mapping raise nothing but RobertaFtError.

Whatever bytes a file holds and whatever its columns are called, the user gets a one-line error that
names the problem, never a stray ValueError or UnicodeError from inside the library.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roberta_ft.data import Columns, LabelMap, Table, read_table, resolve_columns, standardize
from roberta_ft.errors import RobertaFtError
from roberta_ft.registry import get_task

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TASKS = st.sampled_from([None, "classification", "nli", "sentiment", "glue/stsb", "glue/mnli"])

# Cells that stress the readers: delimiters, quotes, line breaks, NUL, a BOM, non-ASCII and digit look-alikes.
cell = st.one_of(
    st.text(alphabet=st.sampled_from(list('ab ,\t"\n\r\x00\ufeff\u00e9\u00b2\u0663\U0001f600')), max_size=12),
    st.sampled_from(["text", "label", "sentence1", "sentence2", "premise", "hypothesis", "Label", "score", "nan"]),
)
value = st.one_of(
    st.none(),
    cell,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def delimited(rows: list[list[str]], delimiter: str) -> str:
    return "\n".join(delimiter.join(row) for row in rows)


file_text = st.one_of(
    st.lists(st.lists(cell, min_size=1, max_size=4), max_size=6).map(lambda rows: delimited(rows, ",")),
    st.lists(st.lists(cell, min_size=1, max_size=4), max_size=6).map(lambda rows: delimited(rows, "\t")),
    st.lists(st.dictionaries(cell, value, max_size=4), max_size=5).map(
        lambda rows: "\n".join(json.dumps(row) for row in rows)
    ),
    st.text(max_size=200),
)


def check(function, *args, **kwargs):
    """Call `function`; a RobertaFtError is an accepted outcome (returns None), any other exception fails."""
    try:
        return function(*args, **kwargs)
    except RobertaFtError as error:
        message = error.one_line()
        assert message and "\n" not in error.message
        return None


@SETTINGS
@given(
    content=st.one_of(st.binary(max_size=300), file_text.map(lambda text: text.encode("utf-8"))),
    bom=st.booleans(),
    extension=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-16", "no-such-codec"]),
    task_name=TASKS,
    need_label=st.booleans(),
    drop_invalid=st.booleans(),
    choose=st.data(),
)
def test_any_file_gives_a_table_or_a_clear_error(
    content, bom, extension, encoding, task_name, need_label, drop_invalid, choose
):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{extension}"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content)
        table = check(read_table, path, encoding=encoding)
    if table is None:
        return
    assert len(table.rows) == len(table.line_numbers) > 0
    task = get_task(task_name) if task_name else None
    names = st.one_of(st.none(), st.sampled_from(table.columns) if table.columns else st.none(), cell)
    columns = check(
        resolve_columns,
        table.columns,
        text=choose.draw(names),
        text_pair=choose.draw(names),
        label=choose.draw(names),
        task=task,
        need_label=need_label,
    )
    if columns is None:
        return
    from roberta_ft.problems import predicts_scores

    regression = task is not None and predicts_scores(task)
    dataset = check(standardize, table, columns, regression=regression, drop_invalid=drop_invalid)
    if dataset is None or "label" not in dataset.column_names or regression:
        return
    label_map = check(LabelMap.infer, dataset["label"], task)
    if label_map is not None:
        check(label_map.encode, dataset["label"], source="x", lines=dataset["line"])


@SETTINGS
@given(
    columns=st.lists(cell, max_size=5),
    rows=st.lists(st.lists(value, min_size=5, max_size=5), min_size=1, max_size=6),
    regression=st.booleans(),
    drop_invalid=st.booleans(),
    choose=st.data(),
)
def test_standardize_any_table(columns, rows, regression, drop_invalid, choose):
    names = columns + ["missing"]
    table = Table(
        Path("t.csv"),
        columns,
        [dict(zip(columns, row[: len(columns)], strict=False)) for row in rows],
        list(range(2, len(rows) + 2)),
    )
    picked = Columns(
        text=choose.draw(st.sampled_from(names)),
        label=choose.draw(st.one_of(st.none(), st.sampled_from(names))),
        text_pair=choose.draw(st.one_of(st.none(), st.sampled_from(names))),
    )
    dataset = check(standardize, table, picked, regression=regression, drop_invalid=drop_invalid)
    if dataset is not None and regression and "label" in dataset.column_names:
        assert all(math.isfinite(v) for v in dataset["label"])


label = st.one_of(
    cell,
    st.sampled_from(["0", "1", "2", "10", "²", "\u0663", "9" * 5000, "Entailment", "neutral", "-1", "1.5", ""]),
)


@SETTINGS
@given(
    train_labels=st.lists(label, min_size=1, max_size=8),
    other_labels=st.lists(label, max_size=8),
    task_name=TASKS,
)
def test_label_maps_of_any_labels(train_labels, other_labels, task_name):
    task = get_task(task_name) if task_name else None
    label_map = check(LabelMap.infer, train_labels, task)
    if label_map is None:
        return
    assert len(set(label_map.names)) == len(label_map.names)
    for labels in (train_labels, other_labels):
        ids = check(label_map.encode, labels, source="x")
        if ids is not None:
            assert all(0 <= i < len(label_map) for i in ids)


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert check(read_table, path) is None
