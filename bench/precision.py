"""Train time of the project's own model and data under each precision and memory format, to see
whether `precision: auto` and `channels_last: auto` pay off for it: the default demo (16x16
grayscale digits, a small CNN) is far smaller than the MNIST and 32x32 cases of RESULTS.md's
throughput table, and bf16's gain grows with the convolutions' size.

Run from the project root after `dvc repro` (reads params.yaml's train section and
data/processed): python bench/precision.py [--epochs 8] [--runs 3]. Each run is the train
stage's function, set-up included (about 1.7 s, the same in every arm); arms are interleaved."""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from torchstages.params.train import TrainParams
from torchstages.training.loop import TrainOutputs, train

ARMS = {
    "auto": {},
    "bf16, contiguous": {"precision": "bf16", "channels_last": False},
    "fp32, channels_last": {"precision": "fp32", "channels_last": True},
    "fp32, contiguous": {"precision": "fp32", "channels_last": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    base = yaml.safe_load(Path("params.yaml").read_text())["train"]
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    accuracy: dict[str, float] = {}
    for _ in range(args.runs):
        for arm, overrides in ARMS.items():
            params = TrainParams.model_validate({**base, "epochs": args.epochs, **overrides})
            out = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            card = train(
                params,
                Path("data/processed"),
                TrainOutputs(out / "w.safetensors", out / "card.json", out / "ck.pt", out / "live"),
            )
            seconds[arm].append(time.perf_counter() - start)
            accuracy[arm] = card["best"]["value"]
    fastest = min(statistics.median(s) for s in seconds.values())
    print(f"| arm | median s ({args.epochs} epochs) | runs | vs fastest | best val |")
    print("|---|---|---|---|---|")
    for arm, runs in seconds.items():
        median = statistics.median(runs)
        shown = ", ".join(f"{s:.2f}" for s in runs)
        print(f"| {arm} | {median:.2f} | {shown} | {median / fastest:.2f}× | {accuracy[arm]} |")


if __name__ == "__main__":
    main()
