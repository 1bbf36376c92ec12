"""Decoding the files of a split into one uint8 array, in parallel worker processes (build-dataset)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections import defaultdict
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from torchstages.data.discover import Row
from torchstages.data.images import (
    MAX_PIXELS,
    MODES,
    RESAMPLE,
    BadImageError,
    Preprocessing,
    composite,
    decode_image,
    resize_image,
)
from torchstages.data.png import PlainPng, decode_batch, parse_plain_png, worth_batching
from torchstages.errors import UserError
from torchstages.io import six_decimals

__all__ = ["decode_rows", "check_inside", "decode_pool", "resize_batch", "channel_stats"]


def decode_rows(
    rows: list[Row],
    raw_dir: Path,
    prep: Preprocessing,
    pool: Executor | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode every row into one preallocated (N, C, H, W) uint8 array, in row order, and list
    the rows that could not be decoded as (index, reason); their slots hold zeros.

    Workers of ``pool`` (one process when None) return chunks that are copied straight into the
    output, so the decoded dataset is held once (plus the chunks in flight), never as a list of
    arrays and a stack. Each file's bytes must still match the sha256 the split recorded: the
    split CSVs are then a complete description of this stage's input, and a file edited after
    the split is an error, not a silent mismatch between manifest and pixels.
    """
    for row in rows:
        check_inside(row.path, raw_dir)
    out = np.empty((len(rows), prep.channels, *prep.image_size), dtype=np.uint8)
    root = f"{raw_dir}/"  # string joins: pathlib costs ~6 us a row, 0.4 s on MNIST
    items = [(root + row.path, row.sha256) for row in rows]
    # about four chunks per core balance the workers; capped so each chunk amortises its pickling
    size = min(4096, max(64, -(-len(items) // (4 * (os.cpu_count() or 1)))))
    chunks = [(start, items[start : start + size]) for start in range(0, len(items), size)]
    n = len(chunks)
    if pool is None:
        results = map(_decode_chunk, [c for _, c in chunks], [prep] * n, [max_pixels] * n)
    else:
        results = pool.map(_decode_chunk, [c for _, c in chunks], [prep] * n, [max_pixels] * n)
    bad: list[tuple[int, str]] = []
    for (start, chunk), (decoded, failed) in zip(chunks, results, strict=True):
        out[start : start + len(chunk)] = decoded
        bad += [(start + i, reason) for i, reason in failed]
    return out, bad


def check_inside(path: str, raw_dir: Path) -> None:
    """A manifest path must name a file under ``raw_dir``: relative, without ``..``."""
    parts = PurePosixPath(path).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise UserError(f"{path}: a split CSV path must stay inside {raw_dir}; rerun the split")


def decode_pool(workers: int) -> contextlib.AbstractContextManager[Executor | None]:
    """Worker processes for :func:`decode_rows` (``workers`` 0: one per core; 1: no pool)."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return contextlib.nullcontext()
    return ProcessPoolExecutor(max_workers=workers)


def _decode_chunk(
    items: list[tuple[str, str]], prep: Preprocessing, max_pixels: int
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode one chunk: small plain PNGs of one shape together (``png``), the rest in PIL; the
    files that fail are returned as (index in chunk, reason), their slots zeroed."""
    out = np.empty((len(items), prep.channels, *prep.image_size), dtype=np.uint8)
    failed: list[tuple[int, str]] = []

    def decode_one(i: int, data: bytes) -> bool:
        try:
            out[i] = decode_image(data, items[i][0], prep, max_pixels)
        except BadImageError as exc:
            out[i] = 0
            failed.append((i, exc.reason))
            return False
        return True

    plain: dict[tuple[int, int, int], list[tuple[int, PlainPng, bytes]]] = defaultdict(list)
    for i, (path, sha256) in enumerate(items):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UserError(f"{path}: cannot read image ({exc}); rerun the split stage") from None
        png = parse_plain_png(data)
        # an undecodable file is named as such, even if it also changed since the split
        if png is None and not decode_one(i, data):
            continue
        if png is not None:
            plain[png.shape].append((i, png, data))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise UserError(f"{path}: changed since the split stage; rerun split first")
    for (height, width, _), group in plain.items():
        batch = None
        if worth_batching(len(group), width, height):
            with contextlib.suppress(ValueError):  # a bad filter byte: PIL names the file below
                batch = decode_batch([png for _, png, _ in group])
        if batch is not None:
            out[[i for i, _, _ in group]] = resize_batch(*batch, prep)
            continue
        for i, _, data in group:
            decode_one(i, data)
    return out, sorted(failed)


def resize_batch(pixels: np.ndarray, mode: str, prep: Preprocessing) -> np.ndarray:
    """:func:`resize_image` for N decoded images of one size and PIL ``mode`` at once, equal to
    it image by image: (N, H, W, C) uint8 -> (N, C, h, w).

    PIL converts pixel by pixel and resizes in two separable passes, rounding to uint8 in
    between. So resizing the width of the images stacked into one tall image, and the height of
    the images side by side in one wide image, in the order PIL's one call would, computes
    exactly what one call per image computes, without PIL's ~15 µs of per-call overhead.
    """
    n, height, width, _ = pixels.shape
    stack = _from_rows(np.ascontiguousarray(pixels).reshape(n * height, width, -1), mode)
    if mode in ("LA", "RGBA"):  # compositing is per pixel: the same on the stack as on each
        stack = composite(np.asarray(stack), mode, prep.background)
    target = MODES[prep.color]
    if stack.mode != target:
        stack = stack.convert(target)
    images = np.asarray(stack).reshape(n, height, width, -1)
    out_h, out_w = prep.image_size
    resample = RESAMPLE[prep.interpolation]
    # crop and pad place each image on its own: one call each
    order = None
    if prep.resize == "stretch":
        order = _pass_order(target, (width, height), (out_w, out_h), resample)
    if order is None:
        return np.stack([resize_image(_from_rows(image, target), prep) for image in images])
    for axis in order:
        if axis == "width" and width != out_w:
            images = _resize_width(images, out_w, target, resample)
        if axis == "height" and height != out_h:
            side_by_side = images.transpose(0, 2, 1, 3)  # height becomes width: one code path
            images = _resize_width(side_by_side, out_h, target, resample).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _resize_width(images: np.ndarray, out_w: int, mode: str, resample: int) -> np.ndarray:
    """Resize the width of (N, H, W, C) images as one tall (N·H, W) image: rows are independent."""
    n, height, _, channels = images.shape
    tall = _from_rows(np.ascontiguousarray(images).reshape(n * height, -1, channels), mode)
    return np.asarray(tall.resize((out_w, n * height), resample=resample)).reshape(
        n, height, out_w, channels
    )


@functools.lru_cache(maxsize=64)
def _pass_order(
    mode: str, size: tuple[int, int], out_size: tuple[int, int], resample: int
) -> tuple[str, str] | None:
    """The order of PIL's two resize passes for these sizes, found by comparing its one-call
    result on a noise image with both orders (Pillow picks the order by its own cost rules);
    None when neither matches, and the batch falls back to one call per image."""
    (width, height), (out_w, out_h) = size, out_size
    channels = len(Image.new(mode, (1, 1)).getbands())
    noise = np.random.default_rng(0).integers(0, 256, (height, width, channels), np.uint8)
    probe = _from_rows(noise, mode)
    want = np.asarray(probe.resize(out_size, resample=resample))
    width_first = probe.resize((out_w, height), resample=resample)
    if np.array_equal(want, np.asarray(width_first.resize(out_size, resample=resample))):
        return ("width", "height")
    height_first = probe.resize((width, out_h), resample=resample)
    if np.array_equal(want, np.asarray(height_first.resize(out_size, resample=resample))):
        return ("height", "width")
    return None


def _from_rows(array: np.ndarray, mode: str) -> Image.Image:
    """A PIL image of ``mode`` from (H, W, C) uint8."""
    return Image.fromarray(
        np.ascontiguousarray(array[..., 0] if array.shape[2] == 1 else array), mode
    )


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
    return tuple(six_decimals(m) for m in mean), tuple(six_decimals(s) for s in std)
