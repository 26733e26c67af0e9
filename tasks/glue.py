"""The GLUE benchmark as task plugins: ``glue/cola`` ... ``glue/ax``.

Every quirk of GLUE lives in the ``_SPECS`` table below (file names, header rows, which column
holds the label, whether labels are 0/1 ids or names, MNLI's matched/mismatched sets, STS-B
regression), read by one generic TSV reader, so neither the loop nor the data layer ever needs
to know a GLUE task by name.

Data comes from a local GLUE folder in the classic ``download_glue_data.py`` layout
(``<dir>/SST-2/train.tsv`` ...), given as the source or through the ``GLUE_DIR`` environment
variable, or from the Hugging Face hub dataset ``nyu-mll/glue``.
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roberta_ft import metrics as metric_functions
from roberta_ft.errors import ConfigError, DataError
from roberta_ft.registry import Task

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"
HUB_SOURCES = ("hub", HUB_DATASET)
GLUE_DIR_VARIABLE = "GLUE_DIR"
SOURCE_HINT = (
    f"pass --data-dir or set {GLUE_DIR_VARIABLE} to the GLUE folder that holds CoLA/, SST-2/, ... "
    "(the download_glue_data.py layout), or use the source 'hub' for the nyu-mll/glue dataset"
)

# Local file names for each split name; a task's spec may override them (AX).
SPLIT_FILES: Mapping[str, tuple[str, ...]] = {
    "train": ("train.tsv",),
    "validation": ("dev.tsv",),
    "test": ("test.tsv",),
    "validation_matched": ("dev_matched.tsv",),
    "validation_mismatched": ("dev_mismatched.tsv",),
    "test_matched": ("test_matched.tsv",),
    "test_mismatched": ("test_mismatched.tsv",),
}

METRICS = {
    "accuracy": metric_functions.accuracy,
    "f1": metric_functions.f1_positive,
    "matthews_correlation": metric_functions.matthews_correlation,
    "pearson": metric_functions.pearson,
    "spearmanr": metric_functions.spearman,
}

# The fairseq recipe shared by every task (examples/roberta/README.glue.md): 10 epochs, 6% linear
# warmup then linear decay, Adam (0.9, 0.98) eps 1e-6, weight decay 0.1, no gradient clipping,
# up to 512 tokens. Keys are TrainConfig field names.
_SHARED_RECIPE: Mapping[str, Any] = {
    "epochs": 10,
    "warmup_ratio": 0.06,
    "weight_decay": 0.1,
    "adam_betas": (0.9, 0.98),
    "adam_epsilon": 1e-6,
    "max_grad_norm": 0.0,
    "max_length": 512,
}

NLI_LABELS = ("entailment", "neutral", "contradiction")
QNLI_LABELS = ("entailment", "not_entailment")
MNLI_SPLITS = {"train": "train", "validation": "validation_matched", "test": "test_matched"}
MNLI_MM_SPLITS = {"train": "train", "validation": "validation_mismatched", "test": "test_mismatched"}
MNLI_COLUMNS = ("sentence1", "sentence2")


@dataclass(frozen=True)
class TsvFormat:
    """How a task's TSV files are laid out. Columns are found by header name."""

    text_columns: tuple[str, ...]
    # The label column; None for tasks whose files carry no labels at all (AX).
    label_column: str | None = "label"
    # Used where a file has it (test files, MNLI, QQP ...), else the 0-based row number.
    index_column: str = "index"
    # Column names of train/dev files that have no header row (CoLA); test files always have one.
    names_without_header: tuple[str, ...] | None = None
    # True when the file stores label ids ("0"/"1") rather than label names.
    labels_are_ids: bool = False
    # QQP: some releases hold rows with missing columns; skip them (with a logged count).
    skip_malformed_rows: bool = False


