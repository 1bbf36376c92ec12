"""End to end: the real dvc.yaml and stage scripts in a temp git + DVC repo, on tiny params."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_project, make_image_folder

pytestmark = pytest.mark.slow

STAGES = ["split", "build-dataset", "train", "validate", "test", "export"]


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(cwd / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


def repro(repo: Path) -> list[str]:
    """Run dvc repro; return the stages that actually ran, in order."""
    out = run(["dvc", "repro"], repo).stdout
    return [
        s
        for line in out.splitlines()
        if line.startswith("Running stage")
        for s in STAGES
        if f"'{s}'" in line
    ]


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def init_repo(repo: Path) -> Path:
    """git + DVC (analytics off) in ``repo``, its files committed: dvclive needs a commit."""
    (repo / ".gitignore").write_text("/data/raw/\n__pycache__/\n")
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    commit(repo, "project")
    return repo


def edit_params(repo: Path, section: str, **changes) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section].update(changes)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("project"))
    make_image_folder(repo / "data" / "raw")
    return init_repo(repo)


def test_first_repro_runs_all_six_then_nothing(repo):
    assert repro(repo) == STAGES
    for path in [
        "data/splits/train.csv",
        "data/processed/meta.json",
        "models/model.safetensors",
        "metrics/validate.json",
        "metrics/test.json",
        "predictions/validate.csv",
        "predictions/test.csv",
        "models/export/model.onnx",
        "models/export/model.pt2",
        "models/export/model.int8.onnx",
        "models/export/MODEL_CARD.md",
        "metrics/export.json",
        "reports/report.md",
        "plots/test/confusion.csv",
        "plots/test/wrong.png",
        "plots/train/curves.png",
        "plots/train/augmented.png",
    ]:
        assert (repo / path).exists(), path
    assert repro(repo) == []
    commit(repo, "reference run")


def test_test_param_reruns_only_test(repo):
    edit_params(repo, "test", batch_size=7)
    assert repro(repo) == ["test"]


def test_train_param_reruns_train_and_after(repo):
    before = json.loads((repo / "metrics/test.json").read_text())
    edit_params(repo, "train", lr=0.003)
    assert repro(repo) == ["train", "validate", "test", "export"]
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert "metrics/test.json" in diff
    changed = diff["metrics/test.json"]
    assert changed["loss"]["old"] == before["loss"]
    assert changed["loss"]["new"] != before["loss"]
    params = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    lr = params["params.yaml"]["train.lr"]
    assert (lr["old"], lr["new"]) == (0.01, 0.003)


def declared_plots(repo: Path) -> set[str]:
    plots = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    return {p if isinstance(p, str) else next(iter(p)) for p in plots}


def test_plots_diff_between_revisions_and_the_report_commands(repo):
    """The workspace (lr changed) against the committed reference run: what CI shows on a PR."""
    out = json.loads(run(["dvc", "plots", "diff", "HEAD", "--json"], repo).stdout)
    assert {e["name"] for e in out.get("errors", [])} <= REGRESSION_PLOTS
    revs = {r for p in out["data"]["loss"] for r in p["revisions"]}
    assert revs == {"HEAD", "workspace"}
    assert declared_plots(repo) <= set(out["data"])
    # the Makefile's own recipe (-o: don't build the venv; this test already runs inside one,
    # whose tools are on PATH: VENV_BIN=)
    run(
        [
            "make",
            "-f",
            str(ROOT / "Makefile"),
            "-o",
            ".venv/.installed",
            "VENV_BIN=",
            "report",
            "REV=HEAD",
        ],
        repo,
    )
    pr = (repo / "reports/pr.md").read_text()
    assert pr.startswith((repo / "reports/report.md").read_text())
    assert "## Metrics against `HEAD`" in pr and "| metrics/test.json" in pr
    assert "## Params against `HEAD`" in pr and "train.lr" in pr
    # the verdict on the per-sample predictions (in git: cache: false) of both runs
    assert "## Is it really better? (`test`, workspace against `HEAD`)" in pr
    assert re.search(r"workspace vs HEAD on test \(\d+ samples\): accuracy .* at 5%\.", pr)
    run(["python", "-m", "torchstages.cli", "report"], repo)  # rebuilds the tracked report as is
    assert run(["dvc", "status", "test"], repo).stdout.strip().endswith("up to date.")


def test_export_code_change_reruns_only_export(repo):
    code = repo / "src/torchstages/deploy/export.py"
    code.write_text(code.read_text() + "\n# an edit that changes no behaviour\n")
    assert repro(repo) == ["export"]


def test_unchanged_rerun_is_byte_identical(repo):
    """Forcing every stage to run again changes no output: dvc.lock stays as it was."""
    outputs = [
        repo / "dvc.lock",
        repo / "reports/report.md",
        repo / "models/checkpoint.pt",
        repo / "models/model.safetensors",
        *sorted((repo / "models/export").iterdir()),
        *sorted((repo / "plots").glob("*/*")),
        *sorted((repo / "metrics").glob("*")),
        *sorted((repo / "predictions").glob("*")),
    ]
    before = [p.read_bytes() for p in outputs]
    run(["dvc", "repro", "-f"], repo)
    changed = [p.name for p, b in zip(outputs, before, strict=True) if p.read_bytes() != b]
    assert changed == []


# plots dvc.yaml declares for regression tables and time series: an image project has no data
# for them
REGRESSION_PLOTS = {
    "rmse",
    "validate-predicted-vs-actual",
    "test-predicted-vs-actual",
    "validate-residuals",
    "test-residuals",
    "plots/validate/predicted_vs_actual.png",
    "plots/validate/residuals.png",
    "plots/test/predicted_vs_actual.png",
    "plots/test/residuals.png",
    "mae",
    "validate-forecast",
    "test-forecast",
    "validate-error-by-horizon",
    "test-error-by-horizon",
    "plots/validate/forecast.png",
    "plots/validate/horizon.png",
    "plots/test/forecast.png",
    "plots/test/horizon.png",
}


def test_every_declared_plot_renders(repo):
    out = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert {e["name"] for e in out.get("errors", [])} == REGRESSION_PLOTS
    for plot in declared_plots(repo) - REGRESSION_PLOTS:
        (rendered,) = out["data"][plot]
        if plot.endswith(".png"):
            assert rendered["type"] == "image", plot
        else:
            assert rendered["type"] == "vega" and rendered["content"]["data"]["values"], plot


def test_bad_param_stops_before_any_work_with_one_line(repo):
    edit_params(repo, "train", optimiser="sgd")
    result = run(["python", "stages/train.py"], repo, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: params.yaml: train.optimiser: unknown key (did you mean 'optimizer'? allowed: "
    )
    edit_params(repo, "train", optimiser=None)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    del params["train"]["optimiser"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_one_image_under_two_classes_is_a_warning_naming_the_files(repo):
    original = sorted((repo / "data/raw/class0").glob("*.png"))[0]
    copy = repo / "data/raw/class1/copy_of_class0.png"
    copy.write_bytes(original.read_bytes())
    try:
        result = run(["python", "stages/split.py"], repo)
        assert "split: 1 group of identical files under different classes" in result.stderr
        assert "class1/copy_of_class0.png" in result.stderr and "summary.json" in result.stderr
    finally:
        copy.unlink()
        run(["python", "stages/split.py"], repo)


def test_unreadable_image_is_named_and_leaves_the_old_dataset(repo):
    meta = (repo / "data/processed/meta.json").read_bytes()
    victim = repo / "data/raw/class1/broken.png"
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    try:
        run(["python", "stages/split.py"], repo)
        result = run(["python", "stages/build_dataset.py"], repo, check=False)
        assert result.returncode == 2
        assert "class1/broken.png: cannot decode image" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
        assert (repo / "data/processed/meta.json").read_bytes() == meta
    finally:
        victim.unlink()
        run(["python", "stages/split.py"], repo)
