"""The demo as `make run` leaves it: queued sweeps, and artifacts moved to another machine through a
DVC remote (a local folder, and an S3-compatible moto server on 127.0.0.1), resumed after a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, copy_project
from test_pipeline import commit, repro

pytestmark = pytest.mark.slow


def env_for(repo: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(extra or {}),
    }


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env_for(cwd, env), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make(repo: Path, target: str) -> subprocess.CompletedProcess:
    # -o: the venv is the one running the tests; the recipe is the Makefile's own
    return run(
        ["make", "-f", str(ROOT / "Makefile"), "-o", ".venv/.installed", "VENV_BIN=", target], repo
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A clone of the project (demo's data/raw.dvc demo, no data) after `make run`."""
    repo = copy_project(tmp_path_factory.mktemp("demo"))
    (repo / "data").mkdir()
    for name in (".gitignore", "data/.gitignore", "data/raw.dvc"):
        shutil.copy(ROOT / name, repo / name)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    commit(repo, "project")
    make(repo, "run")
    commit(repo, "reference run")  # as the project ships it: dvc.lock and uncached outputs in git
    return repo


def test_make_run_tracks_the_demo_data_as_committed(demo):
    assert (demo / "data/raw/3").is_dir()
    # the demo's bytes are the ones data/raw.dvc records: nothing for git to commit
    assert run(["git", "status", "--porcelain", "data"], demo).stdout == ""
    assert repro(demo) == []


def test_make_demo_data_warns_about_symbolic_links(tmp_path):
    """dvc add turns a linked file into a copy of its target and leaves a linked folder out of
    the version, before split could name either: the Makefile says so first."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "cat.png").write_bytes(b"not really")
    repo = tmp_path / "project"
    (repo / "data" / "raw" / "cat").mkdir(parents=True)
    (repo / "data" / "raw" / "cat" / "cat.png").symlink_to(tmp_path / "elsewhere" / "cat.png")
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    result = make(repo, "demo-data")
    assert "warning: symbolic links in data/raw (data/raw/cat/cat.png ...)" in result.stderr
    assert "leaves linked folders unversioned" in result.stderr
    (repo / "data" / "raw" / "dog").mkdir()
    (repo / "data" / "raw" / "dog" / "d.png").write_bytes(b"x")
    result = make(repo, "demo-data")
    assert "symbolic links" not in result.stderr  # dvc add made the link a file


def test_queued_sweep_runs_both_experiments(demo):
    """Each experiment's workspace needs data/raw: without it split fails at once. A test-stage
    param keeps the test short: the other stages are found up to date there, which DVC can only
    decide by hashing their deps, data/raw included."""
    for batch in (5, 6):
        run(["dvc", "exp", "run", "--queue", "-S", f"test.batch_size={batch}"], demo)
    run(["dvc", "queue", "start", "-j", "2"], demo)
    deadline = time.monotonic() + 300
    while True:
        status = run(["dvc", "queue", "status"], demo).stdout
        if "Running" not in status and "Queued" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], demo).stdout)
    batches = {
        exp["data"]["params"]["params.yaml"]["data"]["test"]["batch_size"]
        for rev in shown
        for exp in (rev.get("experiments") or [])
        for exp in exp["revs"]
        if exp["data"].get("metrics")
    }
    assert {5, 6} <= batches


def fresh_clone(demo: Path, dest: Path, remote_args: list[str], env: dict[str, str]) -> Path:
    """Push to the remote, clone the git repo into ``dest``, pull there."""
    run(["dvc", "push", "-q", *remote_args], demo, env=env)
    run(["git", "clone", "-q", str(demo), str(dest)], demo)
    run(["dvc", "pull", "-q", *remote_args], dest, env=env)
    return dest


def assert_nothing_to_redo(clone: Path) -> None:
    status = run(["dvc", "status"], clone).stdout
    assert "up to date" in status, status
    assert repro(clone) == []
    image = next((clone / "data/raw/3").iterdir())
    out = run(["torchstages", "predict", "--format", "csv", str(image)], clone).stdout
    row = out.splitlines()[1].split(",")  # path,class,probability,error
    assert row[1] in {str(d) for d in range(10)} and row[-1] == ""


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def kill_part_way(cmd: list[str], cwd: Path, filling: Path, at_least: int = 20) -> int:
    """SIGKILL ``cmd`` (and its children) once ``filling`` holds ``at_least`` files; how many it
    held then. The command must still be running: the kill has to land mid-transfer."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env_for(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    while count_files(filling) < at_least:
        assert proc.poll() is None, f"{cmd} ended before {at_least} files reached {filling}"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return count_files(filling)


