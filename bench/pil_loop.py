"""The one-process PIL loop build-dataset is compared with: open, convert, resize, stack.

Run inside a project folder (after split): ``python pil_loop.py``; prints one JSON line. Same
files (the three split CSVs), same colour mode, size and filter as params.yaml's build_dataset.
"""

from __future__ import annotations

import csv
import json
import time

import numpy as np
from PIL import Image

from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams


def main() -> None:
    params = load_section(BuildDatasetParams, "build_dataset")
    size = params.image_size
    height, width = (size, size) if isinstance(size, int) else size
    mode = "L" if params.color == "grayscale" else "RGB"
    resample = Image.Resampling[params.interpolation.upper()]
    start = time.perf_counter()
    files = 0
    for split in ("train", "val", "test"):
        with open(f"data/splits/{split}.csv", newline="") as f:
            paths = [row["path"] for row in csv.DictReader(f)]
        arrays = []
        for path in paths:
            with Image.open(f"data/raw/{path}") as img:
                arrays.append(np.asarray(img.convert(mode).resize((width, height), resample)))
        np.save(f"pil_{split}.npy", np.stack(arrays))
        files += len(paths)
    wall = time.perf_counter() - start
    print(json.dumps({"files": files, "wall_s": wall, "files_per_s": files / wall}))


if __name__ == "__main__":
    main()
