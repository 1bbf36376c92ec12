"""DVC stage `split`: data/raw -> data/splits/{train,val,test}.csv + summary.json.

data/raw holds class folders of images, or one table file read as a table or a time series
(split.kind says which, or auto).
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
    kind = detect_kind(paths.RAW, params.kind)
    if kind == "table":
        from torchstages.tables.split import split_table

        split_table(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    if kind == "series":
        from torchstages.series.split import split_series

        split_series(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    if kind == "text":
        from torchstages.text.split import split_texts

        split_texts(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    from torchstages.data.near_duplicates import NearDuplicates
    from torchstages.data.split import split_dataset

    summary = split_dataset(
        paths.RAW,
        paths.SPLITS,
        {"train": params.train, "val": params.val, "test": params.test},
        params.seed,
        None
        if params.near_duplicates == "off"
        else NearDuplicates(params.near_duplicates, params.near_duplicate_threshold),
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
    near = summary.get("near_duplicates")
    if near:
        log.info(
            "split: %d near-duplicate groups (%d files, pHash within %d bits) %s",
            near["groups"],
            near["files"],
            near["threshold"],
            "kept within one split"
            if near["mode"] == "group"
            else f"only reported: {near['groups_across_splits']} groups span splits",
        )
    if near and near["largest_group"] > max(10, sum(summary["totals"].values()) // 100):
        log.warning(
            "split: one near-duplicate group holds %d files: look at %s/near_duplicates.png and "
            "lower split.near_duplicate_threshold if they are not copies",
            near["largest_group"],
            paths.SPLITS,
        )
    if conflicts := dups["label_conflicts"]:
        log.warning(
            "split: %d groups of identical files are under different classes, so one image "
            "has two labels: remove the wrong copies (all in %s/summary.json under "
            "duplicates.label_conflicts); the first %d: %s",
            len(conflicts),
            paths.SPLITS,
            min(5, len(conflicts)),
            conflicts[:5],
        )


if __name__ == "__main__":
    run_stage(main)
