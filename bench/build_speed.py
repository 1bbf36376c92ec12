"""build-dataset against a one-process PIL loop: small PNGs (MNIST) and large JPEGs.

Both read the same split CSVs and produce the same arrays (params.yaml's build_dataset
defaults). Both are timed in-process: "ours" is build_dataset() (decode workers, the sha256
check, statistics, writing .npy), the loop its decode loop and np.save. The whole stage process
(interpreter start and imports included) is reported beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import PYTHON, ROOT, make_project, measured, median, run_json, sh

LOOP = str(ROOT / "bench" / "pil_loop.py")
OURS = str(ROOT / "bench" / "arm_build.py")


def compare(project: Path, runs: int) -> dict[str, float]:
    """Median wall and peak RSS of both, interleaved so machine load hits both alike."""
    ours, loop, stage = [], [], []
    for _ in range(runs):
        ours.append(run_json([PYTHON, OURS], project))
        loop.append(run_json([PYTHON, LOOP], project))
        stage.append(measured([PYTHON, "stages/build_dataset.py"], project))
    files = loop[0]["files"]
    decoded = sum(
        np.load(project / "data/processed" / f"{s}_images.npy", mmap_mode="r").nbytes
        for s in ("train", "val", "test")
    )
    ours_s = median([r["wall_s"] for r in ours])
    loop_s = median([r["wall_s"] for r in loop])
    return {
        "files": files,
        "ours_s": ours_s,
        "pil_loop_s": loop_s,
        "ours_files_per_s": files / ours_s,
        "pil_loop_files_per_s": files / loop_s,
        "speedup": loop_s / ours_s,
        # peak RSS of the stage process tree (/usr/bin/time): getrusage in a child of this
        # torch-loaded process would report the parent's size, inherited through fork
        "ours_peak_rss_mib": max(r["peak_rss_mib"] for r in stage),
        "stage_s": median([r["wall_s"] for r in stage]),
        "decoded_mib": decoded / 2**20,
        "runs": runs,
    }


def make_large_jpegs(root: Path, per_class: int = 60, size=(3000, 2000)) -> Path:
    """Photo-like JPEGs (smooth colour fields plus grain), two classes, ~6 megapixels each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(2):
        (root / f"class{k}").mkdir(parents=True)
        for i in range(per_class):
            low = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
            img = Image.fromarray(low).resize(size, Image.Resampling.BICUBIC)
            grain = rng.integers(-4, 5, (size[1], size[0], 3))  # sensor-like noise
            pixels = np.clip(np.asarray(img, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{k}" / f"{i:03d}.jpg", quality=90)
    return root


def run(tmp: Path, mnist_raw: Path, runs: int) -> dict[str, dict[str, float]]:
    out = {}
    mnist = make_project(tmp / "build-mnist", mnist_raw, {})
    sh([PYTHON, "stages/split.py"], mnist)
    out["mnist_png"] = compare(mnist, runs)
    jpegs = make_project(tmp / "build-jpeg", make_large_jpegs(tmp / "jpeg-raw"), {})
    sh([PYTHON, "stages/split.py"], jpegs)
    out["large_jpeg"] = compare(jpegs, runs)
    return out
