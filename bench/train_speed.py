"""Training throughput, three arms side by side on one project's split and processed data:
ours (the train stage's library function), the tutorial baseline, and the in-memory limit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, load_average, make_project, median, run_json, sh

ARMS = {
    "ours": ROOT / "bench" / "arm_ours.py",
    "baseline": ROOT / "bench" / "baseline_loop.py",
    "limit": ROOT / "bench" / "arm_limit.py",
}


def prepare(dest: Path, raw: Path | None, build: dict[str, Any]) -> Path:
    """Split and build-dataset run by our own stages; every arm reads what they wrote."""
    project = make_project(dest, raw, {"build_dataset": build})
    sh([PYTHON, "stages/split.py"], project)
    sh([PYTHON, "stages/build_dataset.py"], project)
    return project


def run(project: Path, epochs: int, runs: int) -> dict[str, Any]:
    """Arms interleaved run by run, so a burst of load from elsewhere hits all of them."""
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    loads = []
    for _ in range(runs):
        for arm, script in ARMS.items():
            loads.append(load_average())
            results[arm].append(run_json([PYTHON, str(script), str(epochs)], project))
    rate = {arm: median([r["samples_per_s"] for r in rs]) for arm, rs in results.items()}
    # like the other two arms, "ours" counts whole epochs (train pass + validation + per-epoch
    # logging, as the loop's own epoch timer sees them); with set-up and writes it is reported apart
    n, epochs_done = results["ours"][0]["train_samples"], results["ours"][0]["epochs"]
    whole_call = rate["ours"]
    rate["ours"] = median([n * epochs_done / r["epochs_s"] for r in results["ours"]])
    return {
        "epochs": epochs,
        "runs": runs,
        "train_samples": results["ours"][0]["train_samples"],
        "device": results["ours"][0]["device"],
        "samples_per_s": rate,
        "all_samples_per_s": {
            a: [round(r["samples_per_s"], 1) for r in rs] for a, rs in results.items()
        },
        "val_accuracy": {
            a: median([r.get("val_accuracy", 0) for r in rs])
            for a, rs in results.items()
            if a != "limit"
        },
        "ours_whole_call_samples_per_s": whole_call,
        "ours_setup_and_writes_s": median([r["wall_s"] - r["epochs_s"] for r in results["ours"]]),
        "vs_baseline": rate["ours"] / rate["baseline"],
        "of_limit": rate["ours"] / rate["limit"],
        "load_average": {"min": min(loads), "max": max(loads)},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
