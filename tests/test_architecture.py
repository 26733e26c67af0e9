"""The package's shape: no import cycles, commands are leaves, the problem kinds and the inference seam.

Also the four bugs the architecture work found by reading: the Python API ignoring --recipe, seeds.json
naming another best-epoch metric than metrics.json, long texts bypassing the token cache, and task-split
prediction refusing the options file prediction takes.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

import roberta_ft
from roberta_ft.config import PredictConfig, TrainConfig
from tests.helpers import write_reviews

PACKAGE = Path(roberta_ft.__file__).resolve().parent
TASKS_PACKAGE = PACKAGE.parent / "tasks"
# The commands: what the CLI calls. Nothing below them imports them; they may compose each other
# (seeds trains once per seed, tune once per trial, glue-report evaluates once per task).
COMMANDS = {"train", "evaluate", "predict", "seeds", "glue_report", "export", "serve", "tune", "pretrain", "audit"}
ENTRY = {"cli", "cli_docs", "__main__"}  # the CLI itself
COMPOSITIONS = {("seeds", "train"), ("glue_report", "evaluate"), ("tune", "train"), ("audit", "train")}


def _module_files() -> dict[str, Path]:
    found = {}
    for root, name in ((PACKAGE, "roberta_ft"), (TASKS_PACKAGE, "roberta_ft_tasks")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([name, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `module` imports at run time (anywhere in the file; TYPE_CHECKING blocks aside),
    with the packages whose __init__ such an import runs."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if not module.startswith(base + "."):  # `from roberta_ft.data import x` inside data: no __init__ runs
                targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    edges = set()
    for target in targets:
        if target not in known:
            continue
        edges.add(target)
        parts = target.split(".")
        for depth in range(2, len(parts)):  # the packages above it run their __init__ first
            parent = ".".join(parts[:depth])
            if parent in known and not module.startswith(parent + ".") and module != parent:
                edges.add(parent)
    edges.discard(module)
    return edges


def import_graph() -> dict[str, set[str]]:
    files = _module_files()
    return {module: _imports(module, path, set(files)) for module, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_graph_sees_lazy_imports_and_finds_a_planted_cycle():
    graph = import_graph()
    assert "roberta_ft.loop" in graph["roberta_ft.train"]  # imported inside train(), and still seen
    assert "roberta_ft.data" in graph["roberta_ft.train"]  # the package whose __init__ runs first
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_commands_are_leaves():
    graph = import_graph()
    wrong = []
    for module, targets in graph.items():
        short = module.removeprefix("roberta_ft.")
        if short in ENTRY:
            continue
        for target in targets:
            command = target.removeprefix("roberta_ft.")
            if command in COMMANDS and (short, command) not in COMPOSITIONS:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "; ".join(sorted(wrong))


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for other in graph.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def test_the_registry_depends_on_nothing_above_it():
    """Plugins import the registry first: it may import only the error types."""
    assert import_graph()["roberta_ft.registry"] <= {"roberta_ft.errors"}


def test_no_inference_path_imports_the_training_loop():
    """predict, eval, serve and export reach the network through forward.py, never loop.py."""
    graph = import_graph()
    for module in (
        "roberta_ft.inference",
        "roberta_ft.forward",
        "roberta_ft.serve",
        "roberta_ft.predict",
        "roberta_ft.evaluate",
    ):
        assert "roberta_ft.loop" not in _reachable(graph, module), module


def test_the_problem_kind_is_decided_in_two_places():
    """Only problems.py compares against the kind names or reads problem_type; everything else asks the problem."""
    kinds = {"single_label", "multi_label", "regression", "multi_label_classification", "single_label_classification"}
    offenders = []
    for module, path in _module_files().items():
        if module in ("roberta_ft.problems", "roberta_ft_tasks.glue"):  # GLUE declares its tasks' kinds
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                values = [node.left, *node.comparators]
                if any(isinstance(v, ast.Constant) and v.value in kinds for v in values):
                    offenders.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("multi_label", "is_regression"):
                # Defined in config (the flag) and registry (Task); the data's labels are numbers for a
                # task that predicts scores (sources), and a model must fit its task (inference.align).
                allowed = (
                    "roberta_ft.config",
                    "roberta_ft.registry",
                    "roberta_ft.data.sources",
                    "roberta_ft.inference",
                )
                if module not in allowed:
                    offenders.append(f"{module}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


# ------------------------------------------------------------------------------------------ a fourth kind


def test_a_fourth_problem_kind_plugs_in_from_one_place(tmp_path, monkeypatch):
    """A new kind is a Problem subclass listed in problems.KINDS: train, eval and predict need nothing else."""
    import torch

    from roberta_ft import problems
    from roberta_ft.evaluate import evaluate
    from roberta_ft.metrics import classification_metrics
    from roberta_ft.predict import predict
    from roberta_ft.registry import Task, register_task
    from roberta_ft.train import train

    calls = {"loss": 0}

    class Smoothed(problems.SingleLabel):
        """Single-label with label smoothing: only the loss differs."""

        kind = "smoothed_single_label"

        def loss(self, logits, targets):
            calls["loss"] += 1
            return torch.nn.functional.cross_entropy(logits.float(), targets, label_smoothing=0.1)

    monkeypatch.setitem(problems.KINDS, Smoothed.kind, Smoothed)
    task = Task(name="smoothed-test", metrics=classification_metrics(), problem_type=Smoothed.kind)
    register_task(task, source="test")
    try:
        data = write_reviews(tmp_path / "r.csv", n=240, seed=2, text="text", label="label")
        result = train(TrainConfig(data=str(data), output=str(tmp_path / "m"), task=task.name, model="tiny", epochs=4))
        assert calls["loss"] > 0 and result.metrics["best"]["accuracy"] >= 0.9
        run = json.loads((tmp_path / "m" / "run_config.json").read_text())
        assert run["problem_type"] == "smoothed_single_label"
        from roberta_ft.config import EvalConfig

        assert evaluate(EvalConfig(model_dir=str(tmp_path / "m"), data=str(data))).metrics["accuracy"] >= 0.9
        texts = tmp_path / "t.txt"
        texts.write_text("the movie was great and it was great\nthe plot was awful and it was awful\n")
        out = tmp_path / "p.jsonl"
        predict(PredictConfig(model_dir=str(tmp_path / "m"), input=str(texts), output=str(out)))
        assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == ["pos", "neg"]
    finally:
        from roberta_ft import registry

        registry._registry.pop(task.name, None)
        registry._sources.pop(task.name, None)


# ------------------------------------------------------------------------------------------ the four bugs


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory) -> Path:
    from tests.glue_fixtures import write_glue_dir

    return write_glue_dir(tmp_path_factory.mktemp("glue"))


def test_the_python_api_applies_a_recipe_like_the_cli(glue_dir, tmp_path):
    from roberta_ft.train import train

    output = tmp_path / "cola"
    train(
        TrainConfig(
            data="glue/cola", output=str(output), recipe="roberta-base", model="tiny", epochs=1, data_dir=str(glue_dir)
        )
    )
    settings = json.loads((output / "run_config.json").read_text())["config"]
    # fairseq's CoLA recipe: lr 1e-5, batch 16, warm-up 6%, no clipping, 512 tokens; --epochs 1 given wins.
    assert (settings["learning_rate"], settings["batch_size"], settings["max_length"]) == (1e-5, 16, 512)
    assert settings["max_grad_norm"] == 0.0 and settings["epochs"] == 1 and settings["model"] == "tiny"
    # And precedence: what is given beats the recipe, as with flags.
    given = TrainConfig(data="glue/cola", output="o", recipe="roberta-base", batch_size=8, model="tiny").resolved()
    assert given.batch_size == 8 and given.learning_rate == 1e-5


@pytest.mark.parametrize(
    ("changes", "metric"), [({"metric_for_best": "macro_f1"}, "macro_f1"), ({"multi_label": True}, "micro_f1")]
)
def test_seeds_json_names_the_metric_that_picked_each_best_epoch(tmp_path, changes, metric):
    from rich.console import Console

    from roberta_ft.console import seeds_table
    from roberta_ft.seeds import train_seeds

    data = write_reviews(tmp_path / "r.csv", n=80, seed=3)
    config = TrainConfig(data=str(data), output=str(tmp_path / "s"), model="tiny", epochs=1, **changes)
    result = train_seeds(config, [1, 2])
    summary = json.loads((tmp_path / "s" / "seeds.json").read_text())
    for seed in (1, 2):
        run_metrics = json.loads((tmp_path / "s" / f"seed-{seed}" / "metrics.json").read_text())
        assert run_metrics["primary_metric"] == metric
    assert summary["primary_metric"] == metric == result.primary_metric
    console = Console(width=200, record=True)
    console.print(seeds_table(summary))
    marked = [line for line in console.export_text().splitlines() if " * " in line or "* │" in line]
    assert len(marked) == 1 and metric in marked[0]


@pytest.mark.parametrize("strategy", ["head-tail", "sliding"])
def test_long_text_strategies_read_their_tokens_from_the_cache(tmp_path, counted_tokenize, strategy):
    from roberta_ft.train import train

    calls = counted_tokenize
    data = write_reviews(tmp_path / "r.csv", n=60, seed=4)
    for run in ("a", "b"):
        train(
            TrainConfig(
                data=str(data), output=str(tmp_path / run), model="tiny", epochs=1, max_length=12, long_text=strategy
            )
        )
    assert calls == [54, 6]  # the second run tokenized nothing: both splits came from the cache
    # Another strategy or stride is another entry, never a stale hit.
    changed = {"long_text": "truncate"} if strategy == "head-tail" else {"long_text": "sliding", "stride": 4}
    train(TrainConfig(data=str(data), output=str(tmp_path / "c"), model="tiny", epochs=1, max_length=12, **changed))
    assert calls == [54, 6, 54, 6]


def test_task_split_prediction_takes_the_options_file_prediction_takes(glue_dir, tmp_path):
    from roberta_ft.predict import predict
    from roberta_ft.train import train

    model = train(
        TrainConfig(data="glue/sst2", output=str(tmp_path / "m"), model="tiny", epochs=1, data_dir=str(glue_dir))
    ).output_dir
    split = tmp_path / "split.jsonl"
    predict(
        PredictConfig(
            model_dir=str(model), input="glue/sst2", split="validation", data_dir=str(glue_dir), output=str(split),
            top_k=2, long_text="sliding", stride=4, max_length=8,
        )
    )  # fmt: skip
    rows = [json.loads(line) for line in split.read_text().splitlines()]
    assert rows and all(len(row["labels"]) == 2 and len(row["probabilities"]) == 2 for row in rows)
    # The same texts as a text file, with the same options: the same predictions.
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(row["text"] + "\n" for row in rows), encoding="utf-8")
    by_file = tmp_path / "file.jsonl"
    predict(
        PredictConfig(
            model_dir=str(model), input=str(texts), output=str(by_file), top_k=2, long_text="sliding", stride=4,
            max_length=8,
        )
    )  # fmt: skip
    file_rows = [json.loads(line) for line in by_file.read_text().splitlines()]
    assert [(r["labels"], r["probabilities"]) for r in rows] == [(r["labels"], r["probabilities"]) for r in file_rows]


def test_test_files_share_helpers_through_one_module():
    """A test file imports what it shares from tests.helpers (or the GLUE fixtures), never from another test
    file or from conftest.py; and no test names a fixed port (free_port() finds a free one)."""
    import re

    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                if any(name.startswith(("tests.test_", "tests.conftest")) for name in names):
                    offenders.append(f"{path.name}:{node.lineno} from {node.module}")
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r'"--(?:master-)?port",\s*"\d+"', text)]
    assert not offenders, offenders
