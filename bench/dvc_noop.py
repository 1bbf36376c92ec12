"""A no-op `dvc repro` of the whole pipeline on MNIST's 60,000 files, against DVC's own floor:
a trivial one-stage pipeline that depends on the same folder, tracked by `dvc add` as the
pipeline's is (and the same untracked, for what tracking costs). Also the first run's times."""

from __future__ import annotations

from pathlib import Path

from common import PYTHON, commit, link_tree, make_project, median, sh

FLOOR_DVC_YAML = """\
stages:
  floor:
    cmd: python -c "open('out.txt', 'w').write('ok')"
    deps:
      - data/raw
    outs:
      - out.txt
"""


def floor_project(dest: Path, raw: Path, track: bool) -> Path:
    """``track``: data/raw also tracked by `dvc add`, as the pipeline's projects are."""
    dest.mkdir(parents=True)
    link_tree(raw, dest / "data" / "raw")
    (dest / "dvc.yaml").write_text(FLOOR_DVC_YAML)
    (dest / ".gitignore").write_text("/data/raw/\n")
    sh(["git", "init", "-q"], dest)
    sh(["dvc", "init", "-q"], dest)
    if track:
        sh(["dvc", "add", "-q", "data/raw"], dest)
    commit(dest)
    return dest


def run(tmp: Path, mnist_raw: Path, runs: int) -> dict[str, float]:
    # one epoch keeps the first run short; a no-op repro never reaches the train code
    project = make_project(tmp / "noop-mnist", mnist_raw, {"train": {"epochs": 1}})
    floor = floor_project(tmp / "noop-floor", mnist_raw, track=True)
    untracked = floor_project(tmp / "noop-untracked", mnist_raw, track=False)
    first_floor = sh(["dvc", "repro"], untracked)
    sh(["dvc", "repro"], floor)
    first = sh(["dvc", "repro"], project)
    noop, noop_floor, noop_untracked = [], [], []
    for _ in range(runs):
        noop.append(sh(["dvc", "repro"], project))
        noop_floor.append(sh(["dvc", "repro"], floor))
        noop_untracked.append(sh(["dvc", "repro"], untracked))
    stage_s = {
        stage: sh([PYTHON, f"stages/{stage}.py"], project) for stage in ("split", "build_dataset")
    }
    return {
        "files": sum(1 for p in mnist_raw.rglob("*") if p.is_file()),
        "noop_s": median(noop),
        "floor_noop_s": median(noop_floor),
        "ratio": median(noop) / median(noop_floor),
        # what tracking data/raw with `dvc add` costs DVC itself: its outputs are checked too
        "untracked_floor_noop_s": median(noop_untracked),
        "first_hash_s": first_floor,  # DVC hashing data/raw once, the one-stage pipeline's first run
        "first_repro_s": first,
        "split_stage_s": stage_s["split"],
        "build_stage_s": stage_s["build_dataset"],
        "runs": runs,
    }
