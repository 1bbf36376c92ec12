"""Training throughput, arms side by side on one project's split and processed data: ours (the
train stage's library function at the params.yaml defaults), the tutorial baseline, the
in-memory limit, and ours again in fp32 NCHW (the tutorial's arithmetic), which splits our gain
into what the data path gives and what the precision / memory-format defaults give."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, load_average, make_project, median, run_json, sh

ARMS = {
    "ours": [ROOT / "bench" / "arm_ours.py"],
    "baseline": [ROOT / "bench" / "baseline_loop.py"],
    "limit": [ROOT / "bench" / "arm_limit.py"],
    "ours_fp32": [ROOT / "bench" / "arm_ours.py", "precision=fp32", "channels_last=false"],
}
OURS = ("ours", "ours_fp32")  # arms timed by the loop's own epoch timer


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
        for arm, (script, *overrides) in ARMS.items():
            loads.append(load_average())
            results[arm].append(run_json([PYTHON, str(script), str(epochs), *overrides], project))
    rate = {arm: median([r["samples_per_s"] for r in rs]) for arm, rs in results.items()}
    # like the other two arms, "ours" counts whole epochs (train pass + validation + per-epoch
    # logging, as the loop's own epoch timer sees them); with set-up and writes it is reported apart
    n, epochs_done = results["ours"][0]["train_samples"], results["ours"][0]["epochs"]
    whole_call = rate["ours"]
    for arm in OURS:
        rate[arm] = median([n * epochs_done / r["epochs_s"] for r in results[arm]])
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
        "ours_peak_rss_mib": max(r["peak_rss_mib"] for r in results["ours"]),
        "ours_setup_and_writes_s": median([r["wall_s"] - r["epochs_s"] for r in results["ours"]]),
        "runtime": {a: results[a][0]["runtime"] for a in ("ours", "ours_fp32", "limit")},
        "vs_baseline": rate["ours"] / rate["baseline"],
        "fp32_vs_baseline": rate["ours_fp32"] / rate["baseline"],
        "of_limit": rate["ours"] / rate["limit"],
        "load_average": {"min": min(loads), "max": max(loads)},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
