"""Arm "ours": the train stage's library function on data/processed, timed as a whole.

Run inside a project folder: ``python arm_ours.py EPOCHS [KEY=VALUE ...]``; prints one JSON
line. ``KEY=VALUE`` overrides a train param (``precision=fp32``), validated like params.yaml.
Everything the train stage does is inside the timing: loading the arrays, moving them to the
device, every epoch's training and validation, dvclive logging, checkpoint and model writes.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from torchstages.params.base import load_section
from torchstages.params.train import TrainParams
from torchstages.training.loop import TrainOutputs, train


def main() -> None:
    epochs = int(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    epoch_times = _EpochTimes()
    logging.getLogger("torchstages.training.progress").addHandler(epoch_times)
    logging.getLogger("torchstages.training.progress").setLevel(logging.INFO)
    defaults = load_section(TrainParams, "train").model_dump()
    overrides = dict(arg.split("=", 1) for arg in sys.argv[2:])
    params = TrainParams.model_validate({**defaults, **overrides, "epochs": epochs})
    meta = json.loads(Path("data/processed/meta.json").read_text())
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        out = Path(tmp)
        outputs = TrainOutputs(out / "w.safetensors", out / "m.json", out / "c.pt", out / "live")
        start = time.perf_counter()
        card = train(params, Path("data/processed"), outputs)
        wall = time.perf_counter() - start
        val = json.loads((out / "live" / "metrics.json").read_text())["val"]["accuracy"]
    n = meta["counts"]["train"]
    print(
        json.dumps(
            {
                "arm": "ours",
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                "epochs": epochs,
                "train_samples": n,
                "wall_s": wall,
                "samples_per_s": n * epochs / wall,
                "val_accuracy": val,
                # what the loop's own epoch timer saw; the rest is set-up, logging, checkpoints
                "epochs_s": sum(epoch_times.seconds),
                "parameters": card["parameters"],
                "runtime": {k: card[k] for k in ("precision", "channels_last")},
                # the whole process: interpreter, torch, the uint8 splits, model and activations
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


class _EpochTimes(logging.Handler):
    """Collects the seconds the train loop logs for each epoch (train pass + validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("epoch ") and record.args:
            self.seconds.append(float(record.args[3]))  # (epoch, epochs, metrics, seconds, ...)


if __name__ == "__main__":
    main()
