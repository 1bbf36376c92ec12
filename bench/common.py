"""Shared helpers of the benchmarks: temp projects, timed subprocesses, machine description."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable


def no_arguments(doc: str | None) -> None:
    """For a script run without arguments: --help prints its docstring instead of running it."""
    formatter = argparse.RawDescriptionHelpFormatter
    argparse.ArgumentParser(description=doc, formatter_class=formatter).parse_args()


def env_for(project: Path) -> dict[str, str]:
    """The project's own src first on the path (then any PYTHONPATH already set: a bare GPU
    machine's site folder, the bench-only dvclive stub), and the venv's tools (dvc) on PATH."""
    path = [str(project / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}",
    }


def sh(cmd: list[str], cwd: Path) -> float:
    """Run ``cmd`` in ``cwd``; wall seconds. Output is kept only when it fails."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env_for(cwd), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def measured(cmd: list[str], cwd: Path) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB, largest process of the tree) of one command."""
    out = cwd / ".time.txt"
    wall = sh(["/usr/bin/time", "-f", "%M", "-o", str(out), *cmd], cwd)
    peak_kib = int(out.read_text().split()[-1])
    out.unlink()
    return {"wall_s": wall, "peak_rss_mib": peak_kib / 1024}


def run_json(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Run a bench script that prints one JSON object on its last stdout line."""
    result = subprocess.run(cmd, cwd=cwd, env=env_for(cwd), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_project(
    dest: Path, raw: Path | None, overrides: dict[str, dict[str, Any]], dvc: bool = True
) -> Path:
    """A temp git + DVC copy of this project; ``raw`` hard-linked in (demo digits when None).
    ``dvc=False``: a plain folder, no git or DVC (for scripts that run the stages directly)."""
    dest.mkdir(parents=True)
    for name in ("stages", "src"):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if raw is None:
        sh([PYTHON, "-m", "torchstages.cli", "demo-data", "data/raw"], dest)
    else:
        link_tree(raw, dest / "data" / "raw")
    if not dvc:
        return dest
    (dest / ".gitignore").write_text("/data/raw/\n__pycache__/\n.time.txt\n")
    sh(["git", "init", "-q"], dest)
    sh(["dvc", "init", "-q"], dest)
    sh(["dvc", "add", "-q", "data/raw"], dest)  # as `make demo-data` does: data/raw.dvc
    commit(dest)
    return dest


def link_tree(src: Path, dest: Path) -> None:
    """Hard links when on one filesystem (instant, no extra disk), a copy otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(src, dest, copy_function=os.link)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)


def commit(repo: Path) -> None:
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"], repo)


def unpack_mnist(tmp: Path) -> Path:
    """MNIST's 60,000 training PNGs (../shared/datasets), unpacked outside the repo."""
    tarball = ROOT.parent / "shared" / "datasets" / "mnist-png.tar.gz"
    if not tarball.exists():
        tarball = Path("/work/shared/datasets/mnist-png.tar.gz")
    sh(["tar", "-xzf", str(tarball), "-C", str(tmp)], tmp)
    return tmp / "mnist" / "train"


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def load_average() -> float:
    return os.getloadavg()[0]


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
