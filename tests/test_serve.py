"""`roberta-ft serve`: real HTTP on 127.0.0.1 against a subprocess, the app in-process, and the batcher alone.

The subprocess servers wait long for batches to fill (--max-wait-ms), so concurrent requests land in
one batch even on a busy machine, and a request is still queued when the shutdown test sends SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from roberta_ft.config import ServeConfig, TrainConfig  # noqa: E402
from roberta_ft.errors import ConfigError  # noqa: E402
from tests.helpers import Server, free_port, predict_rows, review, wait_ready, write_pairs  # noqa: E402

MAX_TEXTS = 8
MAX_BODY_KB = 4


@pytest.fixture(scope="module")
def server(trained_dir, tmp_path_factory):
    running = Server(
        trained_dir,
        tmp_path_factory.mktemp("serve") / "server.log",
        *("--max-wait-ms", "1000", "--max-texts", str(MAX_TEXTS), "--max-body-kb", str(MAX_BODY_KB)),
    )
    yield running
    running.stop()


def texts_of(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [review(rng, rng.choice(["pos", "neg"])) for _ in range(count)]


# ------------------------------------------------------------------------------------------ over HTTP


def test_predict_answers_the_rows_predict_gives(server, trained_dir, tmp_path):
    texts = texts_of(MAX_TEXTS, seed=1)
    texts[0] = "the acting was wonderful, über alles"  # not ASCII
    answer = server.post({"texts": texts})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == predict_rows(trained_dir, texts, tmp_path)
    ranked = server.post({"texts": texts[:3], "top_k": 2})
    assert ranked.status_code == 200, ranked.text
    assert ranked.json()["predictions"] == predict_rows(trained_dir, texts[:3], tmp_path, top_k=2)


def test_health_and_info_describe_the_model(server, trained_dir):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ready"}
    info = server.info()
    run = json.loads((trained_dir / "run_config.json").read_text())
    assert info["labels"] == ["neg", "pos"] and info["task"] == run["task"] and info["pair"] is False
    assert info["max_length"] == run["config"]["max_length"] and info["backend"] == "torch"
    assert "fp32" in info["runtime"] and info["limits"]["max_texts"] == MAX_TEXTS
    assert httpx.get(f"{server.url}/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_concurrent_requests_share_batches_and_get_their_own_rows(server, trained_dir, tmp_path):
    texts = texts_of(12, seed=2)
    before = server.info()["batching"]
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda text: server.post({"texts": [text]}), texts))
    after = server.info()["batching"]
    assert all(answer.status_code == 200 for answer in answers)
    expected = predict_rows(trained_dir, texts, tmp_path)
    for text, answer, row in zip(texts, answers, expected, strict=True):
        (got,) = answer.json()["predictions"]
        assert got["text"] == text and got["label"] == row["label"]
        assert got["probability"] == pytest.approx(row["probability"], abs=1e-5)  # other padding, same model
    batches = after["batches"] - before["batches"]
    assert after["requests"] - before["requests"] == len(texts) and after["texts"] - before["texts"] == len(texts)
    assert batches < len(texts) and after["largest_batch"] > 1
    logged = [line for line in server.output().splitlines() if "texts from" in line and "Batch" in line]
    assert any(int(line.split("texts from")[0].split()[-1]) > 1 for line in logged), server.output()


BAD_REQUESTS = [
    ("malformed JSON", b'{"texts": ["a"', 400, "not valid JSON"),
    ("not UTF-8", b'{"texts": ["\xff"]}', 400, "not valid JSON"),
    ("empty body", b"", 400, "not valid JSON"),
    ("not an object", b'["a text"]', 422, "must be a JSON object"),
    ("unknown field", {"text": ["a"]}, 422, "unknown field 'text' (did you mean 'texts'?"),
    ("neither field", {"top_k": 1}, 422, 'neither "texts" nor "pairs"'),
    ("both fields", {"texts": ["a"], "pairs": [["a", "b"]]}, 422, 'both "texts" and "pairs"'),
    ("texts not a list", {"texts": "a text"}, 422, '"texts" must be a list, got a string'),
    ("empty list", {"texts": []}, 422, '"texts" is empty'),
    ("a number among texts", {"texts": ["a", 3]}, 422, "texts[1] must be a string, got a number (3)"),
    ("a blank text", {"texts": ["a", "  "]}, 422, "texts[1] is empty"),
    ("a pair to a single-text model", {"pairs": [["a", "b"]]}, 422, "classifies single texts, not pairs"),
    ("too many texts", {"texts": ["a"] * (MAX_TEXTS + 1)}, 413, f"more than this service takes in one request ({MAX_TEXTS})"),
    ("body over the limit", {"texts": ["a" * (MAX_BODY_KB * 1024)]}, 413, f"larger than this service takes ({MAX_BODY_KB} KiB)"),
    ("top_k not an integer", {"texts": ["a"], "top_k": "2"}, 422, '"top_k" must be a positive integer'),
    ("top_k zero", {"texts": ["a"], "top_k": 0}, 422, '"top_k" must be a positive integer'),
    ("top_k over the labels", {"texts": ["a"], "top_k": 3}, 422, "top_k=3 is more than the model's 2 labels"),
    ("threshold out of range", {"texts": ["a"], "threshold": 1.5}, 422, '"threshold" must be a number between 0 and 1'),
    ("threshold on a single-label model", {"texts": ["a"], "threshold": 0.3}, 422, "multi-label models only"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "message"), [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_each_bad_request_is_a_4xx_naming_the_problem(server, body, status, message):
    answer = server.post(body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"], answer.json()
    assert httpx.get(f"{server.url}/health").status_code == 200  # the worker is still there


def test_a_body_without_a_declared_length_is_still_limited(server):
    def chunks():
        yield b'{"texts": ["'
        for _ in range(MAX_BODY_KB * 2):
            yield b"a" * 1024
        yield b'"]}'

    answer = httpx.post(f"{server.url}/predict", content=chunks(), timeout=60)  # chunked transfer encoding
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_unknown_paths_and_methods_answer_json_errors(server):
    assert httpx.get(f"{server.url}/nothing-here").json() == {"error": "Not Found"}
    wrong_method = httpx.get(f"{server.url}/predict")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "Method Not Allowed"}


def test_sigterm_lets_the_request_in_flight_finish(trained_dir, tmp_path):
    server = Server(trained_dir, tmp_path / "server.log", "--max-wait-ms", "5000")
    try:
        answer: dict = {}
        sent = time.monotonic()
        thread = threading.Thread(target=lambda: answer.update(response=server.post({"texts": ["it was superb"]})))
        thread.start()
        deadline = time.monotonic() + 30
        while server.info()["batching"]["requests"] < 1:  # queued, waiting for its batch to fill
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        thread.join(30)
        response = answer["response"]
        assert response.status_code == 200 and response.json()["predictions"][0]["text"] == "it was superb"
        # Answered at once: the shutdown runs the queue without waiting 5 s for the batch to fill.
        assert time.monotonic() - sent < 4.0
        assert server.process.wait(30) == 0, server.output()
        assert "Shutting down" in server.output() and "Stopped" in server.output()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=5)
    finally:
        server.stop()


def test_cli_errors_before_serving_are_one_line(trained_dir, tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "roberta_ft", "serve", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        f"error: model directory not found: {tmp_path / 'nothing'} (pass the --output directory of `roberta-ft train`)"
    ]
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "roberta_ft", "serve", str(trained_dir), "--host", "0.0.0.0", "--port", str(port)],
            capture_output=True,
            text=True,
        )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())  # the log wraps at the terminal width
    assert "WARNING" in said and "other machines can reach this service" in said
    assert lines[-1].startswith(f"error: cannot listen on http://0.0.0.0:{port}") and "--port" in lines[-1]
    assert "Traceback" not in result.stderr


def test_a_model_that_cannot_load_stops_the_server_with_one_error_line(trained_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    command = [sys.executable, "-m", "roberta_ft", "serve", str(broken), "--port", str(free_port())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert "Cannot load the model" in result.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 0}, "--port must be a port number"),
        ({"port": 70000}, "--port must be a port number"),
        ({"host": " "}, "--host must be an address"),
        ({"max_batch_size": 0}, "--max-batch-size must be a positive integer"),
        ({"max_wait_ms": -1}, "--max-wait-ms must be a number >= 0"),
        ({"max_texts": 0}, "--max-texts must be a positive integer"),
        ({"max_body_kb": 1.5}, "--max-body-kb must be a positive integer"),
        ({"backend": "tensorrt"}, "--backend 'tensorrt' is not valid"),
        ({"threshold": 2}, "--threshold must be between 0 and 1"),
    ],
)
def test_serve_settings_are_validated(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ServeConfig(model_dir="m", **changes).validate()
    assert ServeConfig(model_dir="m").is_local and not ServeConfig(model_dir="m", host="0.0.0.0").is_local


def test_without_the_extra_serve_names_it(monkeypatch, trained_dir):
    from roberta_ft.serve import serve

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi raises ImportError
    with pytest.raises(ConfigError, match=r'needs the .fastapi. package.*pip install "roberta-ft\[serve\]"'):
        serve(ServeConfig(model_dir=str(trained_dir)))


# ------------------------------------------------------------------------------------------ in-process


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory) -> Path:
    from roberta_ft.train import train

    folder = tmp_path_factory.mktemp("pairs")
    data = write_pairs(folder / "pairs.csv", n=120, seed=5)
    return train(TrainConfig(data=str(data), output=str(folder / "model"), model="tiny", epochs=2, seed=1)).output_dir


def test_a_pair_model_takes_pairs_split_over_batches(pair_dir, tmp_path):
    from fastapi.testclient import TestClient

    from roberta_ft import inference
    from roberta_ft.serve import Service, build_app

    config = ServeConfig(model_dir=str(pair_dir), precision="fp32", max_batch_size=2, max_wait_ms=0)
    service = Service(lambda: inference.load(pair_dir, **inference.load_options(config)), config)
    rng = random.Random(3)
    pairs = [
        [f"the plot seemed {rng.choice(['dull', 'great'])}", review(rng, rng.choice(["pos", "neg"]))] for _ in range(5)
    ]
    with TestClient(build_app(service)) as client:
        wait_ready(client)
        answer = client.post("/predict", json={"pairs": pairs})
        texts = client.post("/predict", json={"texts": ["a single text"]})
        info = client.get("/info").json()
    assert answer.status_code == 200, answer.text
    expected = predict_rows(pair_dir, [f"{a}\t{b}" for a, b in pairs], tmp_path)
    got = answer.json()["predictions"]
    assert [(r["text"], r["text_pair"], r["label"]) for r in got] == [
        (r["text"], r["text_pair"], r["label"]) for r in expected
    ]
    assert [r["probability"] for r in got] == pytest.approx([r["probability"] for r in expected], abs=1e-5)
    assert info["pair"] is True and info["batching"]["batches"] == 3 and info["batching"]["largest_batch"] == 2
    assert texts.status_code == 422 and "classifies text pairs" in texts.json()["error"]


class _FakeModel:
    """What the service reads of a TrainedModel, with logits that say which text they belong to."""

    def __init__(self) -> None:
        from roberta_ft import problems
        from roberta_ft.data.labels import MultiLabelMap

        self.problem = problems.MultiLabel(MultiLabelMap(("sports", "politics", "music"), "|"), 0.5)
        self.pair, self.run, self.model_dir = False, {"task": "topic"}, Path("fake")

        class Backend:
            name = "fake"

            def describe(self):
                return "no device"

        self.backend = Backend()
        self.reading = type("Reading", (), {"max_length": 16, "long_text": "truncate", "stride": None})()

    def encode(self, texts, pairs):
        return texts

    def logits(self, texts, batch_size):
        # sigmoid(0) = 0.5 for sports, sigmoid(1.4) ~ 0.8 for politics, sigmoid(-1.4) ~ 0.2 for music
        return np.array([[0.0, 1.4, -1.4] for _ in texts], dtype=np.float32)


def test_loading_then_ready_then_stopping_and_a_threshold_per_request():
    from fastapi.testclient import TestClient

    from roberta_ft.serve import Service, build_app

    release = threading.Event()

    def load():
        release.wait(30)
        return _FakeModel()

    service = Service(load, ServeConfig(model_dir="fake"))
    with TestClient(build_app(service)) as client:
        loading = client.get("/health")
        assert loading.status_code == 503 and loading.json() == {"status": "loading"}
        early = client.post("/predict", json={"texts": ["a"]})
        assert early.status_code == 503 and "still loading" in early.json()["error"]
        release.set()
        wait_ready(client)
        default = client.post("/predict", json={"texts": ["a"]}).json()["predictions"][0]
        assert default["labels"] == ["politics", "sports"]  # sports reaches 0.5 exactly
        strict = client.post("/predict", json={"texts": ["a"], "threshold": 0.7}).json()["predictions"][0]
        loose = client.post("/predict", json={"texts": ["a"], "threshold": 0.1, "top_k": 2}).json()["predictions"][0]
        assert strict["labels"] == ["politics"] and loose["labels"] == ["politics", "sports"]
        assert client.get("/info").json()["threshold"] == 0.5  # a request's threshold is its own
        service.begin_shutdown()  # what SIGTERM calls
        stopping = client.post("/predict", json={"texts": ["a"]})
        assert stopping.status_code == 503 and "shutting down" in stopping.json()["error"]
        assert client.get("/health").json() == {"status": "stopping"}


def test_a_model_that_cannot_load_fails_the_service():
    from fastapi.testclient import TestClient

    from roberta_ft.serve import Service, build_app

    def load():
        raise ConfigError("the weights are damaged", "re-run the training")

    stopped = threading.Event()
    service = Service(load, ServeConfig(model_dir="fake"), on_failure=stopped.set)
    with TestClient(build_app(service)) as client:
        assert stopped.wait(30)
        assert client.get("/health").json() == {"status": "failed"}
        assert client.post("/predict", json={"texts": ["a"]}).status_code == 503
    assert service.failure is not None and "damaged" in str(service.failure)


# ------------------------------------------------------------------------------------------ the batcher


def _run_batcher(max_batch_size: int, requests: list[list[str]], forward=None, max_wait: float = 0.05):
    """Submit the requests at once; return (each request's result or exception, the batches forward saw)."""
    from roberta_ft.serve import Batcher

    seen: list[list[str]] = []

    def default_forward(texts, pairs):
        seen.append(list(texts))
        return np.array([[float(text.split("-")[1])] for text in texts])

    async def main():
        batcher = Batcher(forward or default_forward, max_batch_size=max_batch_size, max_wait=max_wait)
        batcher.start()
        futures = [batcher.submit(texts, None) for texts in requests]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.close()
        return results, batcher.counters

    results, counters = asyncio.run(main())
    return results, seen, counters


def test_the_batcher_splits_and_joins_requests_and_routes_rows_back():
    requests = [[f"a-{i}" for i in range(5)], ["b-10", "b-11"], ["c-20"]]
    results, seen, counters = _run_batcher(3, requests)
    assert seen == [["a-0", "a-1", "a-2"], ["a-3", "a-4", "b-10"], ["b-11", "c-20"]]
    for texts, result in zip(requests, results, strict=True):
        assert result[:, 0].tolist() == [float(text.split("-")[1]) for text in texts]
    assert (counters.batches, counters.texts, counters.requests, counters.largest_batch) == (3, 8, 3, 3)


def test_max_batch_size_one_turns_batching_off():
    _, seen, counters = _run_batcher(1, [["a-1", "a-2"], ["b-3"]])
    assert seen == [["a-1"], ["a-2"], ["b-3"]] and counters.largest_batch == 1


def test_a_failing_batch_fails_its_requests_only():
    calls = []

    def forward(texts, pairs):
        calls.append(list(texts))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(texts), 1))

    results, _, counters = _run_batcher(2, [["a-1", "a-2", "a-3"], ["b-4"]], forward=forward)
    assert isinstance(results[0], RuntimeError)  # its first texts were in the failed batch; the rest are skipped
    assert results[1].shape == (1, 1) and calls == [["a-1", "a-2"], ["b-4"]]
    assert counters.failed_batches == 1 and counters.batches == 1


