"""The build-dataset stage: decode every split once into uint8 arrays and write meta.json."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from torchstages.data.bad_images import bad_image_entries, bad_images_message, check_classes_left
from torchstages.data.decode import channel_stats, decode_pool, decode_rows
from torchstages.data.images import Preprocessing
from torchstages.data.split import check_no_leakage, read_split
from torchstages.data.store import write_meta, write_split
from torchstages.errors import UserError
from torchstages.io import atomic_dir
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.paths import SPLIT_NAMES

__all__ = ["build_dataset"]

log = logging.getLogger(__name__)


def build_dataset(
    params: BuildDatasetParams, raw_dir: Path, splits_dir: Path, out_dir: Path
) -> dict[str, int]:
    """Decode each split; mean/std come from the train split alone so val/test never leak in."""
    splits = {name: read_split(splits_dir / f"{name}.csv") for name in SPLIT_NAMES}
    check_no_leakage(splits)
    classes = sorted({row.label for rows in splits.values() for row in rows})
    missing = sorted(set(classes) - {row.label for row in splits["train"]})
    if missing:
        raise UserError(f"{splits_dir}/train.csv: no training samples for classes {missing}")
    label_of = {name: i for i, name in enumerate(classes)}
    size = params.image_size
    prep = Preprocessing(
        image_size=(size, size) if isinstance(size, int) else tuple(size),
        color=params.color,
        resize=params.resize,
        interpolation=params.interpolation,
        background=params.background,
    )
    counts = {}
    skipped: list[dict[str, str]] = []
    # one pool for all splits: worker start-up is paid once
    with atomic_dir(out_dir) as staging, decode_pool(params.workers) as pool:
        for name in SPLIT_NAMES:
            start = time.perf_counter()
            images, bad = decode_rows(splits[name], raw_dir, prep, pool, params.max_pixels)
            rows = splits[name]
            if bad:
                # error mode still decodes every split, so one run names every bad file
                skipped += bad_image_entries(rows, bad, name)
                keep = np.ones(len(rows), bool)
                keep[[i for i, _ in bad]] = False
                images, rows = images[keep], [r for r, k in zip(rows, keep, strict=True) if k]
            labels = np.array([label_of[row.label] for row in rows], dtype=np.int64)
            if skipped and params.on_bad_image == "error":
                continue
            if name == "train":
                mean, std = channel_stats(images)
                prep = dataclasses.replace(prep, mean=mean, std=std)
            write_split(staging, name, images, labels)
            counts[name] = len(labels)
            log.info(
                "build-dataset: %s %d images in %.2fs",
                name,
                len(labels),
                time.perf_counter() - start,
            )
            del images  # one split's pixels in memory at a time
        if skipped and params.on_bad_image == "error":
            raise UserError(bad_images_message(skipped))
        check_classes_left(splits, skipped, splits_dir)
        write_meta(staging, classes, prep, counts, skipped)
    if skipped:
        log.warning("build-dataset: skipped %d bad images (meta.json lists them)", len(skipped))
    return counts
