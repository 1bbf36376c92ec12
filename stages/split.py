"""DVC stage `split`: data/raw -> data/splits/{train,val,test}.csv + summary.json.

data/raw holds class folders of images, or one table file (split.kind says which, or auto).
"""

import logging

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.kinds import detect_kind
from torchstages.params.base import load_section
from torchstages.params.split import SplitParams

log = logging.getLogger("torchstages.stages")


def main() -> None:
    params = load_section(SplitParams, "split")
    if detect_kind(paths.RAW, params.kind) == "table":
        from torchstages.tables.split import split_table

        summary = split_table(paths.RAW, paths.SPLITS, params)
        log.info(
            "split: %s table %s, target %r (%s), train/val/test = %s rows; %d rows without a "
            "target dropped; %d groups of identical rows kept within one split -> %s",
            summary["task"],
            summary["file"],
            summary["target"],
            f"{len(summary['classes'])} classes" if "classes" in summary else "numeric",
            "/".join(str(summary["totals"][s]) for s in paths.SPLIT_NAMES),
            summary["rows_without_target_dropped"],
            summary["duplicates"]["groups"],
            paths.SPLITS,
        )
        return
    from torchstages.data.split import split_dataset

    summary = split_dataset(
        paths.RAW,
        paths.SPLITS,
        {"train": params.train, "val": params.val, "test": params.test},
        params.seed,
    )
    dups = summary["duplicates"]
    log.info(
        "split: %d classes, train/val/test = %s; %d duplicate groups (%d extra copies) kept "
        "within one split -> %s",
        len(summary["classes"]),
        "/".join(str(summary["totals"][s]) for s in paths.SPLIT_NAMES),
        dups["groups"],
        dups["extra_copies"],
        paths.SPLITS,
    )
    if dups["label_conflicts"]:
        log.warning(
            "split: identical files under different classes: %s", dups["label_conflicts"][:5]
        )


if __name__ == "__main__":
    run_stage(main)
