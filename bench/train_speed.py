"""Training throughput, arms side by side on one project's split and processed data: ours (the
train stage's library function at the params.yaml defaults), the tutorial baseline, the
in-memory limit, and ours again in fp32 NCHW (the tutorial's arithmetic), which splits our gain
into what the data path gives and what the precision / memory-format defaults give.

`make bench` (bench/run_all.py) calls ``prepare`` and ``run``. Alone, this script runs the
32x32 RGB case only, with no git, DVC or ../shared (a bare GPU machine: every arm picks ``cuda``
through ``device: auto``), and writes OUT/train_rgb32.json:

    python bench/train_speed.py [--epochs 3] [--runs 3] [--rows 0] [--out bench/results]
                                [--budget-s SECONDS] [--stub-dvclive]

``--rows N``: N generated 32x32 RGB images (bench/gpu_images.py's set) instead of the demo digits.
Where dvclive is not installed, the arms import bench/stubs/dvclive (``--stub-dvclive`` forces it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    PYTHON,
    RESULTS,
    ROOT,
    env_for,
    load_average,
    machine,
    make_project,
    median,
    run_json,
    sh,
)

ARMS = {
    "ours": [ROOT / "bench" / "arm_ours.py"],
    "baseline": [ROOT / "bench" / "baseline_loop.py"],
    "limit": [ROOT / "bench" / "arm_limit.py"],
    "ours_fp32": [ROOT / "bench" / "arm_ours.py", "precision=fp32", "channels_last=false"],
}
OURS = ("ours", "ours_fp32")  # arms timed by the loop's own epoch timer


def prepare(dest: Path, raw: Path | None, build: dict[str, Any], dvc: bool = True) -> Path:
    """Split and build-dataset run by our own stages; every arm reads what they wrote."""
    project = make_project(dest, raw, {"build_dataset": build}, dvc=dvc)
    sh([PYTHON, "stages/split.py"], project)
    sh([PYTHON, "stages/build_dataset.py"], project)
    return project


def run(
    project: Path,
    epochs: int,
    runs: int,
    arms: tuple[str, ...] = tuple(ARMS),
    deadline: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Arms interleaved run by run, so a burst of load from elsewhere hits all of them.
    ``deadline`` (time.monotonic()): no further run is started that the last one's length says
    would end after it; the first always runs. ``runs`` in the result counts those done.
    ``progress``: each arm's JSON line on stderr as it ends (kept if the run is cut short)."""
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    loads = []
    done, last = 0, 0.0
    for _ in range(runs):
        if done and deadline is not None and time.monotonic() + last > deadline:
            break
        started = time.monotonic()
        for arm in arms:
            script, *overrides = ARMS[arm]
            loads.append(load_average())
            results[arm].append(run_json([PYTHON, str(script), str(epochs), *overrides], project))
            if progress:
                print(json.dumps({arm: results[arm][-1]}), file=sys.stderr, flush=True)
        done, last = done + 1, time.monotonic() - started
    rate = {arm: median([r["samples_per_s"] for r in rs]) for arm, rs in results.items()}
    # like the other two arms, "ours" counts whole epochs (train pass + validation + per-epoch
    # logging, as the loop's own epoch timer sees them); with set-up and writes it is reported apart
    n, epochs_done = results["ours"][0]["train_samples"], results["ours"][0]["epochs"]
    whole_call = rate["ours"]
    for arm in OURS:
        rate[arm] = median([n * epochs_done / r["epochs_s"] for r in results[arm]])
    return {
        "epochs": epochs,
        "runs": done,
        "train_samples": results["ours"][0]["train_samples"],
        "device": results["ours"][0]["device"],
        "devices": {a: rs[0]["device"] for a, rs in results.items()},
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
        **(
            {
                "vs_baseline": rate["ours"] / rate["baseline"],
                "fp32_vs_baseline": rate["ours_fp32"] / rate["baseline"],
            }
            if "baseline" in rate
            else {}
        ),
        "of_limit": rate["ours"] / rate["limit"],
        "load_average": {"min": min(loads), "max": max(loads)},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the 32x32 RGB training arms alone")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per arm (run_all: 3)")
    parser.add_argument("--runs", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument("--rows", type=int, default=0, help="generated images; 0: demo digits")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for train_rgb32.json")
    parser.add_argument("--stub-dvclive", action="store_true", help="bench/stubs/dvclive always")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="start no run that would end later than this"
    )
    args = parser.parse_args()
    deadline = None if args.budget_s is None else time.monotonic() + args.budget_s
    info = {**machine(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="torchstages-train-speed-") as name:
        tmp = Path(name)
        raw = None
        if args.rows:
            from gpu_images import write_generated  # numpy, PIL, scikit-learn's digits

            raw = tmp / "raw"
            write_generated(raw, args.rows, 32)
        project = prepare(tmp / "rgb32", raw, {"image_size": 32, "color": "rgb"}, dvc=False)
        # checked in the project, not here: the repo root's dvclive/ (run outputs) would import
        if args.stub_dvclive or not _module_file("dvclive", project):
            stubs = [str(ROOT / "bench" / "stubs"), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, stubs))
        info["dvclive"] = _module_file("dvclive", project)
        arms = tuple(ARMS)
        if not _module_file("torchvision", project):  # the baseline's transforms need it
            arms = tuple(a for a in ARMS if a != "baseline")
            info["skipped"] = "baseline: no torchvision"
        print(json.dumps({"machine": info}), flush=True)
        result = {
            "machine": info,
            "rows": args.rows,
            **run(project, args.epochs, args.runs, arms, deadline, progress=True),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_rgb32.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result))


def _module_file(module: str, project: Path) -> str:
    """Where the arms' processes import ``module`` from (the stub or the installed one); empty
    when it does not import."""
    cmd = [PYTHON, "-c", f"import {module}; print({module}.__file__)"]
    out = subprocess.run(cmd, cwd=project, env=env_for(project), capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


if __name__ == "__main__":
    main()
