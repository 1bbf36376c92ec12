"""Inference latency of each exported format against eager PyTorch, batch 1 and 64
(`python bench/export_latency.py [--kinds images table text series]`): median ms per batch over
repeated runs after warm-up, on the CPU (and eager/pt2 on the GPU when there is one). The
models: bench/deploy_model.py (images), bench/deploy_kinds.py (table, text, series); each batch
is rows of its test split, as the exported model's named inputs."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("images", "table", "text", "series")


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


def arms(
    export: Path, eager: Any, batch: dict[str, np.ndarray], device: str
) -> dict[str, Callable]:
    """name -> one call on ``batch`` (named inputs): eager PyTorch (``eager``, the exported
    wrapper module, fp32, eval, inference mode), the .pt2 program, and ONNX Runtime fp32 and int8
    on the CPU."""
    import torch

    from torchstages.deploy.runtime import load_runner

    eager = eager.to(device).eval()
    program = torch.export.load(str(export / "model.pt2")).module().to(device)
    names = [i["name"] for i in load_runner(export / "model.onnx").inputs]
    x = [torch.from_numpy(batch[n]).to(device) for n in names]

    def torch_call(module):
        def call():
            with torch.inference_mode():
                return module(*x)

        return call

    found = {"eager PyTorch": torch_call(eager), "pt2 (torch.export)": torch_call(program)}
    if device == "cpu":
        onnx = load_runner(export / "model.onnx")
        int8 = load_runner(export / "model.int8.onnx")
        found["ONNX Runtime fp32"] = lambda: onnx.run(batch)
        found["ONNX Runtime int8"] = lambda: int8.run(batch)
    return found


def prepared(kind: str) -> tuple[Path, Any, dict[str, np.ndarray]]:
    """(export folder, eager wrapper module, test rows as named inputs in the model's dtypes)."""
    from torchstages.deploy.export import kind_export
    from torchstages.deploy.runtime import load_runner
    from torchstages.models.saved import load_model

    if kind == "images":
        from deploy_model import prepare_model

        export = prepare_model()
    else:
        from deploy_kinds import prepare_kind

        export = prepare_kind(kind) / "export"
    work = export.parent
    model, card = load_model(work / "model.safetensors", work / "model.json")
    spec = kind_export(model, card, work / "processed")
    dtypes = {i["name"]: i["dtype"] for i in load_runner(export / "model.onnx").inputs}
    rows = {k: np.asarray(v[:64]).astype(dtypes[k]) for k, v in spec.test.items()}
    return export, spec.exportable.module, rows


def main() -> None:
    import torch

    from common import machine, save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()[0]}
    for kind in args.kinds:
        export, eager, rows = prepared(kind)
        for device in devices:
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            for size in (1, 64):
                # a test split smaller than 64 rows is repeated up to the batch size
                batch = {k: np.resize(v, (size, *v.shape[1:])) for k, v in rows.items()}
                calls = arms(export, eager, batch, device)
                runs = 200 if size == 1 else 50
                rounds: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(args.rounds):  # interleaved, so a busy moment hits every arm
                    for name, call in calls.items():
                        rounds[name].append(median_ms(call, runs, 20, sync))
                for name, values in rounds.items():
                    ms = statistics.median(values)
                    key = f"{device} batch {size} {name}"
                    results[key if kind == "images" else f"{kind} {key}"] = round(ms, 4)
                    print(f"{kind:6s} {device:4s} batch {size:2d}  {name:20s} {ms:8.3f} ms")
    results["load_after"] = os.getloadavg()[0]
    print(save("export_latency", results))


if __name__ == "__main__":
    main()
