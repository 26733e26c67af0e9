"""The real GLUE dev sets in ../shared/data/glue (skipped where that folder is absent).

A tiny model is trained for one epoch on the first 300 training rows of each task (in a temporary
GLUE folder beside the real dev file), then `roberta-ft eval` runs on the full real dev set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import TrainConfig
from roberta_ft.train import train

REAL_GLUE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "glue"
TRAIN_ROWS = 300

pytestmark = [pytest.mark.skipif(not REAL_GLUE.is_dir(), reason=f"no real GLUE data at {REAL_GLUE}"), pytest.mark.slow]

CASES = [
    # task, folder, header row in train.tsv, metric names, dev rows
    ("glue/sst2", "SST-2", True, {"accuracy"}, 872),
    ("glue/cola", "CoLA", False, {"matthews_correlation"}, 1_043),
    ("glue/mrpc", "MRPC", True, {"f1", "accuracy"}, 408),
    ("glue/stsb", "STS-B", True, {"pearson", "spearmanr"}, 1_500),
]


def small_glue_dir(root: Path, folder: str, header: bool) -> Path:
    """<root>/<folder>/train.tsv with the first rows of the real file; dev.tsv copied whole."""
    target = root / folder
    target.mkdir(parents=True)
    with open(REAL_GLUE / folder / "train.tsv", encoding="utf-8", newline="") as source:
        lines = [line for _, line in zip(range(TRAIN_ROWS + int(header)), source, strict=False)]
    (target / "train.tsv").write_text("".join(lines), encoding="utf-8", newline="")
    shutil.copyfile(REAL_GLUE / folder / "dev.tsv", target / "dev.tsv")
    return root


@pytest.mark.parametrize(("task", "folder", "header", "metrics", "dev_rows"), CASES, ids=[c[0] for c in CASES])
def test_eval_on_the_real_dev_set(tmp_path, task, folder, header, metrics, dev_rows):
    data_dir = small_glue_dir(tmp_path / "glue", folder, header)
    trained = train(
        TrainConfig(
            data=task, output=str(tmp_path / "model"), model="tiny", epochs=1, data_dir=str(data_dir), max_length=64
        )
    )
    run = json.loads((trained.output_dir / "run_config.json").read_text())
    assert run["num_train_examples"] == TRAIN_ROWS and run["num_validation_examples"] == dev_rows

    result = CliRunner().invoke(
        app, ["eval", str(trained.output_dir), task, "--data-dir", str(REAL_GLUE), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["task"] == task and evaluated["split"] == "validation"
    assert evaluated["num_examples"] == dev_rows
    assert set(evaluated["metrics"]) == metrics
    # The saved model is the best (only) epoch: eval reproduces the training-time validation scores.
    best = trained.metrics["best"]
    for name, value in evaluated["metrics"].items():
        assert value == pytest.approx(best[name], abs=1e-6), name
    print(task, {name: round(value, 4) for name, value in evaluated["metrics"].items()})
