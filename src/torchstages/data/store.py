"""The processed dataset: one uint8 (N, C, H, W) array and int64 labels per split, plus meta.json."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.discover import Row
from torchstages.data.images import Preprocessing, decode_image
from torchstages.errors import UserError
from torchstages.io import read_json, write_json, write_npy

__all__ = [
    "decode_rows",
    "decode_pool",
    "channel_stats",
    "write_split",
    "write_meta",
    "load_meta",
    "load_split",
]

log = logging.getLogger(__name__)


def decode_rows(
    rows: list[Row], raw_dir: Path, prep: Preprocessing, pool: Executor | None = None
) -> np.ndarray:
    """Decode every row into one preallocated (N, C, H, W) uint8 array, in row order.

    Workers of ``pool`` (one process when None) return chunks that are copied straight into the
    output, so the decoded dataset is held once (plus the chunks in flight), never as a list of
    arrays and a stack. Each file's bytes must still match the sha256 the split recorded: the
    split CSVs are then a complete description of this stage's input, and a file edited after
    the split is an error, not a silent mismatch between manifest and pixels.
    """
    out = np.empty((len(rows), prep.channels, *prep.image_size), dtype=np.uint8)
    root = f"{raw_dir}/"  # string joins: pathlib costs ~6 us a row, 0.4 s on MNIST
    items = [(root + row.path, row.sha256) for row in rows]
    # about four chunks per core balance the workers; capped so each chunk amortises its pickling
    size = min(4096, max(64, -(-len(items) // (4 * (os.cpu_count() or 1)))))
    chunks = [(start, items[start : start + size]) for start in range(0, len(items), size)]
    if pool is None:
        for start, chunk in chunks:
            out[start : start + len(chunk)] = _decode_chunk(chunk, prep)
        return out
    results = pool.map(_decode_chunk, [c for _, c in chunks], [prep] * len(chunks))
    for (start, chunk), decoded in zip(chunks, results, strict=True):
        out[start : start + len(chunk)] = decoded
    return out


def decode_pool(workers: int) -> contextlib.AbstractContextManager[Executor | None]:
    """Worker processes for :func:`decode_rows` (``workers`` 0: one per core; 1: no pool)."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return contextlib.nullcontext()
    return ProcessPoolExecutor(max_workers=workers)


def _decode_chunk(items: list[tuple[str, str]], prep: Preprocessing) -> np.ndarray:
    out = np.empty((len(items), prep.channels, *prep.image_size), dtype=np.uint8)
    for i, (path, sha256) in enumerate(items):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UserError(f"{path}: cannot read image ({exc}); rerun the split stage") from None
        out[i] = decode_image(data, path, prep)  # an undecodable file is named as such first
        if hashlib.sha256(data).hexdigest() != sha256:
            raise UserError(f"{path}: changed since the split stage; rerun split first")
    return out


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale, accumulated in float64 chunk by chunk."""
    n_channels = images.shape[1]
    total = np.zeros(n_channels)
    total_sq = np.zeros(n_channels)
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += np.square(chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    # a constant channel would divide by zero when normalising
    std = np.where(std < 1e-6, 1.0, std)
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def write_split(out_dir: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    write_npy(out_dir / f"{split}_images.npy", images)
    write_npy(out_dir / f"{split}_labels.npy", labels.astype(np.int64))


def write_meta(
    out_dir: Path, classes: list[str], prep: Preprocessing, counts: dict[str, int]
) -> None:
    write_json(
        out_dir / "meta.json",
        {
            "classes": classes,
            "channels": prep.channels,
            "preprocessing": prep.to_dict(),
            "counts": counts,
        },
    )


def load_meta(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "meta.json"
    if not path.exists():
        raise UserError(f"{path}: not found (run the build-dataset stage first)")
    return read_json(path)


def load_split(out_dir: Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split; memory-mapped by default."""
    mode = "r" if mmap else None
    try:
        images = np.load(out_dir / f"{split}_images.npy", mmap_mode=mode)
        labels = np.load(out_dir / f"{split}_labels.npy", mmap_mode=mode)
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename}: not found (run the build-dataset stage first)") from None
    if len(images) != len(labels):
        raise UserError(f"{out_dir}: {split} has {len(images)} images but {len(labels)} labels")
    return images, labels
