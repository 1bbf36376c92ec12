"""dvc.yaml lists exactly the code and params each stage uses: narrow deps, nothing stale."""

from pathlib import Path

import pytest
import yaml

from importgraph import stage_imports

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = {
    "split": "split",
    "build-dataset": "build_dataset",
    "train": "train",
    "validate": "validate",
    "test": "test",
    "export": "export",
}
# sections a stage reads besides its own: the test stage's report lists the params that matter
EXTRA_PARAMS = {"test": ["split", "build_dataset", "train"]}


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_exactly_what_the_stage_imports(stage):
    script = Path("stages") / f"{STAGES[stage]}.py"
    declared = {d for d in DVC["stages"][stage]["deps"] if d.endswith(".py")}
    imported = stage_imports(ROOT, script) | {script.as_posix()}
    assert declared - imported == set(), f"{stage}: listed but not imported"
    assert imported - declared == set(), f"{stage}: imported but missing from deps (stale results)"
    assert DVC["stages"][stage]["cmd"] == f"python {script.as_posix()}"


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_reads_only_its_own_params_section(stage):
    section = {"build-dataset": "build_dataset"}.get(stage, stage)
    assert DVC["stages"][stage]["params"] == [section, *EXTRA_PARAMS.get(stage, [])]
    text = (ROOT / "stages" / f"{STAGES[stage]}.py").read_text()
    assert f'"{section}")' in text


def test_metrics_and_plot_data_live_in_git_so_diffs_work_on_a_fresh_clone():
    for stage in DVC["stages"].values():
        for entry in stage.get("metrics", []):
            ((path, opts),) = entry.items()
            assert opts["cache"] is False, path
    train_outs = {
        next(iter(o)): o[next(iter(o))]
        for o in DVC["stages"]["train"]["outs"]
        if isinstance(o, dict)
    }
    # resume needs the checkpoint and the dvclive history to survive an interrupted run
    assert train_outs["models/checkpoint.pt"] == {"persist": True}
    assert train_outs["dvclive/train/plots"]["persist"] is True
    plot_files = {
        f
        for p in DVC["plots"]
        for f in ([p] if isinstance(p, str) else [f for spec in p.values() for f in spec["y"]])
    }
    uncached = {
        next(iter(o))
        for s in DVC["stages"].values()
        for o in s.get("outs", [])
        if isinstance(o, dict) and next(iter(o.values())).get("cache") is False
    }
    for f in plot_files:
        assert any(f.startswith(o) for o in uncached), f"{f}: plots must be cache: false outs"


def test_the_pull_request_workflow_is_the_one_readme_shows_and_runs_what_exists():
    import os
    import re

    workflow = (ROOT / ".github/workflows/model.yml").read_text()
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```yaml\n# \.github/workflows/model\.yml\n(.*?)```", readme, re.S)
    assert shown and shown.group(1) == workflow
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    for job in yaml.safe_load(workflow)["jobs"].values():
        for step in job["steps"]:
            command = step.get("run", "")
            if command.startswith("make "):
                assert command.split()[1] in targets, command
            elif command.startswith(".ci/"):
                assert os.access(ROOT / command.split()[0], os.X_OK), command


def test_the_committed_lock_records_this_code_and_these_params():
    """A fresh clone's `make run` reproduces the committed reference and leaves dvc.lock as it
    is only when the lock was made by the code and params beside it: a source file changed
    without a `dvc repro` would rerun its stages there and dirty the clone."""
    import hashlib

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage, entry in lock.items():
        for dep in entry["deps"]:
            path = ROOT / dep["path"]
            if path.is_file() and dep["path"].startswith(("src/", "stages/")):
                assert hashlib.md5(path.read_bytes()).hexdigest() == dep["md5"], (
                    f"dvc.lock: {stage} records another version of {dep['path']}: run dvc repro "
                    "and commit dvc.lock"
                )
        recorded = entry["params"]["params.yaml"]
        assert recorded == {k: params[k] for k in recorded}, f"dvc.lock: {stage}'s params differ"


def test_a_checkout_with_windows_line_endings_gets_the_committed_bytes(tmp_path):
    """Windows git (WSL's /mnt/c) sets core.autocrlf: without .gitattributes every text file
    came out CRLF, .ci/run did not start and every dvc.lock code hash was stale."""
    import subprocess

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    cmd = ["git", "clone", "-q", "--config", "core.autocrlf=true", str(ROOT), str(clone)]
    subprocess.run(cmd, check=True)
    listed = subprocess.run(
        ["git", "ls-files", "--eol"], cwd=clone, capture_output=True, text=True, check=True
    )
    crlf = [line.split()[-1] for line in listed.stdout.splitlines() if "w/crlf" in line]
    assert crlf == []
    assert not (clone / ".ci/run").read_bytes().startswith(b"#!/usr/bin/env bash\r")
