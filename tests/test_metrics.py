"""The classification metrics computed in roberta_ft.metrics give scikit-learn's values on any labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk  # the reference the tests hold ours to (installed with the package)

from roberta_ft import metrics, reports

SETTINGS = settings(max_examples=200, deadline=None)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn's note on a single label seen


@st.composite
def labelled(draw, max_labels: int = 5, outside: bool = False):
    """(predictions, references, number of labels n): label ids below n, some possibly never used, and with
    `outside` the id n too (a label the scored set does not name)."""
    n = draw(st.integers(2, max_labels))
    rows = draw(st.integers(1, 40))
    ids = st.lists(st.integers(0, n if outside else n - 1), min_size=rows, max_size=rows)
    return np.array(draw(ids)), np.array(draw(ids)), n


@SETTINGS
@given(st.one_of(labelled(), labelled(outside=True)))
def test_single_label_metrics_are_scikit_learns(case):
    predictions, references, n = case
    labels = list(range(n))
    assert metrics.macro_f1(predictions, references, labels=labels) == pytest.approx(
        sk.f1_score(references, predictions, labels=labels, average="macro", zero_division=0)
    )
    assert metrics.macro_f1(predictions, references) == pytest.approx(
        sk.f1_score(references, predictions, average="macro", zero_division=0)
    )
    assert metrics.matthews_correlation(predictions, references) == pytest.approx(
        sk.matthews_corrcoef(references, predictions), abs=1e-12
    )
    ours = metrics.precision_recall_f1_support(predictions, references, labels)
    theirs = sk.precision_recall_fscore_support(references, predictions, labels=labels, zero_division=0)
    for mine, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, expected, atol=1e-12)
    matrix = metrics.confusion_matrix(predictions, references, labels)
    if np.isin(references, labels).any():
        np.testing.assert_array_equal(matrix, sk.confusion_matrix(references, predictions, labels=labels))
    else:  # scikit-learn refuses this case; ours counts nothing
        assert not matrix.any()


@SETTINGS
@given(labelled(max_labels=2))
def test_binary_f1_is_scikit_learns(case):
    predictions, references, _ = case
    assert metrics.f1_positive(predictions, references) == pytest.approx(
        sk.f1_score(references, predictions, labels=[0, 1], pos_label=1, average="binary", zero_division=0)
    )


@SETTINGS
@given(st.integers(1, 30), st.integers(2, 5), st.data())  # one column is not multi-hot to scikit-learn
def test_multi_label_metrics_are_scikit_learns(rows, labels, data):
    cells = st.lists(st.integers(0, 1), min_size=rows * labels, max_size=rows * labels)
    predictions = np.array(data.draw(cells)).reshape(rows, labels)
    references = np.array(data.draw(cells)).reshape(rows, labels)
    ours = metrics.multilabel_metrics(predictions, references)
    assert ours["micro_f1"] == pytest.approx(sk.f1_score(references, predictions, average="micro", zero_division=0))
    assert ours["macro_f1"] == pytest.approx(sk.f1_score(references, predictions, average="macro", zero_division=0))
    names = [f"l{i}" for i in range(labels)]
    table = reports.multilabel_report(predictions, references, names)["per_class"]
    theirs = sk.precision_recall_fscore_support(references, predictions, average=None, zero_division=0)
    for i, name in enumerate(names):
        assert [table[name][key] for key in ("precision", "recall", "f1", "support")] == pytest.approx(
            [float(theirs[0][i]), float(theirs[1][i]), float(theirs[2][i]), int(theirs[3][i])]
        )


def test_train_and_eval_start_without_scikit_learn(tmp_path):
    """The metrics path imports no scikit-learn (a second of every command's start-up)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from roberta_ft import metrics, reports\n"
        "p, r = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])\n"
        "metrics.classification_metrics(3, mcc=True)(p, r)\n"
        "reports.classification_report(p, r, ['a', 'b', 'c'])\n"
        "print('sklearn' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