@dataclass(frozen=True)
class GlueSpec:
    """One GLUE task: its names, labels, file layout, metrics, and published reference numbers."""

    key: str
    glue_name: str  # the GLUE folder name and submission file stem
    text_fields: tuple[str, ...]  # the hub dataset's column names
    label_names: tuple[str, ...] | None  # in nyu-mll/glue's id order; None for regression
    file_format: TsvFormat
    # "ids" (0/1), "names" (label names) or "score" (STS-B float in [0, 5], 3 decimals).
    submission_labels: str
    description: str
    metric_names: tuple[str, ...] = ("accuracy",)  # the official metrics; the first is primary
    primary: str | None = None  # when the primary metric is not the first (QQP)
    hub_config: str | None = None  # when it is not the key
    folders: tuple[str, ...] = ()
    splits: Mapping[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )
    split_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    submission_name: str | None = None
    published: Mapping[str, float] = field(default_factory=dict)
    published_metric: str | None = None  # when it is not the primary metric (MRPC)
    recipe: tuple[float, int] | None = None  # (learning rate, batch size) from the fairseq table

    @property
    def task_name(self) -> str:
        return f"glue/{self.key}"

    @property
    def primary_metric(self) -> str:
        return self.primary or self.metric_names[0]

    @property
    def reference_metric(self) -> str:
        return self.published_metric or self.primary_metric

    @property
    def config(self) -> str:
        return self.hub_config or self.key

    @property
    def data_folders(self) -> tuple[str, ...]:
        return self.folders or (self.glue_name,)


def _published(base: float, large: float) -> dict[str, float]:
    return {"roberta-base": base, "roberta-large": large}


