"""`roberta-ft serve` under load: micro-batching on and off against `roberta-ft predict`, and a mixed run.

    python benchmarks/serve_bench.py                     # MiniLM trained by run.py, its predict texts
    python benchmarks/serve_bench.py --quick --model-dir runs/tickets --texts examples/new_tickets.txt

1. `roberta-ft predict MODEL TEXTS --json` on exactly the texts the clients will send: its texts/s
   (its own predict time, loading aside) and its labels, the reference for every answer below.
2. For `--max-batch-size 64` (batching, the default) and `--max-batch-size 1` (none): a fresh server,
   a warm-up, then `--clients` concurrent clients, each sending `--requests-per-client` single-text
   requests one after another over its own keep-alive connection (bounded loops: they stop by
   themselves). Throughput is texts answered / wall time of that phase; p50/p99 latency per request;
   the server's batch counters from GET /info.
   Steps 1 and 2 run in turn `--repeats` times (default 3); the medians make the ratios.
3. A mixed run on a fresh server: `--mixed-requests` requests from the same clients, about a quarter of
   them invalid (malformed JSON, wrong types, empty lists, unknown fields, pairs to a single-text
   model, too many texts, a body over the limit, top_k over the labels): every valid answer must be a
   200 with predict's labels, every invalid one its 4xx; the server's RSS before, and after each of
   `--mixed-rounds` rounds of the same requests (does it level off?). At `--mixed-precision` (fp32),
   against a predict run at that precision: in bf16 a text at 50/50 can tip with its batch's shape.

The clients are a few lines of asyncio over raw HTTP/1.1 (no client library), so that on a small
machine the load generator takes as little CPU from the server as possible. Everything runs on
127.0.0.1. Every process runs in the work dir, so `--ours-command "env PYTHONPATH=CHECKOUT python -m
roberta_ft"` runs that checkout (from inside a checkout, `python -m` would import the one there).
Prints a table and writes `serve_bench.json` in the work dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK_DIR, SkipBenchmark, offline_env, read_lines, run_measured  # noqa: E402
from run import parse_ours_output, read_ours_labels  # noqa: E402

DEFAULT_MODEL_DIR = DEFAULT_WORK_DIR / "runs" / "minilm" / "ours-model"
DEFAULT_TEXTS = DEFAULT_WORK_DIR / "predict_8000.txt"
MIXED_BODY_LIMIT_KB = 64  # the mixed run's server: an over-limit body is small enough to send whole


# --------------------------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client
# --------------------------------------------------------------------------------------------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body). A connection the server closed is reopened once."""
        for attempt in (0, 1):
            if self.writer is None:
                await self._open()
            try:
                return await self._exchange(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        try:
            await self.writer.drain()
        except ConnectionError:
            pass  # the server answered early (a 413) and closed: its answer is still to be read
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed before answering")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, payload


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(
        self, command: list[str], model_dir: Path, log: Path, options: list[str], timeout: float, threads: int | None
    ) -> None:
        self.port = free_port()
        full = [*command, "serve", str(model_dir), "--port", str(self.port), *options]
        self.command = shlex.join(full)
        self.log = log
        env = offline_env()
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)  # the server's torch threads (roberta-ft respects it)
        with open(log, "w", encoding="utf-8") as handle:
            self.process = subprocess.Popen(full, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self._tail()}")
            time.sleep(0.2)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])

    def _ready(self) -> bool:
        return self.get("/health")[0] == 200

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                raw.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := raw.recv(65536):
                    data += chunk
        except OSError:
            return 0, {}
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body or b"{}")

    def rss_mb(self) -> float | None:
        try:
            import psutil
        except ImportError:
            return None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code (0: a clean, graceful stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


# --------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


async def _clients(port: int, plans: list[list[tuple[bytes, object]]]) -> tuple[list[list[tuple]], float]:
    """Each plan is one client's (body, expectation) requests, sent in turn; returns the answers and wall time."""

    async def client(plan):
        connection = Connection(port)
        answers = []
        try:
            for body, expected in plan:
                started = time.perf_counter()
                status, payload = await connection.request("POST", "/predict", body)
                answers.append((expected, status, payload, time.perf_counter() - started))
        finally:
            await connection.close()
        return answers

    started = time.perf_counter()
    answers = await asyncio.gather(*(client(plan) for plan in plans))
    return answers, time.perf_counter() - started


def run_clients(port: int, plans) -> tuple[list[list[tuple]], float]:
    try:
        import uvloop  # the lighter event loop, when the [serve] extra brought it

        return uvloop.run(_clients(port, plans))
    except ImportError:
        return asyncio.run(_clients(port, plans))


def single_text_plans(texts: list[str], clients: int, per_client: int) -> list[list[tuple[bytes, object]]]:
    """Client c sends texts c*per_client ... (c+1)*per_client-1, one per request."""
    return [
        [(json.dumps({"texts": [texts[c * per_client + i]]}).encode(), c * per_client + i) for i in range(per_client)]
        for c in range(clients)
    ]


def throughput_run(
    settings, model_dir: Path, texts: list[str], labels: list[str], batch: int, command: list[str] | None = None
) -> dict:
    options = ["--max-batch-size", str(batch), "--max-wait-ms", str(settings.max_wait_ms), *settings.server_options]
    server = Server(
        command or settings.ours_command,
        model_dir,
        settings.work_dir / f"serve-batch{batch}{'-compare' if command else ''}.log",
        options,
        settings.timeout,
        settings.server_threads,
    )
    try:
        warm = [[(json.dumps({"texts": [texts[i % len(texts)]]}).encode(), i)] for i in range(settings.clients)]
        run_clients(server.port, warm)
        before = server.get("/info")[1].get("batching") or {}
        answers, wall = run_clients(
            server.port, single_text_plans(texts, settings.clients, settings.requests_per_client)
        )
        after = server.get("/info")[1].get("batching") or {}
        rss = server.rss_mb()
    finally:
        code = server.stop()
    flat = [answer for client in answers for answer in client]
    latencies = [answer[3] for answer in flat]
    ok = [answer for answer in flat if answer[1] == 200]
    agree = sum(json.loads(payload)["predictions"][0].get("label") == labels[index] for index, _, payload, _ in ok)
    batches = (after.get("batches") or 0) - (before.get("batches") or 0)
    answered = (after.get("texts") or 0) - (before.get("texts") or 0)
    return {
        "max_batch_size": batch,
        "command": server.command,
        "requests": len(flat),
        "ok": len(ok),
        "texts_per_s": len(ok) / wall if wall else None,
        "wall_seconds": wall,
        "p50_ms": percentile(latencies, 0.50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "batches": batches,
        "mean_batch_size": answered / batches if batches else None,
        "largest_batch": after.get("largest_batch"),
        "labels_agree_with_predict": agree / len(ok) if ok else None,
        "server_rss_mb": rss,
        "exit_code": code,
    }


def mixed_plans(texts: list[str], total: int, clients: int, seed: int, max_texts: int, top_k_over: int) -> list:
    """`total` requests dealt round-robin to the clients; about a quarter invalid, each with its expected status."""
    rng = random.Random(seed)
    invalid = [
        (b'{"texts": ["unfinished"', 400),
        (b"\xff\xfe not json", 400),
        (b'["a list, not an object"]', 422),
        (json.dumps({"text": ["a typo in the field name"]}).encode(), 422),
        (json.dumps({"texts": []}).encode(), 422),
        (json.dumps({"texts": "not a list"}).encode(), 422),
        (json.dumps({"texts": ["fine", 42]}).encode(), 422),
        (json.dumps({"texts": ["fine", "   "]}).encode(), 422),
        (json.dumps({"pairs": [["a", "pair"]]}).encode(), 422),
        (json.dumps({"texts": ["fine"], "top_k": top_k_over}).encode(), 422),
        (json.dumps({"texts": ["fine"], "top_k": "2"}).encode(), 422),
        (json.dumps({"texts": ["fine"] * (max_texts + 1)}).encode(), 413),
        (json.dumps({"texts": ["x" * (MIXED_BODY_LIMIT_KB * 1024)]}).encode(), 413),
    ]
    plans: list[list] = [[] for _ in range(clients)]
    for number in range(total):
        if rng.random() < 0.25:
            body, status = rng.choice(invalid)
            expected: object = status
        else:
            chosen = [rng.randrange(len(texts)) for _ in range(rng.randint(1, 4))]
            body, expected = json.dumps({"texts": [texts[i] for i in chosen]}).encode(), chosen
        plans[number % clients].append((body, expected))
    return plans


def mixed_run(settings, model_dir: Path, texts: list[str], labels: list[str], num_labels: int) -> dict:
    options = ["--max-body-kb", str(MIXED_BODY_LIMIT_KB), "--max-wait-ms", str(settings.max_wait_ms)]
    server = Server(
        settings.ours_command,
        model_dir,
        settings.work_dir / "serve-mixed.log",
        [*options, "--precision", settings.mixed_precision],
        settings.timeout,
        settings.server_threads,
    )
    try:
        run_clients(server.port, single_text_plans(texts, min(settings.clients, len(texts)), 1))  # warm-up
        rss_before = server.rss_mb()
        info = server.get("/info")[1]
        plans = mixed_plans(
            texts, settings.mixed_requests, settings.clients, settings.seed, info["limits"]["max_texts"], num_labels + 1
        )
        answers, wall = run_clients(server.port, plans)
        rss_after = server.rss_mb()
        # The same requests again, --mixed-rounds times in all: RSS after each round shows whether memory
        # levels off (allocator and kernel caches filled once) or keeps growing with the requests.
        rss_rounds = [rss_after]
        for _ in range(settings.mixed_rounds - 1):
            run_clients(server.port, plans)
            rss_rounds.append(server.rss_mb())
        healthy = server.get("/health")[0] == 200
    finally:
        code = server.stop()
    valid = wrong_valid = invalid = wrong_invalid = 0
    problems: list[str] = []
    for expected, status, payload, _ in (answer for client in answers for answer in client):
        if isinstance(expected, list):
            valid += 1
            got = [row.get("label") for row in json.loads(payload)["predictions"]] if status == 200 else None
            if got != [labels[i] for i in expected]:
                wrong_valid += 1
                problems.append(f"valid request answered {status}: {payload[:200]!r}")
        else:
            invalid += 1
            if status != expected:
                wrong_invalid += 1
                problems.append(f"invalid request: expected {expected}, got {status}: {payload[:200]!r}")
    return {
        "command": server.command,
        "requests": valid + invalid,
        "valid": valid,
        "valid_wrong": wrong_valid,
        "invalid": invalid,
        "invalid_wrong_status": wrong_invalid,
        "wall_seconds": wall,
        "server_rss_mb_before": rss_before,
        "server_rss_mb_after": rss_after,
        "server_rss_mb_after_each_round": rss_rounds,
        "healthy_after": healthy,
        "exit_code": code,
        "problems": problems[:20],
    }


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="a model dir (default: run.py's MiniLM)"
    )
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="one text per line (default: run.py's)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=50)
    parser.add_argument("--mixed-requests", type=int, default=2000)
    parser.add_argument("--mixed-rounds", type=int, default=3, help="the mixed requests sent this many times in all")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--precision", default="auto", help="of predict and the servers alike (throughput runs)")
    parser.add_argument(
        "--mixed-precision", default="fp32", help="of the mixed run and the predict run its labels are checked against"
    )
    parser.add_argument(
        "--server-threads", type=int, default=None, help="OMP_NUM_THREADS of the servers only (default: torch's choice)"
    )
    parser.add_argument("--quick", action="store_true", help="8 clients x 5 requests, 200 mixed: a smoke test")
    parser.add_argument(
        "--ours-command", default=None, help="how to invoke our CLI (default: this python -m roberta_ft)"
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "serve")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for predict, or for a server to get ready")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare-command",
        default=None,
        help='another installation\'s CLI (e.g. "env PYTHONPATH=OLD_CHECKOUT python -m roberta_ft"): '
        "its batching server runs in each round too, side by side",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of predict / batching on / off, in turn (medians reported)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.quick:
        args.clients, args.requests_per_client, args.mixed_requests, args.repeats = 8, 5, 200, 1
    args.ours_command = shlex.split(args.ours_command) if args.ours_command else [sys.executable, "-m", "roberta_ft"]
    args.compare_command = shlex.split(args.compare_command) if args.compare_command else None
    args.server_options = ["--precision", args.precision]
    args.work_dir = args.work_dir.resolve()
    args.model_dir, args.texts = args.model_dir.resolve(), args.texts.resolve()  # the processes run in the work dir
    return args


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        for needed, how in ((settings.model_dir / "config.json", "--model-dir"), (settings.texts, "--texts")):
            if not needed.exists():
                raise SkipBenchmark(
                    f"serve benchmark skipped: {needed} not found; run `python benchmarks/run.py --models minilm` "
                    f'first with --modes "" (it trains the model and writes the texts) or pass {how}'
                )
    except SkipBenchmark as skip:
        print(skip, file=sys.stderr)
        return 0
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    pool = read_lines(settings.texts)
    count = settings.clients * settings.requests_per_client
    texts = [pool[i % len(pool)] for i in range(count)]  # the file's first texts, repeated if it is short
    sent = settings.work_dir / "serve_texts.txt"
    sent.write_text("".join(text + "\n" for text in texts), encoding="utf-8")

    output = settings.work_dir / "predict.jsonl"
    command = [*settings.ours_command, "predict", str(settings.model_dir), str(sent), "--output", str(output)]
    command += [*settings.server_options, "--json"]
    results: dict = {"model_dir": str(settings.model_dir), "texts": str(settings.texts), "clients": settings.clients}
    results["predict"] = {"command": shlex.join(command), "texts_per_s_each": []}
    each_run: dict[int, list[dict]] = {64: [], 1: []}
    labels: list[str] = []
    compared: list[dict] = []
    # predict, batching on, batching off, in turn, --repeats times: on a shared machine the medians of
    # runs side by side, not one run of each, make the ratios.
    for round_number in range(1, settings.repeats + 1):
        print(f"round {round_number}/{settings.repeats}: predict {count} texts", file=sys.stderr, flush=True)
        output.unlink(missing_ok=True)
        predicted = run_measured(command, timeout=settings.timeout, env=offline_env(), cwd=settings.work_dir)
        if predicted.returncode != 0:
            print(
                f"predict failed ({predicted.returncode}): {shlex.join(command)}\n{predicted.stderr[-2000:]}",
                file=sys.stderr,
            )
            return 1
        labels = labels or read_ours_labels(output)
        results["predict"]["texts_per_s_each"].append(parse_ours_output(predicted.stdout)["texts_per_s"])
        for batch in (64, 1):
            print(
                f"round {round_number}/{settings.repeats}: serve --max-batch-size {batch}: "
                f"{settings.clients} clients x {settings.requests_per_client}",
                file=sys.stderr,
                flush=True,
            )
            each_run[batch].append(throughput_run(settings, settings.model_dir, texts, labels, batch))
        if settings.compare_command:
            print(
                f"round {round_number}/{settings.repeats}: the compared server, batching", file=sys.stderr, flush=True
            )
            compared.append(
                throughput_run(settings, settings.model_dir, texts, labels, 64, command=settings.compare_command)
            )
    config = json.loads((settings.model_dir / "config.json").read_text(encoding="utf-8"))
    num_labels = len(config.get("id2label") or {}) or 2
    results["predict"]["texts_per_s"] = statistics.median(results["predict"]["texts_per_s_each"])
    results["runs"] = [_median_run(each_run[batch]) for batch in (64, 1)]
    if compared:
        results["compared"] = {"command": shlex.join(settings.compare_command), **_median_run(compared)}
    if settings.mixed_precision != settings.precision:
        # The mixed run checks every answer's label against predict's at the same precision: in bf16 a
        # text at a 50/50 probability can tip either way with the shape of its batch.
        print(f"predict {count} texts at --precision {settings.mixed_precision}", file=sys.stderr, flush=True)
        output.unlink(missing_ok=True)
        reference_command = [
            *command[: command.index("--precision")],
            "--precision",
            settings.mixed_precision,
            "--json",
        ]
        if run_measured(
            reference_command, timeout=settings.timeout, env=offline_env(), cwd=settings.work_dir
        ).returncode:
            print(f"predict failed: {shlex.join(reference_command)}", file=sys.stderr)
            return 1
        labels = read_ours_labels(output)
    print(f"mixed run: {settings.mixed_requests} requests", file=sys.stderr, flush=True)
    results["mixed"] = mixed_run(settings, settings.model_dir, texts, labels, num_labels)
    results["mixed"]["precision"] = settings.mixed_precision

    on, off = results["runs"]
    reference = results["predict"]["texts_per_s"]
    results["batching_speedup"] = on["texts_per_s"] / off["texts_per_s"] if off["texts_per_s"] else None
    results["share_of_predict"] = on["texts_per_s"] / reference if reference else None
    results["share_of_predict_each_round"] = [
        served / predicted
        for served, predicted in zip(on["texts_per_s_each"], results["predict"]["texts_per_s_each"], strict=True)
    ]
    (settings.work_dir / "serve_bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_report(results)
    print(f"wrote {settings.work_dir / 'serve_bench.json'}", file=sys.stderr)
    mixed = results["mixed"]
    return 0 if not mixed["valid_wrong"] and not mixed["invalid_wrong_status"] and mixed["healthy_after"] else 1


def _median_run(runs: list[dict]) -> dict:
    """The run with the median texts/s (its latencies and counters), with every run's texts/s beside it."""
    ordered = sorted(runs, key=lambda run: run["texts_per_s"] or 0)
    return {**ordered[(len(ordered) - 1) // 2], "texts_per_s_each": [run["texts_per_s"] for run in runs]}


def _number(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def print_report(results: dict) -> None:
    print(f"\n{results['clients']} concurrent clients, one text per request; model {results['model_dir']}\n")
    print("| system | texts/s | p50 ms | p99 ms | batches | mean batch | labels = predict | server RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| `roberta-ft predict` (one process, the same texts) | {_number(results['predict']['texts_per_s'])} | | | | | | |"
    )
    for run in results["runs"]:
        name = (
            "serve, batching (`--max-batch-size 64`)"
            if run["max_batch_size"] > 1
            else "serve, no batching (`--max-batch-size 1`)"
        )
        agree = run["labels_agree_with_predict"]
        print(
            f"| {name} | {_number(run['texts_per_s'])} | {_number(run['p50_ms'])} | {_number(run['p99_ms'])} | "
            f"{run['batches']} | {_number(run['mean_batch_size'], 2)} | {_number(agree * 100 if agree is not None else None)}% | "
            f"{_number(run['server_rss_mb'], 0)} |"
        )
    each = {"predict": results["predict"]["texts_per_s_each"]}
    each.update({f"batch {run['max_batch_size']}": run["texts_per_s_each"] for run in results["runs"]})
    print(
        "\ntexts/s of each round (medians above): "
        + "; ".join(f"{name} {', '.join(_number(value) for value in values)}" for name, values in each.items())
    )
    compared = results.get("compared")
    if compared:
        ours = results["runs"][0]["texts_per_s"]
        print(
            f"compared server ({compared['command']}), batching: {_number(compared['texts_per_s'])} texts/s "
            f"(rounds {', '.join(_number(value) for value in compared['texts_per_s_each'])}); p50 "
            f"{_number(compared['p50_ms'])} ms, p99 {_number(compared['p99_ms'])} ms, mean batch "
            f"{_number(compared['mean_batch_size'], 2)}; ours / compared: {_number(ours / compared['texts_per_s'], 2)}x"
        )
    print(
        f"batching on / off: {_number(results['batching_speedup'], 2)}x; "
        f"batching / predict: {_number((results['share_of_predict'] or 0) * 100)}% (medians; each round "
        f"{', '.join(_number(share * 100) + '%' for share in results['share_of_predict_each_round'])})"
    )
    mixed = results["mixed"]
    print(
        f"mixed run (--precision {mixed['precision']}): {mixed['requests']} requests ({mixed['valid']} valid, {mixed['invalid']} invalid) in "
        f"{_number(mixed['wall_seconds'])} s; valid answered wrongly: {mixed['valid_wrong']}; invalid without "
        f"their 4xx: {mixed['invalid_wrong_status']}; healthy after: {mixed['healthy_after']}; server RSS "
        f"{_number(mixed['server_rss_mb_before'], 0)} -> "
        f"{' -> '.join(_number(value, 0) for value in mixed.get('server_rss_mb_after_each_round', [mixed['server_rss_mb_after']]))} MB "
        "(after each round); "
        f"exit codes after SIGTERM: {[run['exit_code'] for run in results['runs']] + [mixed['exit_code']]}"
    )
    for problem in mixed["problems"]:
        print(f"  ! {problem}")


if __name__ == "__main__":
    sys.exit(main())
