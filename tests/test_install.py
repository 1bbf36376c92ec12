"""The Makefile's choice of Python: the newest supported python3.x that runs, or a clear stop."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")
SUPPORTED = f"{sys.version_info[0]}.{sys.version_info[1]}"  # this test's own Python


def _bin(tmp_path: Path, runs: dict[str, bool]) -> Path:
    """python3.x commands in a folder: a link to this Python, or one that fails like a pyenv
    shim of a version pyenv has not selected."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, ok in runs.items():
        if ok:
            (folder / name).symlink_to(sys.executable)
        else:
            (folder / name).write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
            (folder / name).chmod(0o755)
    return folder


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """make in a copy of the project's install files, with only ``folder`` on PATH."""
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, folder.parent / name)
    env = {**os.environ, "PATH": str(folder)}
    # under `make test` the outer make's variables would make this one a sub-make
    for name in ("PYTHON", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
        env.pop(name, None)
    return subprocess.run([MAKE, *args], cwd=folder.parent, env=env, capture_output=True, text=True)


def test_picks_the_newest_supported_name_that_runs(tmp_path):
    """Newest first, passing over a python3.x that does not run (a pyenv shim of a version that
    pyenv has not selected). Both runnable names are this Python: make checks the version is a
    supported one, not that it matches the name."""
    broken, other = [f"python3.{m}" for m in (13, 12, 11) if f"3.{m}" != SUPPORTED]
    folder = _bin(tmp_path, {broken: False, other: True, f"python{SUPPORTED}": True})
    newest = max(other, f"python{SUPPORTED}", key=lambda name: int(name.split(".")[1]))
    run = _make(folder, "--eval", 'which: ; @echo "$(PYTHON)"', "which")
    assert run.stdout.strip() == str(folder / newest), run


def test_no_supported_python_stops_with_what_to_install(tmp_path):
    folder = _bin(tmp_path, {"python3.13": False})
    run = _make(folder, "install")
    assert run.returncode != 0
    assert "None of python3.13 python3.12 python3.11 runs here" in run.stderr
    assert "make PYTHON=/path/to/python3.x" in run.stderr
    assert not (tmp_path / ".venv").exists()
