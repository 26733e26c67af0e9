"""Untrusted files are read as data: no pickle, no remote code unless asked, config files never executed."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from tests.helpers import write_reviews

runner = CliRunner()


class _Payload:
    """Unpickling this writes a file: the proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_a_pickled_weights_file_is_never_loaded(trained_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_dir, model)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    with open(model / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"weights": _Payload(marker)}, handle)
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\n")
    result = runner.invoke(app, ["--quiet", "predict", str(model), str(texts)])
    assert result.exit_code == 2 and "model.safetensors" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("suffix, text", [(".yaml", "model: !!python/object/apply:os.system ['touch {marker}']\n")])
def test_a_config_file_is_parsed_as_data_never_run(tmp_path, suffix, text):
    marker = tmp_path / "PWNED"
    config = tmp_path / f"settings{suffix}"
    config.write_text(text.format(marker=marker))
    result = runner.invoke(app, ["--quiet", "train", "data.csv", "-o", str(tmp_path / "o"), "--config", str(config)])
    assert result.exit_code == 2 and "cannot parse config file" in result.stderr
    assert not marker.exists()


@pytest.fixture()
def recorded_loads(monkeypatch) -> list[tuple[str, dict]]:
    """Every from_pretrained call of the Auto classes, with its keyword arguments."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    calls: list[tuple[str, dict]] = []
    for auto in (AutoTokenizer, AutoModelForSequenceClassification):
        original = auto.from_pretrained.__func__

        def recording(cls, *args, _original=original, **kwargs):
            calls.append((cls.__name__, dict(kwargs)))
            kwargs["trust_remote_code"] = False  # nothing here needs remote code; never actually allow it
            return _original(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(recording))
    return calls


@pytest.mark.parametrize("trust", [False, True])
def test_trust_remote_code_is_off_unless_asked_and_reaches_every_load(trained_dir, tmp_path, recorded_loads, trust):
    flag = ["--trust-remote-code"] if trust else []
    data = write_reviews(tmp_path / "r.csv", n=40)
    texts = tmp_path / "texts.txt"
    texts.write_text("the film was great\n")
    for args in (
        ["eval", str(trained_dir), str(data), *flag],
        ["predict", str(trained_dir), str(texts), *flag],
        ["train", str(data), "-o", str(tmp_path / "o"), "--model", str(trained_dir), "--epochs", "1", *flag],
    ):
        result = runner.invoke(app, ["--quiet", *args])
        assert result.exit_code == 0, (args, result.output)
    loaded = {name for name, _ in recorded_loads}
    assert loaded == {"AutoTokenizer", "AutoModelForSequenceClassification"} and len(recorded_loads) >= 6
    assert all(kwargs.get("trust_remote_code") is trust for _, kwargs in recorded_loads)
    assert all(kwargs.get("use_safetensors") is True for name, kwargs in recorded_loads if name.startswith("AutoModel"))