_SPECS: tuple[GlueSpec, ...] = (
    GlueSpec(
        key="cola",
        glue_name="CoLA",
        text_fields=("sentence",),
        label_names=("unacceptable", "acceptable"),
        file_format=TsvFormat(
            text_columns=("sentence",),
            names_without_header=("source", "label", "original_label", "sentence"),
            labels_are_ids=True,
        ),
        metric_names=("matthews_correlation",),
        submission_labels="ids",
        description="GLUE CoLA: grammatical acceptability of a sentence (Matthews correlation)",
        published=_published(63.6, 68.0),
        recipe=(1e-5, 16),
    ),
    GlueSpec(
        key="sst2",
        glue_name="SST-2",
        text_fields=("sentence",),
        label_names=("negative", "positive"),
        file_format=TsvFormat(text_columns=("sentence",), labels_are_ids=True),
        submission_labels="ids",
        description="GLUE SST-2: sentiment of a movie-review sentence (accuracy)",
        published=_published(94.8, 96.4),
        recipe=(1e-5, 32),
    ),
    GlueSpec(
        key="mrpc",
        glue_name="MRPC",
        text_fields=("sentence1", "sentence2"),
        label_names=("not_equivalent", "equivalent"),
        file_format=TsvFormat(text_columns=("#1 String", "#2 String"), label_column="Quality", labels_are_ids=True),
        metric_names=("f1", "accuracy"),
        submission_labels="ids",
        description="GLUE MRPC: are two news sentences paraphrases (F1, accuracy)",
        published=_published(90.2, 90.9),
        published_metric="accuracy",
        recipe=(1e-5, 16),
    ),
    GlueSpec(
        key="stsb",
        glue_name="STS-B",
        text_fields=("sentence1", "sentence2"),
        label_names=None,
        file_format=TsvFormat(text_columns=("sentence1", "sentence2"), label_column="score"),
        metric_names=("pearson", "spearmanr"),
        submission_labels="score",
        description="GLUE STS-B: semantic similarity of two sentences, 0-5 (Pearson, Spearman)",
        published=_published(91.2, 92.4),
        recipe=(2e-5, 16),
    ),
    GlueSpec(
        key="qqp",
        glue_name="QQP",
        text_fields=("question1", "question2"),
        label_names=("not_duplicate", "duplicate"),
        file_format=TsvFormat(
            text_columns=("question1", "question2"),
            label_column="is_duplicate",
            index_column="id",
            labels_are_ids=True,
            skip_malformed_rows=True,
        ),
        metric_names=("f1", "accuracy"),
        primary="accuracy",
        submission_labels="ids",
        description="GLUE QQP: are two Quora questions duplicates (F1, accuracy)",
        published=_published(91.9, 92.2),
        recipe=(1e-5, 32),
    ),
    GlueSpec(
        key="mnli",
        glue_name="MNLI",
        text_fields=("premise", "hypothesis"),
        label_names=NLI_LABELS,
        file_format=TsvFormat(text_columns=MNLI_COLUMNS, label_column="gold_label"),
        submission_labels="names",
        description="GLUE MNLI (matched dev/test): entailment, neutral or contradiction (accuracy)",
        splits=MNLI_SPLITS,
        submission_name="MNLI-m",
        published=_published(87.6, 90.2),
        recipe=(1e-5, 32),
    ),
    GlueSpec(
        key="mnli-mm",
        glue_name="MNLI-mm",
        hub_config="mnli",
        text_fields=("premise", "hypothesis"),
        label_names=NLI_LABELS,
        file_format=TsvFormat(text_columns=MNLI_COLUMNS, label_column="gold_label"),
        submission_labels="names",
        description="GLUE MNLI (mismatched dev/test, same training data as glue/mnli) (accuracy)",
        folders=("MNLI",),
        splits=MNLI_MM_SPLITS,
        published=_published(87.6, 90.2),
        recipe=(1e-5, 32),
    ),
    GlueSpec(
        key="qnli",
        glue_name="QNLI",
        text_fields=("question", "sentence"),
        label_names=QNLI_LABELS,
        file_format=TsvFormat(text_columns=("question", "sentence")),
        submission_labels="names",
        description="GLUE QNLI: does the sentence answer the question (accuracy)",
        published=_published(92.8, 94.7),
        recipe=(1e-5, 32),
    ),
    GlueSpec(
        key="rte",
        glue_name="RTE",
        text_fields=("sentence1", "sentence2"),
        label_names=QNLI_LABELS,
        file_format=TsvFormat(text_columns=("sentence1", "sentence2")),
        submission_labels="names",
        description="GLUE RTE: textual entailment (accuracy)",
        published=_published(78.7, 86.6),
        recipe=(2e-5, 16),
    ),
    GlueSpec(
        key="wnli",
        glue_name="WNLI",
        text_fields=("sentence1", "sentence2"),
        label_names=("not_entailment", "entailment"),
        file_format=TsvFormat(text_columns=("sentence1", "sentence2"), labels_are_ids=True),
        submission_labels="ids",
        description="GLUE WNLI: Winograd schema entailment (accuracy)",
    ),
    GlueSpec(
        key="ax",
        glue_name="AX",
        text_fields=("premise", "hypothesis"),
        label_names=NLI_LABELS,
        file_format=TsvFormat(text_columns=MNLI_COLUMNS, label_column=None),
        # The diagnostic set is scored with R3, the Matthews correlation over the three NLI classes.
        metric_names=("matthews_correlation",),
        submission_labels="names",
        description="GLUE diagnostic (AX): unlabelled NLI test set, predicted with an MNLI model",
        folders=("diagnostic", "AX"),
        splits={"test": "test"},
        split_files={"test": ("diagnostic.tsv", "AX.tsv")},
    ),
)

SPECS: Mapping[str, GlueSpec] = {spec.task_name: spec for spec in _SPECS}


# --- loading -------------------------------------------------------------------------------------


def load_glue(task_name: str, source: str | os.PathLike[str] | None, split: str) -> datasets.Dataset:
    """Load one GLUE split with the standard columns ``text``, ``text_pair``, ``label``, ``idx``.

    ``split`` is a split name of the task (``validation_matched``) or a role (``validation``).
    ``source`` is a local GLUE folder, ``"hub"``/``"nyu-mll/glue"``, or None (``$GLUE_DIR``, else the hub).
    """
    spec = _spec(task_name)
    split = _resolve_split(spec, split)
    if source is None:
        source = os.environ.get(GLUE_DIR_VARIABLE) or "hub"
    if str(source) in HUB_SOURCES:
        columns = _read_hub(spec, split)
    else:
        columns = _read_tsv(_find_file(spec, Path(source).expanduser(), split), spec, split)
    return _to_dataset(spec, columns)


