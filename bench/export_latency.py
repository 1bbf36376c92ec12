"""Inference latency of each exported format against eager PyTorch, batch 1 and 64
(`python bench/export_latency.py`): median ms per batch over repeated runs after warm-up, on
the CPU (and eager/pt2 on the GPU when there is one). The model: bench/deploy_model.py."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def median_ms(fn: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def arms(export: Path, model_dir: Path, batch: np.ndarray, device: str) -> dict[str, Callable]:
    """name -> one call on ``batch``: eager PyTorch (the exported wrapper module, fp32, eval,
    inference mode), the .pt2 program, and ONNX Runtime fp32 and int8 on the CPU."""
    import torch

    from torchstages.deploy.exportable import exportable
    from torchstages.deploy.runtime import load_runner
    from torchstages.models.saved import load_model

    model, card = load_model(model_dir / "model.safetensors", model_dir / "model.json")
    eager = exportable(model, card).module.to(device).eval()
    program = torch.export.load(str(export / "model.pt2")).module().to(device)
    x = torch.from_numpy(batch).to(device)

    def torch_call(module):
        def call():
            with torch.inference_mode():
                return module(x)

        return call

    found = {"eager PyTorch": torch_call(eager), "pt2 (torch.export)": torch_call(program)}
    if device == "cpu":
        onnx = load_runner(export / "model.onnx")
        int8 = load_runner(export / "model.int8.onnx")
        found["ONNX Runtime fp32"] = lambda: onnx.run({"pixels": batch})
        found["ONNX Runtime int8"] = lambda: int8.run({"pixels": batch})
    return found


def main() -> None:
    import torch

    from common import machine, save
    from deploy_model import prepare_model
    from torchstages.deploy.runtime import load_runner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    args = parser.parse_args()
    export = prepare_model()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0]}
    rng = np.random.default_rng(0)
    shape = load_runner(export / "model.onnx").inputs[0]["shape"][1:]  # (C, H, W)
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for size in (1, 64):
            batch = rng.integers(0, 256, (size, *shape)).astype(np.float32)
            calls = arms(export, export.parent, batch, device)
            runs = 200 if size == 1 else 50
            rounds: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.rounds):  # interleaved, so a busy moment hits every arm
                for name, call in calls.items():
                    rounds[name].append(median_ms(call, runs, 20, sync))
            for name, values in rounds.items():
                ms = statistics.median(values)
                results[f"{device} batch {size} {name}"] = round(ms, 4)
                print(f"{device:4s} batch {size:2d}  {name:20s} {ms:8.3f} ms", flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(save("export_latency", results))


if __name__ == "__main__":
    main()
