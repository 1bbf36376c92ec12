"""The processed dataset on disk: one uint8 (N, C, H, W) array and int64 labels per split, plus
meta.json. Reading and writing only: decoding lives in ``decode.py``, so editing it never
retrains (train depends on this file, not on that one)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.io import read_json, write_json, write_npy

__all__ = [
    "write_split",
    "write_meta",
    "load_arrays",
    "load_meta",
    "load_split",
    "load_table_split",
    "load_series_split",
]

log = logging.getLogger(__name__)


def write_split(out_dir: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    write_npy(out_dir / f"{split}_images.npy", images)
    write_npy(out_dir / f"{split}_labels.npy", labels.astype(np.int64))


def write_meta(
    out_dir: Path,
    classes: list[str],
    prep: Preprocessing,
    counts: dict[str, int],
    skipped: list[dict[str, str]] = (),
) -> None:
    """``skipped``: the bad images build_dataset.on_bad_image: skip dropped (path, label, split,
    reason); the key is written only when there are some, so a clean dataset's meta.json hashes
    as it did before the key existed."""
    meta = {
        "classes": classes,
        "channels": prep.channels,
        "preprocessing": prep.to_dict(),
        "counts": counts,
    }
    if skipped:
        meta["skipped"] = list(skipped)
    write_json(out_dir / "meta.json", meta)


def load_meta(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "meta.json"
    if not path.exists():
        raise UserError(f"{path}: not found (run the build-dataset stage first)")
    return read_json(path)


def load_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split, memory-mapped."""
    return load_arrays(out_dir, split, ("images", "labels"))  # type: ignore[return-value]


def load_table_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A table split: numeric (N, F) float32 with NaN, categorical (N, C) int64, labels (N,)
    (int64 classes or float32 regression targets)."""
    return load_arrays(out_dir, split, ("numeric", "categorical", "labels"))  # type: ignore[return-value]


def load_series_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A series split: windows (N, lookback, F) and targets (N, horizon), float32 and scaled."""
    return load_arrays(out_dir, split, ("windows", "targets"))  # type: ignore[return-value]


def load_arrays(out_dir: Path, split: str, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """``{split}_{name}.npy`` for each name, memory-mapped, checked to have one row count."""
    try:
        arrays = tuple(np.load(out_dir / f"{split}_{name}.npy", mmap_mode="r") for name in names)
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename}: not found (run the build-dataset stage first)") from None
    if len({len(a) for a in arrays}) != 1:
        counts = ", ".join(f"{len(a)} {name}" for a, name in zip(arrays, names, strict=True))
        raise UserError(f"{out_dir}: {split} holds {counts}: rerun build-dataset")
    return arrays
