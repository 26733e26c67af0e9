"""The GLUE plugin: every task's file format, the hub mapping, metrics, the GLUE score, submissions."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import datasets
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from roberta_ft import registry
from roberta_ft.errors import ConfigError, DataError
from roberta_ft_tasks import glue
from roberta_ft_tasks.glue import TASKS, glue_average, write_submission
from tests.glue_fixtures import MRPC_QUOTED, MRPC_UNBALANCED, write_glue_dir

TASK_NAMES = [
    "glue/cola",
    "glue/sst2",
    "glue/mrpc",
    "glue/stsb",
    "glue/qqp",
    "glue/mnli",
    "glue/mnli-mm",
    "glue/qnli",
    "glue/rte",
    "glue/wnli",
    "glue/ax",
]
BY_NAME = {task.name: task for task in TASKS}

# task -> role -> (rows, label values, idx values); None labels: the split is unlabelled.
EXPECTED = {
    "glue/cola": {
        "train": (3, ["acceptable", "unacceptable", "acceptable"], [0, 1, 2]),
        "validation": (2, ["acceptable", "unacceptable"], [0, 1]),
        "test": (2, None, [0, 1]),
    },
    "glue/sst2": {
        "train": (3, ["negative", "positive", "positive"], [0, 1, 2]),
        "validation": (2, ["negative", "positive"], [0, 1]),
        "test": (2, None, [0, 1]),
    },
    "glue/mrpc": {
        "train": (3, ["equivalent", "not_equivalent", "equivalent"], [0, 1, 2]),
        "validation": (2, ["equivalent", "not_equivalent"], [0, 1]),
        "test": (2, None, [0, 1]),
    },
    "glue/stsb": {
        "train": (3, [5.0, 3.8, 0.0], [0, 1, 2]),
        "validation": (2, [5.0, 2.5], [0, 1]),
        "test": (1, None, [0]),
    },
    "glue/qqp": {
        "train": (3, ["not_duplicate", "duplicate", "duplicate"], [133273, 402555, 150662]),
        "validation": (2, ["not_duplicate", "duplicate"], [201359, 263843]),
        "test": (1, None, [0]),
    },
    "glue/mnli": {
        "train": (4, ["neutral", "contradiction", "entailment", "neutral"], [0, 1, 2, 3]),
        "validation": (2, ["neutral", "contradiction"], [0, 1]),
        "test": (1, None, [0]),
    },
    "glue/mnli-mm": {
        "train": (4, ["neutral", "contradiction", "entailment", "neutral"], [0, 1, 2, 3]),
        "validation": (3, ["entailment", "contradiction", "entailment"], [0, 1, 2]),
        "test": (2, None, [0, 1]),
    },
    "glue/qnli": {
        "train": (2, ["not_entailment", "entailment"], [0, 1]),
        "validation": (1, ["entailment"], [0]),
        "test": (1, None, [0]),
    },
    "glue/rte": {
        "train": (2, ["not_entailment", "entailment"], [0, 1]),
        "validation": (2, ["not_entailment", "entailment"], [0, 1]),
        "test": (1, None, [0]),
    },
    "glue/wnli": {
        "train": (3, ["entailment", "entailment", "not_entailment"], [0, 1, 2]),
        "validation": (1, ["not_entailment"], [0]),
        "test": (1, None, [0]),
    },
    "glue/ax": {"test": (2, None, [0, 1])},
}
CASES = [(name, role) for name, roles in EXPECTED.items() for role in roles]


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_glue_dir(tmp_path_factory.mktemp("data"))


def load(name: str, source, split: str) -> datasets.Dataset:
    return BY_NAME[name].load(str(source) if isinstance(source, Path) else source, split)


# --- the task table ------------------------------------------------------------------------------


def test_every_glue_task_is_defined_with_its_official_metrics():
    assert [task.name for task in TASKS] == TASK_NAMES
    primary = {name: task.primary_metric for name, task in BY_NAME.items()}
    assert primary["glue/cola"] == "matthews_correlation"
    assert primary["glue/stsb"] == "pearson"
    assert primary["glue/mrpc"] == "f1"
    assert primary["glue/qqp"] == "accuracy"
    assert BY_NAME["glue/stsb"].problem_type == "regression" and BY_NAME["glue/stsb"].label_names is None
    assert BY_NAME["glue/wnli"].label_names == ("not_entailment", "entailment")
    assert BY_NAME["glue/mnli-mm"].splits == {
        "train": "train",
        "validation": "validation_mismatched",
        "test": "test_mismatched",
    }
    assert BY_NAME["glue/ax"].splits == {"test": "test"}
    for task in TASKS:
        assert task.default_source is None
        assert task.primary_metric in task.extras["glue_metrics"]
        assert {"glue_name", "hub_config", "submission_labels"} <= set(task.extras)
        assert task.write_submission is not None  # recipes and published scores: typed fields, checked below


def test_recipes_and_published_scores_follow_the_fairseq_readme():
    rte = BY_NAME["glue/rte"]
    assert rte.published == {"roberta-base": 78.7, "roberta-large": 86.6}
    assert rte.recipes["roberta-base"]["learning_rate"] == 2e-5
    assert rte.recipes["roberta-large"]["batch_size"] == 16
    assert rte.recipes["roberta-base"]["epochs"] == 10
    assert rte.recipes["roberta-base"]["warmup_ratio"] == 0.06
    assert BY_NAME["glue/mnli-mm"].published == BY_NAME["glue/mnli"].published
    assert BY_NAME["glue/wnli"].published == {} and BY_NAME["glue/ax"].recipes == {}


# --- loading the classic GLUE folder -------------------------------------------------------------


@pytest.mark.parametrize(("name", "role"), CASES)
def test_every_split_loads_with_the_standard_columns(glue_dir, name, role):
    rows, labels, idx = EXPECTED[name][role]
    task = BY_NAME[name]
    dataset = load(name, glue_dir, task.splits[role])
    expected_columns = ["text"] + (["text_pair"] if task.is_pair else []) + (["label"] if labels else [])
    assert dataset.column_names == expected_columns + ["idx"]
    assert len(dataset) == rows
    assert dataset["idx"] == idx
    assert all(isinstance(text, str) and text for text in dataset["text"])
    if labels is not None:
        assert dataset["label"] == labels
        if task.label_names:
            assert set(dataset["label"]) <= set(task.label_names)


def test_text_is_kept_exactly_as_in_the_file(glue_dir):
    mrpc = load("glue/mrpc", glue_dir, "train")
    assert mrpc[0]["text"] == MRPC_QUOTED
    assert mrpc[2]["text_pair"] == MRPC_UNBALANCED
    assert load("glue/mrpc", glue_dir, "test")["idx"] == [0, 1]  # the BOM does not hide the "index" column
    assert load("glue/sst2", glue_dir, "train")[0]["text"] == "hide new secretions from the parental units "
    cola = load("glue/cola", glue_dir, "train")
    assert cola[2]["text"] == 'The more you eat, the "fatter" you get.'
    assert load("glue/cola", glue_dir, "test")["text"] == ["Bill whistled past the house.", "The car honked."]
    mnli = load("glue/mnli", glue_dir, "validation_matched")[0]
    assert (mnli["text"], mnli["text_pair"]) == ("The new rights are nice enough.", "Everyone really likes them.")
    qnli = load("glue/qnli", glue_dir, "train")[0]
    assert qnli["text"] == "When did the third Digimon series begin?"


def test_stsb_labels_are_floats(glue_dir):
    dataset = load("glue/stsb", glue_dir, "validation")
    assert dataset.features["label"].dtype == "float64"
    assert dataset["label"] == [5.0, 2.5]
    assert dataset[1]["text_pair"] == "A horse is ridden."


def test_qqp_malformed_rows_are_skipped_and_counted(glue_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="roberta_ft_tasks.glue"):
        dataset = load("glue/qqp", glue_dir, "train")
    assert 360472 not in dataset["idx"]
    assert "skipped 1 malformed rows" in caplog.text


def test_roles_and_split_names_both_work(glue_dir):
    assert load("glue/mnli", glue_dir, "validation")["idx"] == [0, 1]
    assert len(load("glue/mnli-mm", glue_dir, "validation")) == 3
    assert len(load("glue/mnli-mm", glue_dir, "test_mismatched")) == 2
    assert load("glue/mnli-mm", glue_dir, "train")["label"] == load("glue/mnli", glue_dir, "train")["label"]
    with pytest.raises(DataError, match="no split 'validation'.*use one of test"):
        load("glue/ax", glue_dir, "validation")


def test_alternative_locations(glue_dir, tmp_path):
    # AX as <dir>/AX/AX.tsv, and a task folder given directly as the source.
    (tmp_path / "AX").mkdir()
    (tmp_path / "AX" / "AX.tsv").write_text("index\tsentence1\tsentence2\n7\tA b.\tC d.\n", encoding="utf-8")
    assert load("glue/ax", tmp_path, "test")["idx"] == [7]
    assert len(load("glue/rte", glue_dir / "RTE", "validation")) == 2
    with pytest.raises(DataError, match="glue/cola train file not found"):
        load("glue/cola", glue_dir / "RTE", "train")


def test_source_none_uses_glue_dir_from_the_environment(glue_dir, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    assert len(load("glue/rte", None, "train")) == 2


# --- errors --------------------------------------------------------------------------------------


def test_a_missing_file_names_the_expected_path_and_the_fix(tmp_path):
    with pytest.raises(DataError) as error:
        load("glue/sst2", tmp_path, "validation")
    message = str(error.value)
    assert str(tmp_path / "SST-2" / "dev.tsv") in message and "GLUE_DIR" in message and "\n" not in message
    with pytest.raises(DataError, match="does not exist"):
        load("glue/sst2", tmp_path / "nowhere", "train")


def write_task_file(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_label_names_the_value_file_and_line(tmp_path):
    path = write_task_file(tmp_path, "RTE/train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailed\n")
    with pytest.raises(DataError, match=rf"label 'entailed' in {path}, line 2 .*not_entailment"):
        load("glue/rte", tmp_path, "train")
    write_task_file(tmp_path, "SST-2/train.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n")
    with pytest.raises(DataError, match="label '2' .* line 3"):
        load("glue/sst2", tmp_path, "train")
    write_task_file(tmp_path, "STS-B/train.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\thigh\n")
    with pytest.raises(DataError, match="score 'high' is not a number"):
        load("glue/stsb", tmp_path, "train")


def test_a_malformed_row_outside_qqp_names_the_file_and_line(tmp_path):
    path = write_task_file(tmp_path, "CoLA/train.tsv", "gj04\t1\t\tFine.\ngj04\t1\tBroken.\n")
    with pytest.raises(DataError, match=rf"{path}, line 2: expected 4 tab-separated columns, found 3"):
        load("glue/cola", tmp_path, "train")
    write_task_file(tmp_path, "QNLI/train.tsv", "index\tquestion\tanswer\tlabel\n")
    with pytest.raises(DataError, match="no column 'sentence'"):
        load("glue/qnli", tmp_path, "train")
    write_task_file(tmp_path, "WNLI/train.tsv", "")
    with pytest.raises(DataError, match="is empty"):
        load("glue/wnli", tmp_path, "train")


def test_a_file_that_is_not_utf8_is_a_data_error(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_bytes(b"index\tsentence1\tsentence2\tlabel\n0\t\xff\tb\tentailment\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load("glue/rte", tmp_path, "validation")


# --- the hub dataset -----------------------------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []
    tables = {
        ("mrpc", "train"): {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0], "idx": [0, 1]},
        ("mnli", "test_mismatched"): {"premise": ["p"], "hypothesis": ["h"], "label": [-1], "idx": [5]},
        ("stsb", "validation"): {"sentence1": ["a"], "sentence2": ["b"], "label": [3.25], "idx": [0]},
    }

    def load_dataset(path, config, split):
        calls.append((path, config, split))
        if (config, split) not in tables:
            raise ConnectionError("offline")
        return datasets.Dataset.from_dict(tables[config, split])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_the_hub_dataset_is_mapped_to_the_standard_columns(fake_hub, monkeypatch):
    mrpc = load("glue/mrpc", "hub", "train")
    assert mrpc.column_names == ["text", "text_pair", "label", "idx"]
    assert mrpc["label"] == ["equivalent", "not_equivalent"]
    test = load("glue/mnli-mm", "nyu-mll/glue", "test")
    assert test.column_names == ["text", "text_pair", "idx"] and test["idx"] == [5]
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert load("glue/stsb", None, "validation")["label"] == [3.25]
    assert fake_hub == [
        ("nyu-mll/glue", "mrpc", "train"),
        ("nyu-mll/glue", "mnli", "test_mismatched"),
        ("nyu-mll/glue", "stsb", "validation"),
    ]
    with pytest.raises(DataError, match="cannot load nyu-mll/glue \\(rte, split train\\).*offline"):
        load("glue/rte", "hub", "train")


# --- metrics -------------------------------------------------------------------------------------

PREDICTIONS = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
REFERENCES = np.array([1, 0, 0, 1, 0, 1, 1, 0, 1, 0])


def test_classification_metrics_equal_scikit_learn():
    mrpc = BY_NAME["glue/mrpc"].metrics(PREDICTIONS, REFERENCES)
    assert set(mrpc) == {"f1", "accuracy"}
    assert mrpc["f1"] == pytest.approx(f1_score(REFERENCES, PREDICTIONS, pos_label=1))
    assert mrpc["accuracy"] == pytest.approx(accuracy_score(REFERENCES, PREDICTIONS))
    cola = BY_NAME["glue/cola"].metrics(PREDICTIONS, REFERENCES)
    assert cola == {"matthews_correlation": pytest.approx(matthews_corrcoef(REFERENCES, PREDICTIONS))}
    three_way_predictions, three_way_references = np.array([0, 1, 2, 2, 1, 0]), np.array([0, 1, 2, 1, 1, 2])
    mnli = BY_NAME["glue/mnli"].metrics(three_way_predictions, three_way_references)
    assert mnli == {"accuracy": pytest.approx(accuracy_score(three_way_references, three_way_predictions))}


def test_regression_metrics_equal_scipy():
    predictions = np.array([4.8, 1.2, 3.0, 0.4, 2.2, 3.9])
    references = np.array([5.0, 0.8, 3.4, 0.0, 2.6, 3.0])
    stsb = BY_NAME["glue/stsb"].metrics(predictions, references)
    assert set(stsb) == {"pearson", "spearmanr"}
    assert stsb["pearson"] == pytest.approx(pearsonr(predictions, references)[0])
    assert stsb["spearmanr"] == pytest.approx(spearmanr(predictions, references)[0])


# --- the GLUE score ------------------------------------------------------------------------------


def test_glue_average_averages_metrics_then_tasks_with_mnli_counted_once():
    results = {
        "glue/cola": {"matthews_correlation": 0.6},
        "MRPC": {"f1": 0.9, "accuracy": 0.8, "loss": 0.3},
        "stsb": {"pearson": 0.92, "spearmanr": 0.90},
        "glue/mnli": {"accuracy": 0.88},
        "glue/mnli-mm": {"accuracy": 0.86},
        "glue/ax": {"matthews_correlation": 0.4},
    }
    # cola 60, mrpc 85, stsb 91, mnli (88 + 86) / 2 = 87; AX is not part of the score.
    assert glue_average(results) == pytest.approx((60 + 85 + 91 + 87) / 4)
    assert glue_average({"glue/sst2": {"accuracy": 0.95}}) == pytest.approx(95.0)
    with pytest.raises(ConfigError, match="glue/qqp lack f1"):
        glue_average({"glue/qqp": {"accuracy": 0.9}})
    with pytest.raises(ConfigError, match="'squad' is not a GLUE task"):
        glue_average({"squad": {"f1": 0.9}})
    with pytest.raises(ConfigError, match="no GLUE task results"):
        glue_average({})


# --- submission files ----------------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_submission_with_label_names(tmp_path):
    path = write_submission(BY_NAME["glue/rte"], [0, 1, 2], [1, 0, "entailment"], tmp_path / "submission")
    assert path == tmp_path / "submission" / "RTE.tsv"
    assert read_lines(path) == ["index\tprediction", "0\tnot_entailment", "1\tentailment", "2\tentailment"]
    assert write_submission("glue/mnli", [3], [2], tmp_path).name == "MNLI-m.tsv"
    assert read_lines(tmp_path / "MNLI-m.tsv")[1] == "3\tcontradiction"
    assert write_submission("glue/mnli-mm", [3], [0], tmp_path).name == "MNLI-mm.tsv"


def test_submission_with_zero_one_labels(tmp_path):
    path = write_submission("glue/mrpc", np.array([10, 11, 12]), np.array([1, 0, 1]), tmp_path)
    assert path.name == "MRPC.tsv"
    assert read_lines(path) == ["index\tprediction", "10\t1", "11\t0", "12\t1"]
    write_submission("glue/wnli", [0, 1], ["entailment", "not_entailment"], tmp_path)
    assert read_lines(tmp_path / "WNLI.tsv")[1:] == ["0\t1", "1\t0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MRPC.tsv", "WNLI.tsv"]  # no temp files left
    with pytest.raises(DataError, match="not a glue/mrpc label id"):
        write_submission("glue/mrpc", [0], [2], tmp_path)
    with pytest.raises(DataError, match="2 predictions for 1 indices"):
        write_submission("glue/mrpc", [0], [0, 1], tmp_path)


def test_stsb_submission_is_clipped_to_zero_five_with_three_decimals(tmp_path):
    path = write_submission("glue/stsb", [0, 1, 2, 3], [-0.4, 2.34567, 5.7, np.float32(4.0)], tmp_path)
    assert path.name == "STS-B.tsv"
    assert read_lines(path) == ["index\tprediction", "0\t0.000", "1\t2.346", "2\t5.000", "3\t4.000"]
    with pytest.raises(DataError, match="NaN"):
        write_submission("glue/stsb", [0], [math.nan], tmp_path)


# --- the registry and the real data --------------------------------------------------------------


def test_the_entry_point_registers_every_glue_task():
    assert set(TASK_NAMES) <= set(registry.available_tasks())
    assert registry.get_task("glue/rte").extras["glue_name"] == "RTE"


REAL_GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


@pytest.mark.parametrize(
    ("name", "train_rows", "dev_rows"),
    [("glue/sst2", 67_349, 872), ("glue/cola", 8_551, 1_043), ("glue/mrpc", 3_668, 408), ("glue/stsb", 5_749, 1_500)],
)
def test_real_glue_files(name, train_rows, dev_rows):
    if not REAL_GLUE.is_dir():
        pytest.skip(f"no real GLUE data at {REAL_GLUE}")
    task = BY_NAME[name]
    dev = load(name, REAL_GLUE, "validation")
    assert len(dev) == dev_rows
    assert dev["idx"] == list(range(dev_rows))
    if task.label_names:
        assert set(dev["label"]) == set(task.label_names)
    else:
        assert 0.0 <= min(dev["label"]) < max(dev["label"]) <= 5.0
    assert len(load(name, REAL_GLUE, "train")) == train_rows
    assert glue.SPECS[name].glue_name == task.extras["glue_name"]
