"""What each augmentation setting costs per batch, and what the ones a digit can take do to the
demo's test accuracy.

    python bench/augment.py [--reps 30] [--seeds 42 1 2] [--no-train]

Cost: ``augment_batch`` (and ``mix_batch``) on one batch of 256 images, 28x28 grey (MNIST's size)
and 64x64 RGB, median milliseconds over ``--reps`` calls after a warm-up, each setting alone on top of the
default crop and rotation. Accuracy: the demo digits split and built once, then trained and
tested with default params and with each arm's settings, one run per train seed (the split stays
seed 42's). Writes bench/results/augment.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from common import PYTHON, machine, make_project, save, sh
from torchstages.data.augment import Streams, augment_batch, mix_batch
from torchstages.models import build_model
from torchstages.params.train import AugmentParams, TrainParams

# each on top of the defaults (crop padding 2, rotation 10)
SETTINGS = {
    "default (crop 2, rotation 10)": {},
    "+ hflip + vflip": {"hflip": True, "vflip": True},
    "+ zoom [0.8, 1.25]": {"zoom": [0.8, 1.25]},
    "+ brightness, contrast 0.3": {"brightness": 0.3, "contrast": 0.3},
    "+ saturation 0.3 (RGB only)": {"saturation": 0.3},
    "+ erasing 0.25": {"erasing": 0.25},
    "+ mixup 0.2 (after augment)": {"mixup": 0.2},
    "+ cutmix 1.0 (after augment)": {"cutmix": 1.0},
}
SHAPES = {"28x28 grey": (256, 1, 28, 28), "64x64 RGB": (256, 3, 64, 64)}
STEP = "(a train step of the default CNN, fp32)"
# what a digit can take: no flips (a mirrored 2 is no digit), no colour
ARMS = {
    "default": {},
    "zoom [0.9, 1.1] + erasing 0.25": {"zoom": [0.9, 1.1], "erasing": 0.25},
    "mixup 0.2": {"mixup": 0.2},
    "cutmix 1.0": {"cutmix": 1.0},
}


def cost(reps: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    _time_all(3)  # the first calls of each op allocate and pick kernels: not what a run pays
    for name, row in _time_all(reps).items():
        out[name] = {shape: round(ms, 2) for shape, ms in row.items()}
    out[STEP] = {name: round(_train_step_ms(shape, reps), 2) for name, shape in SHAPES.items()}
    return out


def _train_step_ms(shape: tuple[int, ...], reps: int) -> float:
    """Median milliseconds of one fp32 training step of the default CNN on a batch of ``shape``:
    what the augmentation's cost compares with."""
    model = build_model(TrainParams().model, shape[1], shape[2:], 10)
    optimizer = torch.optim.AdamW(model.parameters())
    x, y = torch.rand(shape), torch.randint(0, 10, (shape[0],))
    times = []
    for _ in range(reps + 3):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:]) * 1000


def _time_all(reps: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per batch of each setting on each shape."""
    out: dict[str, dict[str, float]] = {}
    for name, extra in SETTINGS.items():
        aug = AugmentParams(**extra)
        out[name] = {}
        for shape_name, shape in SHAPES.items():
            if aug.saturation and shape[1] != 3:
                continue
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 255
            streams = Streams(1)
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                y = augment_batch(x, aug, streams)
                if aug.mixes:
                    mix_batch(y, aug, streams("mix"))
                times.append(time.perf_counter() - start)
            out[name][shape_name] = statistics.median(times) * 1000
    return out


def accuracy(seeds: list[int]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "project", None, {}, dvc=False)
        sh([PYTHON, "stages/split.py"], project)
        sh([PYTHON, "stages/build_dataset.py"], project)
        params_path = project / "params.yaml"
        base = yaml.safe_load(params_path.read_text())
        for arm, extra in ARMS.items():
            scores, seconds = [], []
            for seed in seeds:
                params = json.loads(json.dumps(base))
                params["train"]["seed"] = seed
                params["train"]["augment"].update(extra)
                params_path.write_text(yaml.safe_dump(params, sort_keys=False))
                seconds.append(sh([PYTHON, "stages/train.py"], project))
                sh([PYTHON, "stages/test.py"], project)
                metrics = json.loads((project / "metrics/test.json").read_text())
                scores.append(metrics["accuracy"])
            results[arm] = {
                "mean_test_accuracy": round(statistics.mean(scores), 4),
                "per_seed": scores,
                "train_s_median": round(statistics.median(seconds), 1),
            }
            print(arm, results[arm], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--no-train", action="store_true", help="the cost table only")
    args = parser.parse_args()
    out: dict = {"machine": machine(), "batch_ms": cost(args.reps)}
    print(f"{'setting':<34}" + "".join(f"{s:>14}" for s in SHAPES))
    for name, row in out["batch_ms"].items():
        print(f"{name:<34}" + "".join(f"{row.get(s, '-'):>14}" for s in SHAPES))
    if not args.no_train:
        out["seeds"] = args.seeds
        out["demo_accuracy"] = accuracy(args.seeds)
    save("augment", out)


if __name__ == "__main__":
    main()
