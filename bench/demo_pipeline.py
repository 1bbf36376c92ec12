"""Benchmark of the whole pipeline on the demo digits, as a user runs it from a fresh clone.

Copies the project into a temp git + DVC repo, writes the demo data, and measures:
- the first `dvc repro` (all six stages, run cache off) and a no-op `dvc repro`;
- test accuracy of the default params.yaml, and (with --split-seeds) across other splits
  to show how much of the number is the particular 270-image test split.

    python bench/demo_pipeline.py [--split-seeds 42 7 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], cwd: Path) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(cwd / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def fresh_project(dest: Path) -> Path:
    for name in ("stages", "src"):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, dest / name)
    sh(["git", "init", "-q"], dest)
    sh(["dvc", "init", "-q"], dest)
    sh([sys.executable, "-m", "torchstages.cli", "demo-data", "data/raw"], dest)
    (dest / ".gitignore").write_text("/data/raw/\n")
    sh(["git", "add", "-A"], dest)
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"], dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-seeds", type=int, nargs="*", default=[])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        repo = fresh_project(Path(tmp) / "project")
        first = sh(["dvc", "repro", "--no-run-cache"], repo)
        noop = sh(["dvc", "repro"], repo)
        test = json.loads((repo / "metrics/test.json").read_text())
        export = json.loads((repo / "metrics/export.json").read_text())
        print(f"dvc repro, all six stages: {first:.1f} s   (target < 90 s)")
        print(f"dvc repro, nothing changed: {noop:.1f} s")
        print(
            f"default params: test accuracy {test['accuracy']:.4f} (target >= 0.99), "
            f"f1_macro {test['f1_macro']:.4f}, {test['samples']} test images; export "
            + ", ".join(
                f"{fmt} max |diff| {m['max_abs_logit_diff']:.1e} agreement "
                f"{m['prediction_agreement']}"
                for fmt, m in export["formats"].items()
            )
        )
        for seed in args.split_seeds:
            params = yaml.safe_load((repo / "params.yaml").read_text())
            params["split"]["seed"] = seed
            (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            sh(["dvc", "repro"], repo)
            test = json.loads((repo / "metrics/test.json").read_text())
            print(f"split.seed={seed}: test accuracy {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
