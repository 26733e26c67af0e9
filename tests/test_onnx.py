"""ONNX export and the onnx backend: the same rows as torch fp32 for every predict option, clear errors, no torch."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import EvalConfig, ExportConfig, PredictConfig, TrainConfig
from roberta_ft.errors import ConfigError, ModelLoadError
from tests.glue_fixtures import write_glue_dir
from tests.helpers import (
    Server,
    long_review,
    predict_rows,
    review,
    write_long,
    write_pairs,
    write_reviews,
    write_topics,
)

pytest.importorskip("onnxruntime")
runner = CliRunner()


def _train_and_export(root: Path, name: str, **settings) -> Path:
    from roberta_ft.export import export
    from roberta_ft.train import train

    model = train(TrainConfig(output=str(root / name), model="tiny", seed=1, **settings)).output_dir
    export(ExportConfig(model_dir=str(model)))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny models of every kind, each exported into its own directory (fp32 and int8)."""
    root = tmp_path_factory.mktemp("onnx")
    glue = write_glue_dir(root / "glue")
    return {
        "single": _train_and_export(root, "single", data=str(write_reviews(root / "r.csv")), epochs=4),
        "pair": _train_and_export(root, "pair", data=str(write_pairs(root / "p.csv")), epochs=5),
        "multi": _train_and_export(
            root, "multi", data=str(write_topics(root / "t.csv", 200, seed=0)), epochs=6, multi_label=True
        ),
        "sliding": _train_and_export(
            root,
            "sliding",
            data=str(write_long(root / "l.csv", 120, seed=0)),
            epochs=4,
            max_length=24,
            long_text="sliding",
        ),  # fmt: skip
        "regression": _train_and_export(root, "regression", data="glue/stsb", data_dir=str(glue), epochs=1),
        "sst2": _train_and_export(root, "sst2", data="glue/sst2", data_dir=str(glue), epochs=1),
        "glue": glue,
    }


def _texts(path: Path, kind: str) -> Path:
    rng = random.Random(5)
    if kind == "pair":
        lines = [
            f"the plot was {rng.choice(['dull', 'great'])}\t{review(rng, rng.choice(['pos', 'neg']))}"
            for _ in range(30)
        ]
    elif kind == "multi":
        lines = ["the match and the election", "a new album", "software update", "the match", ""] * 6
    elif kind == "sliding":
        lines = [long_review(rng, rng.choice(["pos", "neg"])) for _ in range(20)]
    else:
        lines = [review(rng, rng.choice(["pos", "neg"])) for _ in range(40)] + ["", "a"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="," if path.suffix == ".csv" else "\t"))


def _same_rows(torch_rows: list[dict], onnx_rows: list[dict]) -> None:
    """Same keys, texts and labels; probabilities and scores within 1e-4."""
    assert len(torch_rows) == len(onnx_rows)
    for a, b in zip(torch_rows, onnx_rows, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key in ("probability", "score"):
                if a[key] in ("", None):
                    assert b[key] in ("", None)
                else:
                    assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4)
            elif key == "probabilities":  # a JSON list, or joined by | in CSV/TSV
                first, second = (
                    [float(v) for v in (x.split("|") if isinstance(x, str) else x) if v != ""] for x in (a[key], b[key])
                )
                assert np.allclose(first, second, atol=1e-4)
            else:
                assert a[key] == b[key], (key, a, b)


@pytest.mark.parametrize(
    ("kind", "options", "suffix"),
    [
        ("single", {}, ".jsonl"),
        ("single", {"top_k": 2}, ".csv"),
        ("single", {"chunk_lines": 7, "batch_size": 4}, ".tsv"),  # streamed in small chunks: input order kept
        ("pair", {}, ".jsonl"),
        ("multi", {}, ".jsonl"),
        ("multi", {"threshold": 0.3, "top_k": 1}, ".csv"),
        ("sliding", {}, ".jsonl"),
        ("single", {"long_text": "head-tail", "max_length": 10}, ".jsonl"),
        ("regression", {}, ".jsonl"),
    ],
)
def test_every_predict_option_gives_the_rows_of_torch_fp32(models, tmp_path, kind, options, suffix):
    texts = _texts(tmp_path / "in.txt", "single" if kind == "regression" else kind)
    if kind == "regression":  # an STS-B model reads pairs
        texts.write_text("".join(f"{line}\t{line[::-1]}\n" for line in texts.read_text().splitlines() if line))
    outputs = {}
    for backend, precision in (("torch", "fp32"), ("onnx", "fp32")):
        out = tmp_path / f"{backend}{suffix}"
        predict_config = PredictConfig(
            model_dir=str(models[kind]), input=str(texts), output=str(out), backend=backend, precision=precision,
            **options,
        )  # fmt: skip
        from roberta_ft.predict import predict

        predict(predict_config)
        outputs[backend] = _rows(out)
    _same_rows(outputs["torch"], outputs["onnx"])