def _spec(task_name: str) -> GlueSpec:
    if task_name not in SPECS:
        raise ConfigError(f"unknown GLUE task {task_name!r}", f"use one of {', '.join(SPECS)}")
    return SPECS[task_name]


def _resolve_split(spec: GlueSpec, split: str) -> str:
    if split in spec.splits.values():
        return split
    if split in spec.splits:
        return spec.splits[split]
    known = sorted(set(spec.splits) | set(spec.splits.values()))
    raise DataError(f"{spec.task_name} has no split {split!r}", f"use one of {', '.join(known)}")


def _is_test(split: str) -> bool:
    return split.startswith("test")


def _find_file(spec: GlueSpec, root: Path, split: str) -> Path:
    if not root.is_dir():
        raise DataError(f"GLUE data folder {root} does not exist", SOURCE_HINT)
    names = spec.split_files.get(split) or SPLIT_FILES[split]
    folders = [root / folder for folder in spec.data_folders]
    # The source may also be the task's own folder (".../glue/SST-2").
    if root.name.lower() in {folder.lower() for folder in spec.data_folders}:
        folders.append(root)
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    expected = root / spec.data_folders[0] / names[0]
    raise DataError(f"{spec.task_name} {split} file not found: expected {expected}", SOURCE_HINT)


def _read_tsv(path: Path, spec: GlueSpec, split: str) -> dict[str, list]:
    file_format = spec.file_format
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            try:
                if file_format.names_without_header and not _is_test(split):
                    header = list(file_format.names_without_header)
                else:
                    header = next(reader, None)
                    if header is None:
                        raise DataError(f"{path} is empty", "expected a header row and data rows")
                return _read_rows(reader, header, path, spec, split)
            except csv.Error as exc:
                raise DataError(f"{path}, line {reader.line_num}: cannot read row: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _column(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise DataError(
            f"{path} has no column {name!r} (header: {', '.join(header)})",
            "is this the right file for the task?",
        )
    return header.index(name)


def _read_rows(reader, header: list[str], path: Path, spec: GlueSpec, split: str) -> dict[str, list]:
    file_format = spec.file_format
    text_positions = [_column(header, name, path) for name in file_format.text_columns]
    label_position = None
    if file_format.label_column is not None and (not _is_test(split) or file_format.label_column in header):
        label_position = _column(header, file_format.label_column, path)
    index_position = header.index(file_format.index_column) if file_format.index_column in header else None

    columns: dict[str, list] = {"text": [], "text_pair": [], "label": [], "idx": []}
    skipped = 0
    for row in reader:
        if not row:  # a blank line
            continue
        if len(row) != len(header):
            if file_format.skip_malformed_rows:
                skipped += 1
                continue
            raise DataError(
                f"{path}, line {reader.line_num}: expected {len(header)} tab-separated columns, found {len(row)}",
                "fix or remove the row",
            )
        columns["text"].append(row[text_positions[0]])
        if len(text_positions) == 2:
            columns["text_pair"].append(row[text_positions[1]])
        if label_position is not None:
            columns["label"].append(_parse_label(row[label_position], spec, path, reader.line_num))
        if index_position is None:
            columns["idx"].append(len(columns["idx"]))
        else:
            columns["idx"].append(_parse_index(row[index_position], path, reader.line_num))
    if skipped:
        logger.warning("skipped %d malformed rows in %s (expected %d columns)", skipped, path, len(header))
    if label_position is None:
        del columns["label"]
    if len(text_positions) == 1:
        del columns["text_pair"]
    return columns


def _parse_label(value: str, spec: GlueSpec, path: Path, line: int) -> str | float:
    if spec.label_names is None:
        try:
            return float(value)
        except ValueError:
            raise DataError(f"{path}, line {line}: score {value!r} is not a number") from None
    names = spec.label_names
    if spec.file_format.labels_are_ids:
        if value.isdigit() and int(value) < len(names):
            return names[int(value)]
        allowed = ", ".join(str(i) for i in range(len(names)))
    elif value in names:
        return value
    else:
        allowed = ", ".join(names)
    raise DataError(
        f"label {value!r} in {path}, line {line} is not a {spec.task_name} label",
        f"expected one of {allowed}",
    )


