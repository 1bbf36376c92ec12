"""requirements.lock: one pinned set for every supported (platform, Python), installable by pip.

The offline tests read the lock's environment markers; the registry test asks uv to resolve the
lock for each target against PyPI, so a pin that loses its wheels for a platform, a dependency
missing from the lock, or a marker that installs a Linux-only package elsewhere all fail here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
INDEX = "https://pypi.org/simple"
PYTHONS = ("3.11", "3.12", "3.13")
# uv's name for the platform, the marker environment pip sees there, extra environment for uv
PLATFORMS = {
    "linux-x86_64": (
        "x86_64-manylinux_2_28",
        {
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": "x86_64",
            "os_name": "posix",
        },
        {},
    ),
    "linux-aarch64": (
        "aarch64-manylinux_2_28",
        {
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": "aarch64",
            "os_name": "posix",
        },
        {},
    ),
    # wheels of onnxruntime (and others) start at macOS 14; the README says so
    "macos-arm64": (
        "aarch64-apple-darwin",
        {
            "sys_platform": "darwin",
            "platform_system": "Darwin",
            "platform_machine": "arm64",
            "os_name": "posix",
        },
        {"MACOSX_DEPLOYMENT_TARGET": "14.0"},
    ),
    "windows-x86_64": (
        "x86_64-pc-windows-msvc",
        {
            "sys_platform": "win32",
            "platform_system": "Windows",
            "platform_machine": "AMD64",
            "os_name": "nt",
        },
        {},
    ),
}
TARGETS = [(p, v) for p in PLATFORMS for v in PYTHONS]
# CUDA libraries of PyPI's Linux torch; nvidia-ml-py is pure Python (NVML calls) that dvclive
# imports on every platform
GPU_ONLY = re.compile(r"^(nvidia-(?!ml-py$)|cuda-|triton$)")


def _environment(platform: str, python: str) -> dict[str, str]:
    return {
        **PLATFORMS[platform][1],
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def _read_lock() -> list[Requirement]:
    lines = (line.split("#")[0].strip() for line in LOCK.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _pins_for(platform: str, python: str) -> dict[str, str]:
    """What `pip install -r requirements.lock` installs there: name -> version."""
    env = _environment(platform, python)
    pins = {}
    for req in _read_lock():
        if req.marker is None or req.marker.evaluate(env):
            name = canonicalize_name(req.name)
            assert name not in pins, f"{name} pinned twice for {platform} Python {python}"
            (spec,) = req.specifier
            assert spec.operator == "==", f"{req}: the lock pins exact versions"
            pins[name] = spec.version
    return pins


def test_supported_pythons_agree_with_pyproject_and_makefile():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = SpecifierSet(project["requires-python"])
    minors = [f"3.{m}" for m in range(8, 20) if f"3.{m}.0" in allowed]
    assert tuple(minors) == PYTHONS
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTHONS\s*:=\s*(.*)$", makefile, re.M)[1].split() == sorted(
        PYTHONS, reverse=True
    ), "the Makefile tries the newest supported Python first"


@pytest.mark.parametrize(("platform", "python"), TARGETS)
def test_lock_pins_every_dependency_of_pyproject(platform, python):
    """Runtime and dev dependencies (make test installs only the lock) each pinned, in range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins_for(platform, python)
    env = _environment(platform, python)
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for dep in map(Requirement, wanted):
        if dep.marker is not None and not dep.marker.evaluate(env):
            continue
        name = canonicalize_name(dep.name)
        assert name in pins, f"{dep} is missing from requirements.lock (run make lock)"
        assert dep.specifier.contains(pins[name], prereleases=True), f"{dep}: locked {pins[name]}"


@pytest.mark.parametrize(("platform", "python"), TARGETS)
def test_gpu_packages_only_on_linux_and_torch_everywhere(platform, python):
    pins = _pins_for(platform, python)
    gpu = sorted(name for name in pins if GPU_ONLY.match(name))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    if platform.startswith("linux"):
        assert {"nvidia-cudnn-cu13", "triton"} <= set(gpu)  # PyPI's Linux torch is the CUDA build
    else:
        assert gpu == [], f"{platform} would try to install Linux-only packages"