def test_stdout_rows_are_the_same(models, tmp_path):
    from roberta_ft.predict import predict

    texts = _texts(tmp_path / "in.txt", "single")
    printed = {}
    for backend in ("torch", "onnx"):
        buffer = io.StringIO()
        predict(
            PredictConfig(model_dir=str(models["single"]), input=str(texts), backend=backend, precision="fp32"), buffer
        )
        printed[backend] = [line.split("\t") for line in buffer.getvalue().splitlines()]
    assert [row[0] for row in printed["torch"]] == [row[0] for row in printed["onnx"]]
    for a, b in zip(printed["torch"], printed["onnx"], strict=True):
        if len(a) > 1 and a[1]:
            assert float(a[1]) == pytest.approx(float(b[1]), abs=1e-4)


def test_export_round_trip_and_int8(models, tmp_path):
    model = models["single"]
    record = json.loads((model / "onnx_export.json").read_text())
    assert record["checks"]["fp32"]["max_abs_diff"] < 1e-4
    assert {"fp32", "int8"} == set(record["files"])
    texts = _texts(tmp_path / "in.txt", "single")
    from roberta_ft.predict import predict

    labels = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.jsonl"
        predict(
            PredictConfig(model_dir=str(model), input=str(texts), output=str(out), backend="onnx", precision=precision)
        )
        labels[precision] = [row.get("label") for row in _rows(out)]
    agree = np.mean([a == b for a, b in zip(labels["fp32"], labels["int8"], strict=True)])
    assert agree >= 0.9  # int8 keeps the labels of a clearly separable task


def test_int8_schemes_dynamic_for_a_fine_tuned_model_blockwise_and_full(models, tmp_path):
    import onnx

    from roberta_ft.export import BLOCKWISE_BLOCK, export

    model = models["single"]
    layers = json.loads((model / "config.json").read_text())["num_hidden_layers"]

    def nodes(path: Path) -> list:
        return list(onnx.load(str(path)).graph.node)

    # A fine-tuned model: dynamic, the two residual projections of each layer kept in fp32.
    record = json.loads((model / "onnx_export.json").read_text())
    kept = record["kept_fp32"]
    assert record["int8_scheme"] == "dynamic" and len(kept) == 2 * layers and "in fp32" in record["quantization"]
    assert set(kept) <= {node.name for node in nodes(model / "model_quantized.onnx") if node.op_type == "MatMul"}
    assert record["blockwise_int8"] == []
    # int8-blockwise: every matrix product with a weight is an 8-bit MatMulNBits at accuracy level 4 (int8
    # arithmetic, activations quantized per row and block); none is left a float MatMul.
    fp32 = onnx.load(str(model / "model.onnx")).graph
    weights = {initializer.name for initializer in fp32.initializer}
    products = {node.name for node in fp32.node if node.op_type == "MatMul" and node.input[1] in weights}
    blockwise = tmp_path / "blockwise"
    export(ExportConfig(model_dir=str(model), output=str(blockwise), quantize="int8-blockwise"))
    record = json.loads((blockwise / "onnx_export.json").read_text())
    assert record["int8_scheme"] == "blockwise" and set(record["blockwise_int8"]) == products
    quantized = [node for node in nodes(blockwise / "model_quantized.onnx") if node.op_type == "MatMulNBits"]
    assert len(quantized) == len(products) and "MatMulNBits" in record["quantization"]
    for node in quantized:
        attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
        assert attributes["bits"] == 8 and attributes["accuracy_level"] == 4
        assert attributes["block_size"] == record["int8_block_size"] == BLOCKWISE_BLOCK
    assert not {node.name for node in nodes(blockwise / "model_quantized.onnx") if node.op_type == "MatMul"} & products
    # int8-full: every product dynamic, nothing kept.
    full = tmp_path / "full"
    export(ExportConfig(model_dir=str(model), output=str(full), quantize="int8-full"))
    record = json.loads((full / "onnx_export.json").read_text())
    assert record["int8_scheme"] == "full" and record["kept_fp32"] == [] and record["blockwise_int8"] == []
    assert not set(kept) & {node.name for node in nodes(full / "model_quantized.onnx") if node.op_type == "MatMul"}
    texts = _texts(tmp_path / "in.txt", "single")
    from roberta_ft.predict import predict

    for directory, name in ((model, "dynamic"), (blockwise, "blockwise"), (full, "full")):
        predict(
            PredictConfig(
                model_dir=str(directory), input=str(texts), output=str(tmp_path / f"{name}.jsonl"), backend="onnx"
            )
        )
    for name in ("dynamic", "full"):  # the int8 files label a clearly separable task alike
        pairs = zip(_rows(tmp_path / "blockwise.jsonl"), _rows(tmp_path / f"{name}.jsonl"), strict=True)
        assert np.mean([a.get("label") == b.get("label") for a, b in pairs]) >= 0.9, name


