"""What several test files share: data writers, the bad-input catalogue, subprocess runs, servers, memory probes.

Test files import from here (never from each other); conftest.py holds the fixtures.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from roberta_ft.cli import app
from roberta_ft.config import PredictConfig

try:
    import httpx
except ImportError:  # the serve extra; test_serve skips without it
    httpx = None

POSITIVE = ["great", "excellent", "wonderful", "loved", "superb", "fantastic", "delightful", "brilliant"]
NEGATIVE = ["awful", "terrible", "boring", "hated", "dreadful", "horrible", "dull", "disappointing"]
NEUTRAL = ["the movie", "this film", "the plot", "the acting", "the ending", "the music", "the cast", "it"]


def review(rng: random.Random, label: str) -> str:
    cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
    return f"{rng.choice(NEUTRAL)} was {cue} and {rng.choice(NEUTRAL)} {rng.choice(['felt', 'seemed', 'was'])} {cue}"


def write_reviews(path: Path, n: int = 240, seed: int = 0, *, text="review", label="sentiment", fmt="csv") -> Path:
    """A clearly separable two-class dataset with string labels and non-default column names."""
    rng = random.Random(seed)
    rows = [(review(rng, lab), lab) for lab in (rng.choice(["pos", "neg"]) for _ in range(n))]
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({text: t, label: lab}) + "\n" for t, lab in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
            writer.writerow([text, label])
            writer.writerows(rows)
    return path


def write_pairs(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Pairs whose label is decided by the SECOND text only: a model that drops the pair scores at chance."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            first = f"{rng.choice(NEUTRAL)} {rng.choice(['felt', 'seemed', 'was'])} {rng.choice(POSITIVE + NEGATIVE)}"
            writer.writerow([first, review(rng, label), "agree" if label == "pos" else "disagree"])
    return path


# ------------------------------------------------------------------------------------------ long texts, topics

LONG_FILLER = [
    "the",
    "story",
    "of",
    "a",
    "town",
    "where",
    "people",
    "walk",
    "and",
    "talk",
    "every",
    "day",
    "near",
    "river",
]


def long_review(rng: random.Random, label: str, words: int = 40) -> str:
    """Neutral words, then the verdict: the label-deciding words come long after --max-length tokens."""
    cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
    return " ".join(rng.choice(LONG_FILLER) for _ in range(words)) + f" in the end it was {cue} {cue}"


def write_long(path, n: int, seed: int):
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            writer.writerow([long_review(rng, label), label])
    return path


TOPICS = {
    "sports": ["football", "goal", "match", "league"],
    "politics": ["election", "senate", "vote", "minister"],
    "music": ["guitar", "album", "concert", "song"],
    "tech": ["software", "laptop", "robot", "chip"],
}
TOPIC_FILLER = ["the", "a", "today", "people", "said", "about", "new", "some", "very", "news"]


def write_topics(path, n: int, seed: int, separator: str = "|"):
    """Each row has one or two topics; every topic of a row shows two of its cue words."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "labels"])
        for _ in range(n):
            labels = rng.sample(sorted(TOPICS), rng.choice([1, 1, 2]))
            words = [rng.choice(TOPIC_FILLER) for _ in range(6)] + [
                rng.choice(TOPICS[t]) for t in labels for _ in range(2)
            ]
            rng.shuffle(words)
            writer.writerow([" ".join(words), separator.join(labels)])
    return path


# ------------------------------------------------------------------------------------------ the bad-input catalogue

TINY = ("--model", "tiny", "--epochs", "1", "--batch-size", "16")
runner = CliRunner()


