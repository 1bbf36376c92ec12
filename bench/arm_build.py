"""build-dataset's library function timed in-process, as the PIL loop is (no interpreter start).

Run inside a project folder (after split): ``python arm_build.py``; prints one JSON line with
the wall time and the peak RSS of this process and of its decode workers (the larger one).
"""

from __future__ import annotations

import json
import resource
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
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    files = sum(counts.values())
    print(json.dumps({"files": files, "wall_s": wall, "peak_rss_mib": peak_kib / 1024}))


if __name__ == "__main__":
    main()
