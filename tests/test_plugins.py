"""Task plugins: entry-point discovery (as a third party would install one), loud registry errors, --metric."""

from __future__ import annotations

import sys
import textwrap

import pytest

from roberta_ft import registry
from roberta_ft.errors import ConfigError, UnknownTaskError
from roberta_ft.metrics import classification_metrics
from roberta_ft.registry import Task


@pytest.fixture
def fresh_registry():
    registry._reset_for_tests()
    yield
    registry._reset_for_tests()


def _install_fake_distribution(root, monkeypatch):
    """A minimal installed distribution on sys.path that declares a `roberta_ft.tasks` entry point."""
    (root / "acme_tasks.py").write_text(
        textwrap.dedent(
            """
            from roberta_ft.metrics import classification_metrics
            from roberta_ft.registry import Task

            TASK = Task(name="acme-spam", text_fields=("text",), label_names=("ham", "spam"),
                        metrics=classification_metrics(2), description="Acme's spam filter")
            """
        )
    )
    dist = root / "acme_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[roberta_ft.tasks]\nacme-spam = acme_tasks:TASK\n")
    monkeypatch.syspath_prepend(str(root))


def test_third_party_plugin_is_discovered_and_trains(tmp_path, monkeypatch, fresh_registry):
    import csv

    from roberta_ft.config import TrainConfig
    from roberta_ft.train import train

    _install_fake_distribution(tmp_path, monkeypatch)
    tasks = registry.available_tasks()
    assert "acme-spam" in tasks and "classification" in tasks  # built-ins come through the same group
    assert tasks["acme-spam"].label_names == ("ham", "spam")

    data = tmp_path / "mail.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):
            writer.writerow([f"win money now {i}" if i % 2 else f"lunch at noon {i}", "spam" if i % 2 else "ham"])
    result = train(TrainConfig(data=str(data), output=str(tmp_path / "o"), model="tiny", task="acme-spam", epochs=1))
    assert result.metrics["task"] == "acme-spam"
    sys.modules.pop("acme_tasks", None)


def test_duplicate_task_names_raise(fresh_registry):
    task = Task(name="dup", metrics=classification_metrics())
    registry.register_task(task)
    with pytest.raises(ConfigError, match="registered twice"):
        registry.register_task(Task(name="dup", metrics=classification_metrics()))


def test_unknown_task_lists_tasks_and_suggests_the_closest():
    with pytest.raises(UnknownTaskError) as error:
        registry.get_task("sentimnt")
    message = error.value.one_line()
    assert "did you mean 'sentiment'" in message and "classification" in message


def test_local_evaluate_module_as_extra_metric(tmp_path):
    from roberta_ft.config import TrainConfig
    from roberta_ft.train import train
    from tests.helpers import write_reviews

    module = tmp_path / "share_correct.py"
    module.write_text(
        textwrap.dedent(
            """
            import datasets
            import evaluate


            class ShareCorrect(evaluate.Metric):
                def _info(self):
                    return evaluate.MetricInfo(
                        description="share of correct predictions", citation="", inputs_description="ids",
                        features=datasets.Features(
                            {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
                        ),
                    )

                def _compute(self, predictions, references):
                    return {"share_correct": sum(p == r for p, r in zip(predictions, references)) / len(references)}
            """
        )
    )
    data = write_reviews(tmp_path / "r.csv", n=80)
    result = train(TrainConfig(data=str(data), output=str(tmp_path / "o"), model="tiny", epochs=1, metric=str(module)))
    best = result.metrics["best"]
    assert best["share_correct"] == pytest.approx(best["accuracy"])