def test_the_batcher_waits_for_a_batch_to_fill_but_not_longer():
    from roberta_ft.serve import Batcher

    async def main():
        batcher = Batcher(lambda texts, pairs: np.zeros((len(texts), 1)), max_batch_size=4, max_wait=0.3)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = batcher.submit(["a"], None)
        await asyncio.sleep(0.05)
        second = batcher.submit(["b"], None)
        await asyncio.gather(first, second)
        waited = loop.time() - started
        full = [batcher.submit([str(i)], None) for i in range(4)]  # a full batch goes at once
        started = loop.time()
        await asyncio.gather(*full)
        await batcher.close()
        return waited, loop.time() - started, batcher.counters

    waited, full_wait, counters = asyncio.run(main())
    assert 0.25 <= waited < 2.0 and full_wait < 0.25
    assert counters.batches == 2 and counters.largest_batch == 4


def test_texts_that_came_during_a_batch_wait_for_the_rest_of_their_wave():
    """After a long batch, a text that arrived meanwhile does not run alone: it waits (max_wait) for company."""
    import threading

    from roberta_ft.serve import Batcher

    seen: list[list[str]] = []
    first_done = threading.Event()

    def forward(texts, pairs):
        seen.append(list(texts))
        if len(seen) == 1:
            time.sleep(1.0)  # longer than max_wait: the text queued meanwhile is past its own deadline
            first_done.set()
        return np.zeros((len(texts), 1))

    async def main():
        batcher = Batcher(forward, max_batch_size=8, max_wait=0.5)
        batcher.start()
        first = batcher.submit(["slow"], None)
        await asyncio.sleep(0.6)  # the slow batch is running (after its own 0.5 s wait)
        lone = batcher.submit(["lone"], None)
        await asyncio.to_thread(first_done.wait)
        await asyncio.sleep(0.1)
        wave = batcher.submit(["wave-1", "wave-2"], None)
        await asyncio.gather(first, lone, wave)
        await batcher.close()

    asyncio.run(main())
    assert seen == [["slow"], ["lone", "wave-1", "wave-2"]]
