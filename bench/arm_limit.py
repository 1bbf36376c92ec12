"""Arm "limit": the same model, optimizer, schedule and batch size on random tensors already in
memory (on the device), with the same per-epoch validation pass: no data loading at all. It
computes as the train stage does (the precision and memory format ``train`` resolves to), so it is
what this hardware can do with this model, and ours / limit measures only the data path and loop.

Run inside a project folder: ``python arm_limit.py EPOCHS``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from torchstages.device import resolve_device
from torchstages.models import build_model
from torchstages.params.base import load_section
from torchstages.params.train import TrainParams
from torchstages.training.optim import build_optimizer
from torchstages.training.runtime import configure
from torchstages.training.schedule import LRSchedule


def main() -> None:
    epochs = int(sys.argv[1])
    params = load_section(TrainParams, "train").model_copy(update={"epochs": epochs})
    meta = json.loads(Path("data/processed/meta.json").read_text())
    prep = meta["preprocessing"]
    shape = (meta["channels"], *prep["image_size"])
    n_train, n_val, classes = meta["counts"]["train"], meta["counts"]["val"], len(meta["classes"])
    device = resolve_device(params.device)
    torch.manual_seed(params.seed)
    model = build_model(params.model, shape[0], tuple(shape[1:]), classes)
    runtime = configure(params, device).for_model(model)
    fmt = runtime.memory_format
    model.to(device, memory_format=fmt)
    x = torch.randn(n_train, *shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (n_train,), device=device)
    vx = torch.randn(n_val, *shape, device=device).contiguous(memory_format=fmt)
    steps = (n_train + params.batch_size - 1) // params.batch_size
    optimizer = build_optimizer(params, model)
    schedule = LRSchedule(params.schedule, optimizer, params.epochs, steps)
    step = 0
    schedule.apply(step)
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for i in range(0, n_train, params.batch_size):
            with runtime.autocast():
                logits = model(x[i : i + params.batch_size])
                loss = F.cross_entropy(logits, y[i : i + params.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            schedule.apply(step)
        model.eval()
        with torch.no_grad():  # the same per-epoch validation pass as the train stage
            preds = [model(vx[i : i + 1024]).argmax(1) for i in range(0, n_val, 1024)]
        torch.cat(preds).cpu()
    _sync(device)
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "arm": "limit",
                "device": device.type,
                "runtime": {
                    "precision": runtime.precision_name(),
                    "channels_last": runtime.channels_last,
                },
                "epochs": epochs,
                "train_samples": n_train,
                "wall_s": wall,
                "samples_per_s": n_train * epochs / wall,
            }
        )
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
