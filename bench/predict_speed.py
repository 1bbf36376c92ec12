"""`torchstages predict` on MNIST's 10,000 test PNGs (`python bench/predict_speed.py`): start-up
time per format, and images/s of the whole command on the test folder (start-up, folder walk
with content sniffing, parallel decode, batched inference, jsonl output) with its accuracy;
then `torchstages evaluate` on the same folder (one folder per digit), as a user runs it: its
metrics with 1,000 bootstrap resamples."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "pt2": "model.pt2"}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    from common import machine, no_arguments, save
    from deploy_model import ROOT, mnist_test_files, prepare_model

    no_arguments(__doc__)
    export = prepare_model()
    files = mnist_test_files()
    folder = str(Path(files[0]).parent.parent)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    predict = [sys.executable, "-m", "torchstages.cli", "predict"]
    results: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0]}
    reference = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -c 'import onnxruntime'": [sys.executable, "-c", "import onnxruntime"],
    }
    for name, cmd in reference.items():
        results[f"start-up {name}"] = statistics.median(timed(cmd, env) for _ in range(3))
    for fmt, name in FILES.items():
        one = [*predict, "--model", str(export / name), files[0]]
        results[f"start-up predict 1 image {fmt}"] = statistics.median(
            timed(one, env) for _ in range(3)
        )
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in FILES.items():
            out = Path(tmp) / f"{fmt}.jsonl"
            wall = timed(
                [*predict, "--model", str(export / name), folder, "--output", str(out)], env
            )
            rows = [json.loads(line) for line in out.read_text().splitlines()]
            right = sum(r["top"][0]["class"] == Path(r["path"]).parent.name for r in rows)
            results[f"predict {fmt}"] = {
                "images": len(rows),
                "seconds": round(wall, 2),
                "images_per_s": round(len(rows) / wall, 1),
                "accuracy": round(right / len(rows), 4),
                "errors": sum(r["error"] is not None for r in rows),
            }
        # the same folder as labelled data: MNIST's test folder holds one folder per digit
        evaluate = [sys.executable, "-m", "torchstages.cli", "evaluate"]
        for fmt in ("onnx", "onnx-int8"):
            out = Path(tmp) / f"{fmt}.json"
            wall = timed([*evaluate, str(export / FILES[fmt]), folder, "--output", str(out)], env)
            metrics = json.loads(out.read_text())
            results[f"evaluate {fmt}"] = {
                "images": metrics["samples"],
                "seconds": round(wall, 2),
                "images_per_s": round(metrics["samples"] / wall, 1),
                "accuracy": metrics["accuracy"],
                "accuracy_95ci": [metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]],
            }
    results["load_after"] = os.getloadavg()[0]
    for key, value in results.items():
        if key != "machine":
            print(f"{key:45s} {value if isinstance(value, dict) else round(value, 3)}")
    print(save("predict_speed", results))


if __name__ == "__main__":
    main()