def test_blockwise_without_onnx_ir_is_one_line_and_writes_nothing(models, tmp_path, monkeypatch):
    from roberta_ft.errors import ConfigError
    from roberta_ft.export import export

    monkeypatch.setitem(sys.modules, "onnx_ir", None)  # as if the package were not installed
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match="'onnx_ir' package"):
        export(ExportConfig(model_dir=str(models["single"]), output=str(target), quantize="int8-blockwise"))
    assert not (target / "model.onnx").exists() and not (target / "model_quantized.onnx").exists()


def test_export_to_another_folder_makes_a_model_dir_for_the_onnx_backend(models, tmp_path):
    from roberta_ft.export import export
    from roberta_ft.predict import predict

    target = tmp_path / "deploy"
    result = export(ExportConfig(model_dir=str(models["single"]), output=str(target), quantize="none"))
    assert set(result.files) == {"fp32"}
    names = {path.name for path in target.iterdir()}
    assert {"model.onnx", "config.json", "tokenizer.json", "run_config.json", "onnx_export.json"} <= names
    assert "model.safetensors" not in names and "model_quantized.onnx" not in names
    texts = _texts(tmp_path / "in.txt", "single")
    predict(PredictConfig(model_dir=str(target), input=str(texts), output=str(tmp_path / "o.jsonl"), backend="onnx"))
    with pytest.raises(ConfigError, match="already exists.*--overwrite"):
        export(ExportConfig(model_dir=str(models["single"]), output=str(target), quantize="none"))


def test_the_graph_has_the_inputs_optimum_reads(models):
    import onnx

    graph = onnx.load(str(models["single"] / "model.onnx")).graph
    inputs = {item.name: [d.dim_param or d.dim_value for d in item.type.tensor_type.shape.dim] for item in graph.input}
    assert inputs == {
        "input_ids": ["batch_size", "sequence_length"],
        "attention_mask": ["batch_size", "sequence_length"],
    }
    assert [item.name for item in graph.output] == ["logits"]


def test_eval_through_onnx_gives_torch_fp32_metrics(models, tmp_path):
    from roberta_ft.evaluate import evaluate

    data = write_reviews(tmp_path / "test.csv", n=60, seed=9)
    metrics = {
        backend: evaluate(
            EvalConfig(model_dir=str(models["single"]), data=str(data), backend=backend, precision="fp32")
        ).metrics
        for backend in ("torch", "onnx")
    }
    assert metrics["torch"] == pytest.approx(metrics["onnx"], abs=1e-6)


def test_glue_submission_through_onnx(models, tmp_path):
    from roberta_ft.predict import predict

    files = {}
    for backend in ("torch", "onnx"):
        result = predict(
            PredictConfig(
                model_dir=str(models["sst2"]), input="glue/sst2", split="test", data_dir=str(models["glue"]),
                submission=str(tmp_path / backend), backend=backend, precision="fp32",
            )
        )  # fmt: skip
        files[backend] = Path(result.submission).read_text()
    assert files["torch"] == files["onnx"] and files["onnx"].startswith("index\tprediction\n")


