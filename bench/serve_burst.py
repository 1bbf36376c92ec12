"""The HTTP service under a bounded burst on loopback: requests/s and p50/p99 latency, one and
16 inputs per request: MNIST images (multipart), rows of a table and texts (JSON)
(`python bench/serve_burst.py [--only images table text]`). Its helpers also drive the
real-uvicorn tests (tests/test_serve.py, tests/test_serve_kinds.py): one server start-up and one
burst client for all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"  # loopback only: nothing leaves the machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    exit_code: int | None = None
    log: str = ""  # uvicorn's stderr, complete once the server has stopped


@contextlib.contextmanager
def running_server(model: Path, *flags: str, src: Path, timeout: float = 60) -> Iterator[Server]:
    """`torchstages serve` in its own process on a free loopback port; stopped with SIGTERM
    (exit code and log kept on the Server), killed if it has not exited 30 s later. uvicorn
    re-raises the signal after its graceful shutdown: a clean stop exits with -SIGTERM."""
    port = free_port()
    cmd = [sys.executable, "-m", "torchstages.cli", "serve", "--model", str(model), "--host", HOST]
    env = {**os.environ, "PYTHONPATH": str(src)}
    # the log goes to a file: a pipe nobody reads fills up with access lines and blocks uvicorn
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [*cmd, "--port", str(port), *flags], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        server = Server(f"http://{HOST}:{port}", process)
        try:
            _wait_healthy(server, log, timeout)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                server.exit_code = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.seek(0)
            server.log = log.read()


def _wait_healthy(server: Server, log: IO[str], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"serve exited {server.process.returncode}: {log.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve did not answer /health within {timeout} s")
        time.sleep(0.1)


@dataclass
class Answer:
    status: int
    body: Any
    seconds: float


def uploads(parts: list[tuple[str, bytes]]) -> dict[str, Any]:
    """A burst payload of image files: (filename, bytes) parts sent as multipart ``files``."""
    return {"files": [("files", part) for part in parts]}


def burst(url: str, payloads: list[dict[str, Any]], requests: int, concurrency: int):
    """POST ``requests`` requests to ``url``/predict, ``concurrency`` at a time, cycling through
    ``payloads`` (httpx keyword arguments: :func:`uploads` for images, ``{"json": ...}`` for
    the JSON kinds); every request has a 60 s timeout, so the burst always ends. Returns
    (answers in request order, wall seconds)."""
    import httpx

    async def run() -> list[Answer]:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

            async def one(i: int) -> Answer:
                async with gate:
                    start = time.perf_counter()
                    response = await client.post("/predict", **payloads[i % len(payloads)])
                    return Answer(
                        response.status_code, response.json(), time.perf_counter() - start
                    )

            return await asyncio.gather(*(one(i) for i in range(requests)))

    start = time.perf_counter()
    answers = asyncio.run(run())
    return answers, time.perf_counter() - start


def summary(answers: list[Answer], wall: float, inputs_per_request: int) -> dict[str, float]:
    import numpy as np

    latencies = np.array([a.seconds for a in answers]) * 1000
    return {
        "requests": len(answers),
        "failed": sum(a.status != 200 for a in answers),
        "requests_per_s": round(len(answers) / wall, 1),
        "inputs_per_s": round(len(answers) * inputs_per_request / wall, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
    }


def image_cases() -> Iterator[tuple[str, Path, Any]]:
    """The MNIST model in fp32 and int8, and a request of ``batch`` test PNGs."""
    from deploy_model import mnist_test_files, prepare_model

    export = prepare_model()
    files = mnist_test_files()[:512]

    def payloads(batch: int) -> list[dict[str, Any]]:
        return [
            uploads([(Path(f).name, Path(f).read_bytes()) for f in files[i : i + batch]])
            for i in range(0, len(files), batch)
        ]

    for name in ("model.onnx", "model.int8.onnx"):
        yield f"images {name}", export / name, payloads


def json_cases(kind: str, scratch: Path) -> Iterator[tuple[str, Path, Any]]:
    """A tiny table or text model (the tests' served_models: one epoch on generated data, the
    model's size barely matters next to HTTP and JSON) and requests of ``batch`` rows/texts."""
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root / "src"), str(root / "tests")]  # this checkout's code, as the server
    import served_models
    from torchstages.tables.read import read_table

    if kind == "table":
        export = served_models.export_table(scratch / kind, rows=600)
        frame = read_table(export.parent / "raw/table.csv").drop(columns=["target"])
        items = [
            {k: (None if v != v else v) for k, v in r.items()} for r in frame.to_dict("records")
        ]
        field = "rows"
    else:
        export = served_models.export_text(scratch / kind, rows=600)
        items = read_table(export.parent / "raw/texts.csv")["text"].fillna("").tolist()
        field = "texts"

    def payloads(batch: int) -> list[dict[str, Any]]:
        return [{"json": {field: items[i : i + batch]}} for i in range(0, 512, batch)]

    yield f"{kind} model.onnx", export / "model.onnx", payloads


def main() -> None:
    import argparse

    from common import machine, save
    from deploy_model import ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    kinds = ("images", "table", "text")
    parser.add_argument("--only", nargs="+", choices=kinds, default=list(kinds))
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in args.only:
            cases = image_cases() if kind == "images" else json_cases(kind, Path(scratch))
            for name, model, payloads in cases:
                with running_server(model, src=ROOT / "src") as server:
                    for batch in (1, 16):
                        requests = payloads(batch)
                        burst(server.url, requests, 20, args.concurrency)  # warm-up
                        answers, wall = burst(server.url, requests, args.requests, args.concurrency)
                        row = summary(answers, wall, batch)
                        results[f"{name} batch {batch}"] = row
                        print(f"{name:22s} batch {batch:2d}: {row}", flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(save("serve_burst", results))


if __name__ == "__main__":
    main()