def test_cpu_torch_filter_in_makefile_removes_exactly_the_linux_only_packages():
    """make TORCH=cpu drops the lock lines that this pattern matches; everything else stays."""
    makefile = (ROOT / "Makefile").read_text()
    pattern = re.compile(re.search(r"^GPU_ONLY\s*:=\s*(.*)$", makefile, re.M)[1])
    linux = set(_pins_for("linux-x86_64", "3.12"))
    elsewhere = set(_pins_for("macos-arm64", "3.12")) | set(_pins_for("windows-x86_64", "3.12"))
    lines = [line for line in LOCK.read_text().splitlines() if not line.startswith(" ")]
    dropped = {
        canonicalize_name(Requirement(line.split(";")[0]).name)
        for line in lines
        if line and not line.startswith("#") and pattern.search(line)
    }
    assert dropped == {name for name in linux - elsewhere if GPU_ONLY.match(name)}
    assert dropped and "torch" not in dropped and "nvidia-ml-py" not in dropped


def _registry_reason() -> str | None:
    """Why the registry cannot be asked, or None when it answers."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{INDEX}/pip/", method="HEAD"), timeout=15
        ):
            return None
    except (urllib.error.URLError, OSError) as err:
        return f"{INDEX} is unreachable ({err}): the lock was NOT resolved for any target"


def _uv(uv: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [
        uv,
        "pip",
        "compile",
        str(LOCK),
        *args,
        "--index-url",
        INDEX,
        "--no-header",
        "--no-annotate",
        "--quiet",
        "--no-config",
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


def _resolve(platform: str, python: str, uv: str) -> subprocess.CompletedProcess:
    """Offline first: the universal resolve has just refreshed every index page this needs, and
    offline, twelve resolves take seconds instead of re-downloading 200 pages each. Metadata that
    is not cached yet (a target's first run) is fetched online."""
    uv_platform, _, env = PLATFORMS[platform]
    args = ("--python-platform", uv_platform, "--python-version", python)
    run = _uv(uv, *args, "--offline", env=env)
    if run.returncode != 0 and "network was disabled" in run.stderr:
        run = _uv(uv, *args, env=env)
    return run


@pytest.fixture(scope="module")
def uv() -> str:
    reason = _registry_reason()
    if reason:
        pytest.skip(reason)
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is missing: it is pinned in requirements.lock (make install)"
    return found


@pytest.fixture(scope="module")
def make_lock(uv, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`make lock` in a copy of the project's install files: the universal resolve, which also
    refreshes uv's copy of every index page the per-target resolves read."""
    copy = tmp_path_factory.mktemp("lock")
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, copy / name)
    env = {**os.environ, "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}"}
    # -o: the venv is not built here; make lock only needs uv, on PATH (VENV_BIN=)
    run = subprocess.run(
        ["make", "-o", ".venv/.installed", "VENV_BIN=", "lock"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return run, copy / "requirements.lock"


@pytest.fixture(scope="module")
def resolved(uv, make_lock) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    with ThreadPoolExecutor(4) as pool:
        runs = pool.map(lambda t: _resolve(*t, uv), TARGETS)
        return dict(zip(TARGETS, runs, strict=True))


def test_make_lock_gives_the_same_file_today(make_lock):
    """pyproject.toml and the lock agree, and every pin still resolves on the registry, for
    every platform at once (markers and all)."""
    run, fresh = make_lock
    assert run.returncode == 0, run.stdout + run.stderr
    assert fresh.read_text() == LOCK.read_text(), "requirements.lock is stale: run make lock"


@pytest.mark.parametrize(("platform", "python"), TARGETS)
def test_lock_resolves_for_each_platform_and_python(resolved, platform, python):
    """uv resolves the pinned set for this target: every pin has a wheel or sdist there, and the
    result is exactly the lock's pins for it (no dependency missing, nothing extra)."""
    run = resolved[platform, python]
    assert run.returncode == 0, f"{platform} Python {python}:\n{run.stderr}"
    got = {}
    for line in run.stdout.splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            got[canonicalize_name(name)] = version.strip()
    assert got == _pins_for(platform, python)
