"""DVC stage `build-dataset`: decode images into uint8 arrays (or encode a table) under
data/processed/, with statistics from the train split only."""

import logging

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.io import read_json
from torchstages.kinds import kind_of
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams

log = logging.getLogger("torchstages.stages")


def _counts(counts: dict[str, int], unit: str) -> str:
    return ", ".join(f"{n} {split}" for split, n in counts.items()) + f" {unit}"


def main() -> None:
    params = load_section(BuildDatasetParams, "build_dataset")
    summary_path = paths.SPLITS / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    if kind_of(summary) == "table":
        from torchstages.tables.build import build_table

        counts = build_table(params, paths.RAW, paths.SPLITS, paths.PROCESSED)
        log.info("build-dataset: %s -> %s", _counts(counts, "rows"), paths.PROCESSED)
        return
    if kind_of(summary) == "series":
        from torchstages.series.build import build_series

        counts = build_series(params.series, paths.SPLITS, paths.PROCESSED)
        log.info("build-dataset: %s -> %s", _counts(counts, "windows"), paths.PROCESSED)
        return
    if kind_of(summary) == "text":
        from torchstages.text.build import build_texts

        counts = build_texts(params, paths.RAW, paths.SPLITS, paths.PROCESSED)
        log.info("build-dataset: %s -> %s", _counts(counts, "texts"), paths.PROCESSED)
        return
    from torchstages.data.build import build_dataset

    counts = build_dataset(params, paths.RAW, paths.SPLITS, paths.PROCESSED)
    log.info("build-dataset: %s -> %s", _counts(counts, "images"), paths.PROCESSED)


if __name__ == "__main__":
    run_stage(main)
