"""A no-op `dvc repro` of the whole pipeline on MNIST's 60,000 files, against DVC's own floor:
a trivial one-stage pipeline that depends on the same folder. Also the first run's times."""

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


def floor_project(dest: Path, raw: Path) -> Path:
    dest.mkdir(parents=True)
    link_tree(raw, dest / "data" / "raw")
    (dest / "dvc.yaml").write_text(FLOOR_DVC_YAML)
    (dest / ".gitignore").write_text("/data/raw/\n")
    sh(["git", "init", "-q"], dest)
    sh(["dvc", "init", "-q"], dest)
    commit(dest)
    return dest


def run(tmp: Path, mnist_raw: Path, runs: int) -> dict[str, float]:
    # one epoch keeps the first run short; a no-op repro never reaches the train code
    project = make_project(tmp / "noop-mnist", mnist_raw, {"train": {"epochs": 1}})
    floor = floor_project(tmp / "noop-floor", mnist_raw)
    first_floor = sh(["dvc", "repro"], floor)
    first = sh(["dvc", "repro"], project)
    noop, noop_floor = [], []
    for _ in range(runs):
        noop.append(sh(["dvc", "repro"], project))
        noop_floor.append(sh(["dvc", "repro"], floor))
    stage_s = {
        stage: sh([PYTHON, f"stages/{stage}.py"], project) for stage in ("split", "build_dataset")
    }
    return {
        "files": sum(1 for p in mnist_raw.rglob("*") if p.is_file()),
        "noop_s": median(noop),
        "floor_noop_s": median(noop_floor),
        "ratio": median(noop) / median(noop_floor),
        "first_hash_s": first_floor,  # DVC hashing data/raw once, the one-stage pipeline's first run
        "first_repro_s": first,
        "split_stage_s": stage_s["split"],
        "build_stage_s": stage_s["build_dataset"],
        "runs": runs,
    }
