"""Killed at any moment: each stage (and DVC around it) SIGKILLed at seeded moments, including just
before a finished temp file is renamed into place. Afterwards every output file that exists is the
complete one, and `dvc repro` finishes byte-identical to an uninterrupted run.

TORCHSTAGES_KILL_POINTS (default 2) sets the kill points per stage: half at seeded moments of an
uninterrupted `dvc repro -f -s <stage>`'s run time (the late ones land in DVC hashing outputs and
writing dvc.lock), half at the seeded n-th rename of the stage script
(tests/killhook/sitecustomize.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, copy_project, make_image_folder
from test_pipeline import STAGES, commit, repro, run

pytestmark = pytest.mark.slow

KILL_POINTS = int(os.environ.get("TORCHSTAGES_KILL_POINTS", "2"))
TRACKED = (
    "data/splits",
    "data/processed",
    "models",
    "metrics",
    "predictions",
    "plots",
    "reports",
    "dvclive",
)


def snapshot(repo: Path) -> dict[str, bytes]:
    files = {"dvc.lock": (repo / "dvc.lock").read_bytes()}
    for top in TRACKED:
        for path in sorted((repo / top).rglob("*")):
            if path.is_file() and path.name != ".gitignore" and not is_temp(path):
                files[path.relative_to(repo).as_posix()] = path.read_bytes()
    return files


def is_temp(path: Path) -> bool:
    """A temp file (or a file in a temp folder) of torchstages.io: ``.<name>.<random>.tmp``."""
    return any(part.startswith(".") and part.endswith(".tmp") for part in path.parts)


def stage_outs(repo: Path, stage: str) -> list[tuple[str, bool]]:
    """(path, persist) of each output of ``stage`` in dvc.yaml."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"][stage]
    return [
        (o, False)
        if isinstance(o, str)
        else (next(iter(o)), bool(next(iter(o.values())).get("persist")))
        for o in spec["outs"] + spec.get("metrics", [])
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project after an uninterrupted run, and its outputs."""
    repo = copy_project(tmp_path_factory.mktemp("killed"))
    make_image_folder(repo / "data" / "raw", per_class=6)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    commit(repo, "project")
    assert repro(repo) == STAGES
    commit(repo, "reference run")  # the dvc.lock that `git checkout dvc.lock` restores
    return repo, snapshot(repo)


def kill_group(cmd: list[str], repo: Path, after: float | None, env: dict[str, str]) -> bool:
    """Run ``cmd`` in its own process group; SIGKILL the whole group after ``after`` seconds
    (None: let it end, a kill hook may end it). True if the command was cut short."""
    proc = subprocess.Popen(
        cmd,
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=after if after is not None else 300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    return proc.returncode != 0


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(ROOT / "tests" / "killhook")]),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **extra,
    }


def assert_only_complete_outputs(repo: Path, stage: str, reference: dict[str, bytes]) -> None:
    """Every file under the stage's outputs is absent or the complete, reference one. A temp file
    (``.<name>.<random>.tmp``) is no stage's input, and inside an output folder it makes DVC see
    the folder as changed, so it is allowed here: the rerun removes it (checked after repro).

    Train's ``persist`` outputs hold progress for a resume: the checkpoint of an earlier epoch
    (complete: it loads), dvclive's metrics.json of an earlier epoch (complete JSON) and its
    per-epoch rows so far (a prefix of the final file; the resume drops rows after the
    checkpoint). DVC sees them differ from dvc.lock, so it reruns train, which resumes."""
    for out, persist in stage_outs(repo, stage):
        root = repo / out
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(repo).as_posix()
            if is_temp(path.relative_to(repo)):
                continue
            assert rel in reference, f"{stage}: unexpected {rel} after a kill"
            data = path.read_bytes()
            if data == reference[rel]:
                continue
            assert persist, f"{stage}: {rel} is torn after a kill"
            if path.suffix == ".pt":
                state = torch.load(path, weights_only=True)
                assert state["epochs_done"] >= 1, rel
            elif path.suffix == ".json":
                json.loads(data)
            else:
                assert reference[rel].startswith(data), f"{stage}: {rel} is not a prefix"


def assert_no_visible_litter(repo: Path, reference: dict[str, bytes]) -> None:
    """A temp file of a killed write outside the outputs stays until the next write of its
    target (a stage DVC restores from its run cache does not run): git must ignore it."""
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    assert ".tmp" not in status, status
    for path in repo.rglob(".*.tmp"):
        rel = path.relative_to(repo).as_posix()
        assert not any(rel.startswith(f"{key}/") for key in reference), rel


@pytest.mark.parametrize("stage", STAGES)
def test_killed_stage_leaves_nothing_half_written_and_repro_recovers(project, stage):
    repo, reference = project
    start = time.monotonic()  # an uninterrupted forced run: how long a kill point can be
    run(["dvc", "repro", "-f", "-s", stage], repo)
    duration = time.monotonic() - start
    assert snapshot(repo) == reference
    rng = random.Random(f"{stage}:{KILL_POINTS}")
    points = [("time", rng.uniform(0.1, 1.0) * duration) for _ in range(KILL_POINTS // 2)]
    points += [("rename", rng.randint(1, 4)) for _ in range(KILL_POINTS - len(points))]
    for kind, at in points:
        if kind == "time":
            env, after = env_for(repo), at
        else:
            env, after = env_for(repo, TORCHSTAGES_KILL_AT_RENAME=str(at)), None
        cut = kill_group(["dvc", "repro", "-f", "-s", stage], repo, after, env)
        print(f"kill point: {stage} {kind} {at:.2f} cut short: {cut}")
        assert_only_complete_outputs(repo, stage, reference)
    # the kills touched only this stage's outputs (and maybe dvc.lock or .dvc/tmp/rwlock, which
    # DVC rewrites in place: a kill during either write is recovered as README says, after
    # `make run` names it): one repro after all of them
    result = run(["dvc", "repro"], repo, check=False)
    for _ in range(2):  # each of the two files is recovered at most once
        if result.returncode == 0:
            break
        if "Unable to read RWLock-file" in result.stderr:
            assert_make_run_names(repo, ".dvc/tmp/rwlock was left half-written by a killed dvc")
            (repo / ".dvc" / "tmp" / "rwlock").unlink()
        elif "dvc.lock' validation failed" in result.stderr:
            assert_make_run_names(repo, "dvc.lock was left half-written by a killed dvc")
            run(["git", "checkout", "dvc.lock"], repo)
        else:
            break
        result = run(["dvc", "repro"], repo, check=False)
    assert result.returncode == 0, result.stderr
    assert snapshot(repo) == reference, f"{points}: not byte-identical after repro"
    assert_no_visible_litter(repo, reference)


def assert_make_run_names(repo: Path, message: str) -> None:
    result = run(["make", "-f", str(ROOT / "Makefile"), "-o", ".venv/.installed", "run"], repo,
                 check=False)  # fmt: skip
    assert result.returncode != 0
    assert f"make: {message}" in result.stderr, result.stderr


def test_a_dvc_killed_while_writing_its_rwlock_is_named_by_make_run(project):
    """DVC rewrites .dvc/tmp/rwlock in place; killed mid-write, every later dvc command fails
    until the file is removed. `make run` says so; removing it is all that is needed."""
    repo, reference = project
    rwlock = repo / ".dvc" / "tmp" / "rwlock"
    rwlock.write_text('{"read": {"' + str(repo / "data/raw") + '": [{"pid": 4')
    assert_make_run_names(repo, ".dvc/tmp/rwlock was left half-written by a killed dvc; remove it")
    rwlock.unlink()
    assert repro(repo) == []
    assert snapshot(repo) == reference


@pytest.mark.parametrize("cut", ["stage", "key"])
def test_a_dvc_killed_while_writing_dvc_lock_is_named_by_make_run(project, cut):
    """DVC rewrites dvc.lock in place too; cut short inside a stage's entry, DVC refuses it ("validation
    failed"). `make run` names it; restoring the committed one is all that is needed."""
    repo, reference = project
    text = reference["dvc.lock"].decode()
    # inside the train entry: after its name, or inside the key that must come first
    end = text.index("  train:\n") + len("  train:\n") + (len("    cm") if cut == "key" else 0)
    (repo / "dvc.lock").write_text(text[:end])
    assert run(["dvc", "status"], repo, check=False).returncode != 0
    assert_make_run_names(repo, "dvc.lock was left half-written by a killed dvc; restore")
    run(["git", "checkout", "dvc.lock"], repo)
    assert repro(repo) == []
    assert snapshot(repo) == reference