def _parse_index(value: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}, line {line}: index {value!r} is not an integer") from None


def _read_hub(spec: GlueSpec, split: str) -> dict[str, list]:
    import datasets

    try:
        hub = datasets.load_dataset(HUB_DATASET, spec.config, split=split)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot load {HUB_DATASET} ({spec.config}, split {split}) from the hub: {reason}",
            SOURCE_HINT,
        ) from exc
    columns: dict[str, list] = {"text": list(hub[spec.text_fields[0]])}
    if len(spec.text_fields) == 2:
        columns["text_pair"] = list(hub[spec.text_fields[1]])
    labels = list(hub["label"]) if "label" in hub.column_names else []
    # Test splits on the hub carry the placeholder label -1: an unlabelled split.
    if labels and not all(label == -1 for label in labels):
        if spec.label_names is None:
            columns["label"] = [float(label) for label in labels]
        else:
            columns["label"] = [spec.label_names[label] for label in labels]
    columns["idx"] = list(hub["idx"]) if "idx" in hub.column_names else list(range(len(hub)))
    return columns


def _to_dataset(spec: GlueSpec, columns: dict[str, list]) -> datasets.Dataset:
    import datasets

    types = {
        "text": datasets.Value("string"),
        "text_pair": datasets.Value("string"),
        "label": datasets.Value("float64" if spec.label_names is None else "string"),
        "idx": datasets.Value("int64"),
    }
    features = datasets.Features({name: types[name] for name in columns})
    return datasets.Dataset.from_dict(columns, features=features)


# --- metrics -------------------------------------------------------------------------------------


def compute_metrics(metric_names: Sequence[str], predictions, references) -> dict[str, float]:
    """The named official metrics over label ids (floats for STS-B)."""
    return {name: METRICS[name](predictions, references) for name in metric_names}


def glue_average(results: Mapping[str, Mapping[str, float]]) -> float:
    """The GLUE benchmark score of ``results``, on the leaderboard's 0-100 scale.

    ``results`` maps a task (``"glue/mrpc"``, ``"mrpc"`` or ``"MRPC"``) to its metrics as the task's
    metric function returns them: fractions in [0, 1] (correlations in [-1, 1]). Each is multiplied
    by 100. A task's score is the mean of its official metrics (MRPC and QQP: F1 and accuracy; STS-B:
    Pearson and Spearman); MNLI matched and mismatched are averaged into one MNLI score, as the
    benchmark counts MNLI once; the result is the mean over the tasks present. The diagnostic set
    (AX) is not part of the score and is ignored; other metrics in a task's dict (loss ...) are too.
    """
    scores: dict[str, list[float]] = {}
    seen: set[str] = set()
    for name, values in results.items():
        spec = _spec_for_result(name)
        if spec.task_name in seen:
            raise ConfigError(f"GLUE results name {spec.task_name} twice", "give each task once")
        seen.add(spec.task_name)
        if spec.key == "ax":
            continue
        missing = [metric for metric in spec.metric_names if metric not in values]
        if missing:
            raise ConfigError(
                f"GLUE results for {spec.task_name} lack {', '.join(missing)}",
                f"give all of {', '.join(spec.metric_names)}",
            )
        task_score = 100.0 * sum(float(values[metric]) for metric in spec.metric_names)
        benchmark_task = "mnli" if spec.key.startswith("mnli") else spec.key
        scores.setdefault(benchmark_task, []).append(task_score / len(spec.metric_names))
    if not scores:
        raise ConfigError("no GLUE task results to average", f"give results for some of {', '.join(SPECS)}")
    per_task = [sum(values) / len(values) for values in scores.values()]
    return sum(per_task) / len(per_task)


def _spec_for_result(name: str) -> GlueSpec:
    key = name.lower().removeprefix("glue/")
    for spec in _SPECS:
        aliases = {spec.key, spec.glue_name.lower(), (spec.submission_name or spec.glue_name).lower()}
        if key in aliases:
            return spec
    raise ConfigError(f"{name!r} is not a GLUE task", f"use one of {', '.join(SPECS)}")


