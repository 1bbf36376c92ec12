"""Each stage's wall time and peak memory on the demo digits, and the import cost of the library
function it calls (a stage must not pay for what it does not use)."""

from __future__ import annotations

from pathlib import Path

from common import PYTHON, make_project, measured, sh

STAGES = {
    "split": "torchstages.data.split",
    "build_dataset": "torchstages.data.build",
    "train": "torchstages.training.loop",
    "validate": "torchstages.evaluation.evaluate",
    "test": "torchstages.evaluation.evaluate",
    "export": "torchstages.deploy.export",
}


def run(tmp: Path) -> dict[str, dict[str, float]]:
    project = make_project(tmp / "stages-demo", None, {})
    out = {}
    for stage, module in STAGES.items():
        result = measured([PYTHON, f"stages/{stage}.py"], project)
        result["import_s"] = sh([PYTHON, "-c", f"import {module}"], project)
        out[stage] = result
    return out
