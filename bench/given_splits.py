"""MNIST as it comes (train/ and test/ folders of class folders): the split stage with
``given_splits: keep`` on its 70,000 files, what it finds between the two folders, and the
default CNN's accuracy on MNIST's own 10,000 test digits after a short training.

Runs the stage scripts in a temp copy of the project (no DVC); writes
bench/results/given_splits.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import PYTHON, RESULTS, machine, make_project, sh, unpack_mnist


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "epochs", nargs="?", type=int, default=3, help="train epochs (0: the split stage alone)"
    )
    epochs = parser.parse_args().epochs
    with tempfile.TemporaryDirectory() as tmp:
        mnist = unpack_mnist(Path(tmp)).parent  # mnist/train and mnist/test
        project = make_project(
            Path(tmp) / "project",
            mnist,
            {"build_dataset": {"image_size": 28}, "train": {"epochs": max(epochs, 1)}},
            dvc=False,
        )
        out: dict = {"machine": machine(), "epochs": epochs}
        out["split_s"] = round(sh([PYTHON, "stages/split.py"], project), 1)
        summary = json.loads((project / "data/splits/summary.json").read_text())
        dropped = summary["given_splits"]["dropped"]
        out["totals"] = summary["totals"]
        out["carved_from_train"] = summary["given_splits"]["carved_from_train"]
        out["dropped"] = {
            how: sum(d["how"] == how for d in dropped) for how in ("same bytes", "near duplicate")
        }
        out["dropped_examples"] = dropped[:5]
        out["near_duplicate_groups"] = summary["near_duplicates"]["groups"]
        if epochs:
            for stage in ("build_dataset", "train", "test"):
                out[f"{stage}_s"] = round(sh([PYTHON, f"stages/{stage}.py"], project), 1)
            metrics = json.loads((project / "metrics/test.json").read_text())
            out["test_accuracy"] = metrics["accuracy"]
            out["test_baseline_accuracy"] = metrics.get("baseline_accuracy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "given_splits.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