def test_the_onnx_path_imports_neither_torch_nor_transformers(models, tmp_path):
    texts = _texts(tmp_path / "in.txt", "single")
    code = (
        "import sys\nfrom roberta_ft.cli import main\n"
        f"sys.argv = ['roberta-ft', '-q', 'predict', {str(models['single'])!r}, {str(texts)!r}, '--backend', 'onnx',"
        f" '--output', {str(tmp_path / 'o.jsonl')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'accelerate', 'datasets'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert len(_rows(tmp_path / "o.jsonl")) == len(texts.read_text().splitlines())


# ------------------------------------------------------------------------------------------ errors


def _one_error_line(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_without_the_extra_one_line_names_it(models, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnxruntime", "onnx"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.delitem(sys.modules, "onnx", raising=False)
    texts = _texts(tmp_path / "in.txt", "single")
    line = _one_error_line(runner.invoke(app, ["predict", str(models["single"]), str(texts), "--backend", "onnx"]))
    assert 'pip install "roberta-ft[onnx]"' in line
    line = _one_error_line(runner.invoke(app, ["export", str(models["single"]), "--output", str(tmp_path / "x")]))
    assert 'pip install "roberta-ft[onnx]"' in line and not (tmp_path / "x").exists()


def test_a_model_without_onnx_files_names_the_export_command(trained_dir, tmp_path):
    texts = _texts(tmp_path / "in.txt", "single")
    line = _one_error_line(runner.invoke(app, ["predict", str(trained_dir), str(texts), "--backend", "onnx"]))
    assert "has no ONNX model" in line and f"roberta-ft export {trained_dir}" in line


def test_a_corrupt_onnx_file_is_one_clear_line(models, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["single"], broken)
    (broken / "model_quantized.onnx").write_bytes(b"this is not a protobuf")
    texts = _texts(tmp_path / "in.txt", "single")
    line = _one_error_line(runner.invoke(app, ["predict", str(broken), str(texts), "--backend", "onnx"]))
    assert "cannot load ONNX model" in line and "model_quantized.onnx" in line and "--overwrite" in line


def test_precisions_belong_to_their_backend(models):
    with pytest.raises(ConfigError, match="int8 needs --backend onnx"):
        PredictConfig(model_dir="m", input="i.txt", precision="int8").validate()
    with pytest.raises(ConfigError, match="bf16 is not available with --backend onnx"):
        PredictConfig(model_dir="m", input="i.txt", precision="bf16", backend="onnx").validate()
    with pytest.raises(ModelLoadError):
        from roberta_ft.onnx_model import OnnxBackend

        OnnxBackend(models["single"] / "config.json", "fp32", pad_id=1)


# ------------------------------------------------------------------------------------------ tokenizer


def _hf_and_light(model_dir):
    from transformers import AutoTokenizer

    from roberta_ft.data.light_tokenizer import LightTokenizer

    hf = AutoTokenizer.from_pretrained(model_dir)
    return hf, LightTokenizer(model_dir, model_input_names=hf.model_input_names)


SHARED_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "models" / "roberta-base-tokenizer"


@pytest.mark.parametrize("which", ["tiny", "roberta-base"])
def test_the_light_tokenizer_gives_transformers_tokens(models, which):
    from roberta_ft.data import tokens

    model_dir = models["single"] if which == "tiny" else SHARED_TOKENIZER
    if not Path(model_dir).is_dir():
        pytest.skip(f"no tokenizer at {model_dir}")
    hf, light = _hf_and_light(model_dir)
    texts = ["Hello world", " leading space", "émojis 🙂 and tabs\tand  spaces " * 8, "x", "the movie was great"]
    pairs = ["a second text", "short", "y" * 80, "z", "and it was"]
    for strategy, with_pairs, stride in (
        ("truncate", False, None),
        ("truncate", True, None),
        ("sliding", False, 6),
        ("head-tail", False, None),
    ):
        a = tokens.tokenize(hf, texts, pairs if with_pairs else None, 16, strategy, stride)
        b = tokens.tokenize(light, texts, pairs if with_pairs else None, 16, strategy, stride)
        assert a[0] == b[0] and a[1] == b[1] and a[3] == b[3], strategy
        assert (a[2] is None and b[2] is None) or np.array_equal(a[2], b[2])
    assert (hf.pad_token_id, hf.model_max_length) == (light.pad_token_id, light.model_max_length)


def test_serve_through_the_onnx_backend(models, tmp_path):
    """`serve --backend onnx` on a folder exported without the torch weights answers predict's rows."""
    pytest.importorskip("fastapi")
    from roberta_ft.export import export

    deploy = tmp_path / "deploy"
    export(ExportConfig(model_dir=str(models["single"]), output=str(deploy)))
    server = Server(deploy, tmp_path / "server.log", "--backend", "onnx")
    try:
        texts = [review(random.Random(3), "pos"), review(random.Random(4), "neg"), "a"]
        answer = server.post({"texts": texts, "top_k": 2})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == predict_rows(deploy, texts, tmp_path, backend="onnx", top_k=2)
        assert server.info()["backend"] == "onnx" and "model.onnx (fp32)" in server.info()["runtime"]
    finally:
        server.stop()
