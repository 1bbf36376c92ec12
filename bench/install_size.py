"""Install time and venv size of a fresh clone, and the pinned packages of each platform.

    python bench/install_size.py                      # make install in a temp clone of HEAD
    python bench/install_size.py --python python3.13 --lock OLD.lock   # another Python or lock
    python bench/install_size.py --pins               # what the lock installs on each platform

The install runs with pip's cache off, so every wheel is downloaded as on a new machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT

# uv's platform names, as in tests/test_lock.py; macOS wheels of the lock start at macOS 14
PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
    "windows-x86_64": "x86_64-pc-windows-msvc",
}
GROUPS = {"torch": ("torch", "torchvision"), "cuda": ("nvidia", "triton", "cuda")}


def _tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink() and p.is_file())


def measure_install(python: str | None, torch: str, lock: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="install-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        if lock:
            shutil.copy(lock, clone / "requirements.lock")
        cmd = ["make", "install", f"TORCH={torch}", *([f"PYTHON={python}"] if python else [])]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=clone, check=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
        seconds = time.perf_counter() - start
        venv = clone / ".venv"
        (site,) = venv.glob("lib/python3.*/site-packages")
        sizes = {name: 0 for name in [*GROUPS, "other"]}
        for entry in site.iterdir():
            group = next(
                (g for g, prefixes in GROUPS.items() if entry.name.split("-")[0] in prefixes),
                "other",
            )
            sizes[group] += _tree_bytes(entry) if entry.is_dir() else entry.stat().st_size
        version = subprocess.run([venv / "bin/python", "-V"], capture_output=True, text=True)
        return {
            "python": version.stdout.strip(),
            "torch": torch,
            "install_s": round(seconds, 1),
            "venv_mib": round(_tree_bytes(venv) / 2**20),
            "site_packages_mib": {k: round(v / 2**20) for k, v in sizes.items()},
        }


def pins_per_platform(python: str) -> dict[str, list[str]]:
    pins = {}
    for name, uv_platform in PLATFORMS.items():
        run = subprocess.run(
            [
                "uv",
                "pip",
                "compile",
                str(ROOT / "requirements.lock"),
                "--python-platform",
                uv_platform,
                "--python-version",
                python,
                "--no-header",
                "--no-annotate",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"},
        )
        pins[name] = run.stdout.split()
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", help="PYTHON= for make (default: make's own choice)")
    parser.add_argument("--torch", default="default", choices=["default", "cpu"])
    parser.add_argument("--lock", type=Path, help="install this lock instead of HEAD's")
    parser.add_argument("--pins", action="store_true", help="list the pins of each platform")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.pins:
        pins = pins_per_platform("3.12")
        everywhere = set.intersection(*(set(p) for p in pins.values()))
        result = {
            "everywhere": len(everywhere),
            **{k: sorted(set(p) - everywhere) for k, p in pins.items()},
        }
        (RESULTS / "pins.json").write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    else:
        result = measure_install(args.python, args.torch, args.lock)
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