def write_bad_inputs(folder: Path) -> Path:
    """Small files, each with one problem, built from a good file."""
    good = write_reviews(folder / "good.csv", n=60, seed=1)
    rows = good.read_text().splitlines()  # header "review,sentiment", then "text,label" rows
    files = {
        "empty.csv": "",
        "header.csv": "review,sentiment\n",
        "tabs.csv": "\n".join(row.replace(",", "\t") for row in rows) + "\n",
        "empty_texts.csv": "\n".join(rows[:5] + [",pos", '"   ",neg'] + rows[5:]) + "\n",
        "no_labels.csv": "\n".join(rows[:5] + ["the film was great,", "the plot was dull,nan"] + rows[5:]) + "\n",
        "one_class.csv": "\n".join([rows[0]] + [row for row in rows[1:] if row.endswith(",pos")]) + "\n",
        "validation.csv": "\n".join(rows[:6] + ["the film was fine,meh"]) + "\n",
        "duplicate.csv": "\n".join(["review,review"] + rows[1:]) + "\n",
        "long.csv": "\n".join(rows[:3] + ['"' + "great film " * 20_000 + '",pos'] + rows[3:]) + "\n",
        "texts.txt": "the movie was great\n\nthe plot was awful\n\n",
        "settings.toml": 'model = "tiny"\nlearning_rat = 0.1\n',
        "no_columns.jsonl": "{}\n{}\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    latin = "\n".join(rows[:3] + ["caf\xe9 was great and great,pos"] + rows[3:]) + "\n"
    (folder / "latin1.csv").write_bytes(latin.encode("latin-1"))
    (folder / "bom.csv").write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    return folder


def invoke(*args: str):
    return runner.invoke(app, ["--quiet", *args])


def assert_one_clear_line(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# (case, arguments with {w} for the work folder and {o} for the output, texts the message must contain)
TRAIN_ERRORS = [
    ("file missing", ["{w}/missing.csv"], ["file not found", "missing.csv"]),
    ("empty file", ["{w}/empty.csv"], ["empty.csv is empty"]),
    ("header only", ["{w}/header.csv"], ["has a header but no rows"]),
    ("wrong delimiter", ["{w}/tabs.csv"], ["found only one column", "tab-separated", "--format tsv"]),
    ("no such column", ["{w}/good.csv", "--text-column", "reveiw"], ["'reveiw'", "did you mean 'review'"]),
    ("no such label column", ["{w}/good.csv", "--label-column", "label"], ["'label'", "columns are: 'review'"]),
    ("empty texts", ["{w}/empty_texts.csv"], ["2 row(s) with an empty text (lines 6, 7)", "--drop-invalid"]),
    ("missing labels", ["{w}/no_labels.csv"], ["2 row(s) with no label (lines 6, 7)", "--drop-invalid"]),
    ("one class", ["{w}/one_class.csv"], ["only one class ('pos')"]),
    (
        "validation label not in training",
        ["{w}/good.csv", "--validation", "{w}/validation.csv"],
        ["validation label 'meh' (line 7) never occurs in the training data", "'neg', 'pos'"],
    ),
    ("not UTF-8", ["{w}/latin1.csv"], ["line 4 is not valid utf-8", "--encoding latin-1"]),
    ("duplicate header", ["{w}/duplicate.csv"], ["duplicate column name 'review'"]),
    ("no columns", ["{w}/no_columns.jsonl"], ["no_columns.jsonl has no columns", "text field"]),
    ("pair task, single texts", ["{w}/good.csv", "--task", "nli"], ["task 'nli' takes text pairs"]),
    ("unknown task", ["{w}/good.csv", "--task", "sentimnt"], ["unknown task 'sentimnt'", "did you mean 'sentiment'"]),
    ("learning rate 0", ["{w}/good.csv", "--lr", "0"], ["--learning-rate must be a positive number, got 0.0"]),
    ("learning rate < 0", ["{w}/good.csv", "--lr", "-0.1"], ["--learning-rate must be a positive number"]),
    ("batch size 0", ["{w}/good.csv", "--batch-size", "0"], ["--batch-size must be a positive integer, got 0"]),
    ("max length over tiny's", ["{w}/good.csv", "--max-length", "4096"], ["--max-length 4096", "(512 tokens)"]),
    ("no GPU", ["{w}/good.csv", "--device", "cuda"], ["--device cuda was requested but no CUDA GPU"]),
    (
        "unknown config key",
        ["{w}/good.csv", "--config", "{w}/settings.toml"],
        ["unknown setting 'learning_rat'", "did you mean 'learning_rate'"],
    ),
    ("save every 0", ["{w}/good.csv", "--save-every", "0"], ["--save-every must be a positive integer"]),
    ("resume, no run", ["{w}/good.csv", "--resume"], ["--resume:", "holds no run to resume"]),
]


# ------------------------------------------------------------------------------------------ processes, servers, memory


def environment() -> dict[str, str]:
    import torch

    # The same thread count in every run: float sums may be split differently with more threads.
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "HF_HUB_OFFLINE": "1"}


def run_to_completion(args: list[str]) -> None:
    """A `python -m roberta_ft ...` command line run to its end in this process (the reference a killed
    and resumed run is compared with: only the killed run needs a process of its own)."""
    from typer.testing import CliRunner

    from roberta_ft.cli import app

    assert args[1:3] == ["-m", "roberta_ft"], args[:3]
    result = CliRunner().invoke(app, args[3:])
    assert result.exit_code == 0, result.output


def run_and_kill(args: list[str], output: Path, kill_after: str, log: Path) -> None:
    """Start a training process and SIGKILL it as soon as checkpoint `kill_after` exists."""
    target = output / "checkpoints" / kill_after
    with open(log, "w") as stderr:
        process = subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 240
            while not target.exists():
                assert process.poll() is None, f"the run ended before {kill_after}: {log.read_text()}"
                assert time.monotonic() < deadline, "timed out waiting for the checkpoint"
                time.sleep(0.002)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None and not target.exists():
                process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL  # really killed, not finished


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`python -m roberta_ft serve ...` on a free port, its log in a file."""

    def __init__(self, model_dir: Path, log: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "roberta_ft", "-v", "serve", str(model_dir), "--port", str(self.port)]
        command += ["--precision", "fp32", *options]
        with open(log, "w", encoding="utf-8") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not get ready:\n{self.output()}"
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def post(self, body, **options):
        if isinstance(body, (dict, list)):
            return httpx.post(f"{self.url}/predict", json=body, timeout=60, **options)
        return httpx.post(f"{self.url}/predict", content=body, timeout=60, **options)

    def info(self) -> dict:
        return httpx.get(f"{self.url}/info", timeout=30).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def predict_rows(model_dir: Path, lines: list[str], tmp_path: Path, **options) -> list[dict]:
    """`roberta-ft predict --json`'s rows for these lines, without their `line` key."""
    from roberta_ft.predict import predict

    path = tmp_path / "texts.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    rows = io.StringIO()
    predict(
        PredictConfig(model_dir=str(model_dir), input=str(path), precision="fp32", **options),
        stdout=rows,
        stdout_format="jsonl",
    )
    return [{k: v for k, v in json.loads(line).items() if k != "line"} for line in rows.getvalue().splitlines()]


def peak_rss_growth(function) -> float:
    """Largest resident-memory growth (MiB) seen while function runs, sampled every 2 ms."""
    import psutil

    process = psutil.Process()
    return peak_growth(function, lambda: process.memory_info().rss) / 2**20


def peak_growth(function, read) -> float:
    """Largest growth of `read()` (a number of bytes) seen while function runs, sampled every 2 ms."""
    start = peak = read()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, read())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        function()
    finally:
        done.set()
        sampler.join()
    return max(peak, read()) - start