# --- submission files ----------------------------------------------------------------------------


def write_submission(
    task: Task | str, idx: Sequence[int], predictions: Sequence[Any], directory: str | os.PathLike[str]
) -> Path:
    """Write ``<directory>/<name>.tsv`` in the format the GLUE server expects; return its path.

    ``predictions`` are label ids or label names for classification tasks and scores for STS-B.
    The file has the header ``index<TAB>prediction`` and is replaced atomically.
    """
    spec = _spec(task.name if isinstance(task, Task) else task)
    if len(idx) != len(predictions):
        raise DataError(
            f"{len(predictions)} predictions for {len(idx)} indices in the {spec.task_name} submission",
            "pass one prediction per row",
        )
    lines = ["index\tprediction"]
    lines += [f"{int(index)}\t{_format_prediction(spec, value)}" for index, value in zip(idx, predictions, strict=True)]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.submission_name or spec.glue_name}.tsv"
    _write_atomically(path, "\n".join(lines) + "\n")
    return path


def _format_prediction(spec: GlueSpec, value: Any) -> str:
    if spec.submission_labels == "score":
        score = float(value)
        if math.isnan(score):
            raise DataError(f"{spec.task_name} prediction is NaN", "check the model's outputs")
        return f"{min(max(score, 0.0), 5.0):.3f}"
    names = spec.label_names or ()
    if isinstance(value, str):
        if value not in names:
            raise DataError(f"prediction {value!r} is not a {spec.task_name} label", f"use one of {', '.join(names)}")
        label_id = names.index(value)
    else:
        label_id = int(value)
        if not 0 <= label_id < len(names):
            raise DataError(f"prediction {value!r} is not a {spec.task_name} label id", f"use 0 to {len(names) - 1}")
    return names[label_id] if spec.submission_labels == "names" else str(label_id)


def _write_atomically(path: Path, text: str) -> None:
    from roberta_ft.artifacts import write_text

    write_text(path, text)  # complete or not there, with the permissions a plain open() gives


# --- the tasks -----------------------------------------------------------------------------------


def _recipe(spec: GlueSpec) -> dict[str, dict[str, Any]]:
    if spec.recipe is None:
        return {}
    learning_rate, batch_size = spec.recipe
    # fairseq publishes one table (tuned with roberta.large) and uses it for both sizes.
    one = {"learning_rate": learning_rate, "batch_size": batch_size, **_SHARED_RECIPE}
    # Each recipe also names its base model, used when the user gives no --model.
    return {name: {"model": name, **one} for name in ("roberta-base", "roberta-large")}


def _task(spec: GlueSpec) -> Task:
    return Task(
        name=spec.task_name,
        metrics=functools.partial(compute_metrics, spec.metric_names),
        text_fields=spec.text_fields,
        label_names=spec.label_names,
        problem_type="regression" if spec.label_names is None else "single_label",
        load=functools.partial(load_glue, spec.task_name),
        primary_metric=spec.primary_metric,
        description=spec.description,
        splits=dict(spec.splits),
        known_datasets=(HUB_DATASET,),
        default_source=None,
        recipes=_recipe(spec),
        published=dict(spec.published),
        published_metric=spec.reference_metric if spec.published else None,
        published_source="fairseq examples/roberta/README.md (dev set, single-task fine-tuning)",
        # How `roberta-ft predict ... --submission DIR` writes this task's leaderboard file.
        write_submission=write_submission,
        # GLUE's own data, for GLUE tools and users: file layout and leaderboard names.
        extras={
            "glue_name": spec.glue_name,
            "data_folder": spec.data_folders[0],
            "submission_name": spec.submission_name or spec.glue_name,
            "hub_config": spec.config,
            "glue_metrics": spec.metric_names,
            "submission_labels": spec.submission_labels,
        },
    )


TASKS: list[Task] = [_task(spec) for spec in _SPECS]
