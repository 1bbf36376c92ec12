"""build-dataset's library function timed in-process, as the PIL loop is (no interpreter start).

Run inside a project folder (after split): ``python arm_build.py``; prints one JSON line with
the wall time (peak memory is measured on the stage process, see build_speed.py).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from torchstages import paths
from torchstages.data.build import build_dataset
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams


def main() -> None:
    params = load_section(BuildDatasetParams, "build_dataset")
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        start = time.perf_counter()
        counts = build_dataset(params, paths.RAW, paths.SPLITS, Path(tmp) / "processed")
        wall = time.perf_counter() - start
    files = sum(counts.values())
    print(json.dumps({"files": files, "wall_s": wall}))


if __name__ == "__main__":
    main()
