"""DVC stage `build-dataset`: decode each split once into uint8 arrays under data/processed/."""

import logging

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams

log = logging.getLogger("torchstages.stages")


def main() -> None:
    params = load_section(BuildDatasetParams, "build_dataset")
    from torchstages.data.build import build_dataset

    counts = build_dataset(params, paths.RAW, paths.SPLITS, paths.PROCESSED)
    log.info("build-dataset: %s images -> %s", counts, paths.PROCESSED)


if __name__ == "__main__":
    run_stage(main)