# ------------------------------------------------------------------------------------------ few-shot rows

FEW_POSITIVE = "great wonderful superb lovely excellent brilliant charming delightful".split()
FEW_NEGATIVE = "awful terrible dreadful boring horrible poor dull bad".split()
FEW_FILLER = "the movie was and it plot acting story film with a of really quite".split()


def write_rows(path: Path, rows: int, seed: int, *, classes=(("pos", FEW_POSITIVE), ("neg", FEW_NEGATIVE))) -> Path:
    """Texts of filler words with two words of their class's vocabulary: a class is told by those words."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for index in range(rows):
            name, words = classes[index % len(classes)]
            text = rng.sample(FEW_FILLER, 5) + [rng.choice(words), rng.choice(words)] + rng.sample(FEW_FILLER, 3)
            writer.writerow([" ".join(text), name])
    return path


def wait_ready(client) -> None:
    """Until an in-process serve app's /health answers 200 (60 s at most)."""
    deadline = time.monotonic() + 60
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def write_few_shot_work(work: Path) -> Path:
    """A 'pretrained' model directory (random tiny RoBERTa weights, its tokenizer) and few-shot rows."""
    from roberta_ft.modeling import build_tiny

    write_rows(work / "train16.csv", 16, seed=1)
    write_rows(work / "dev.csv", 200, seed=2)
    write_rows(work / "big.csv", 300, seed=3)
    texts = [row["text"] for row in csv.DictReader(open(work / "big.csv", encoding="utf-8"))]
    head = {"num_labels": 2, "id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
    model, tokenizer = build_tiny(texts, head=head, seed=0)
    model.save_pretrained(work / "start")
    tokenizer.save_pretrained(work / "start")
    return work