def test_local_remote_round_trip_and_a_killed_push_and_pull_resume(demo, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "local", str(remote)], demo)
    commit(demo, "remote")
    needed = int(run(["torchstages", "remote-check", "-r", "local"], demo, check=False)
                 .stdout.split(" of ")[1].split()[0])  # fmt: skip
    # a push killed part-way is finished by running it again (fresh_clone pushes)
    assert kill_part_way(["dvc", "push", "-r", "local"], demo, remote) < needed
    clone = fresh_clone(demo, tmp_path / "clone", ["-r", "local"], {})
    assert run(["torchstages", "remote-check", "-r", "local"], demo).stdout.startswith(
        f"remote local: holds all {needed} objects"
    )
    # a pull killed part-way, then the workspace and cache it left: pulling again completes
    shutil.rmtree(clone / "data/raw")
    shutil.rmtree(clone / ".dvc/cache")
    kill_part_way(["dvc", "pull", "-r", "local"], clone, clone / ".dvc/cache")
    run(["dvc", "pull", "-q", "-r", "local"], clone)
    assert_nothing_to_redo(clone)


def test_remote_check_finds_and_repairs_what_a_push_believes_is_there(demo, tmp_path):
    """Files gone from a remote behind DVC's back (a wiped bucket, a stale index of DVC's):
    `dvc push` sees the folder's manifest there and sends nothing; remote-check asks for each
    file, names what is missing, and --repair uploads it so that a fresh clone pulls again."""
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "gone", str(remote)], demo)
    run(["dvc", "push", "-q", "-r", "gone"], demo)
    lost = sorted((remote / "files" / "md5").rglob("*"))[::97]
    lost = [p for p in lost if p.is_file() and p.suffix != ".dir"]
    for path in lost:
        path.unlink()
    run(["dvc", "push", "-q", "-r", "gone"], demo)  # believes the remote complete: sends nothing
    assert count_files(remote) < count_files(demo / ".dvc/cache/files")
    check = run(["torchstages", "remote-check", "-r", "gone"], demo, check=False)
    assert check.returncode == 1
    assert f"lacks {len(lost)} of " in check.stdout, check.stdout
    assert "`torchstages remote-check -r gone --repair` uploads them" in check.stdout  # this one
    repaired = run(["torchstages", "remote-check", "-r", "gone", "--repair"], demo)
    assert f"lacked {len(lost)} of " in repaired.stdout
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(demo), str(clone)], demo)
    run(["dvc", "remote", "add", "-f", "gone", str(remote)], clone)
    run(["dvc", "pull", "-q", "-r", "gone"], clone)
    assert_nothing_to_redo(clone)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    """moto in server mode on 127.0.0.1: a real S3 HTTP endpoint with a bucket."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=url, **_boto_keys(env))
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.create_bucket(Bucket="dvc")
                break
            except Exception:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        yield url, env
    finally:
        server.terminate()
        server.wait()


def _boto_keys(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def test_s3_remote_round_trip(demo, tmp_path, s3_server):
    url, keys = s3_server
    run(["dvc", "remote", "add", "s3", "s3://dvc/store"], demo)
    run(["dvc", "remote", "modify", "s3", "endpointurl", url], demo)
    commit(demo, "s3 remote")
    clone = fresh_clone(demo, tmp_path / "clone", ["-r", "s3"], keys)
    assert_nothing_to_redo(clone)
