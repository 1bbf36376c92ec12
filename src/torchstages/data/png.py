"""Batched decoding of small plain PNGs (MNIST-, CIFAR-style datasets) with zlib and numpy.

PIL spends ~30 µs of Python on opening and loading a 28×28 PNG, ten times what its pixels cost:
they are one zlib stream plus a filter byte per row. Here the row filters of a whole batch of
same-shaped images are undone at once, vectorised across the images (Average and Paeth are
sequential along a row, not across images), so a file costs a few µs. Only plain files take
this path: 8-bit grey/RGB with or without alpha, not interlaced, valid checksums, and no chunk
that could change the pixels or the orientation (palette, transparency, EXIF, text). PNG is
lossless, so the pixels are exactly those PIL decodes; build-dataset gives them to the same PIL
conversion and resize (``images.resize_batch``). Anything else goes to PIL unchanged.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["PlainPng", "parse_plain_png", "worth_batching", "decode_batch", "unfilter"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MODES = {0: ("L", 1), 4: ("LA", 2), 2: ("RGB", 3), 6: ("RGBA", 4)}  # colour type -> PIL mode
# chunks PIL reads into img.info without touching the pixels, the mode or the orientation
_HARMLESS = frozenset({b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"tIME", b"sBIT"})
# only images this small: the cost of undoing Average/Paeth grows with pixels per row × rows
MAX_PIXELS = 64 * 64
# measured on a 2-core EPYC: PIL opens and loads a small PNG in ~30 µs; one step of the
# Average/Paeth loop (one pixel column of one row, for the whole batch) costs ~15 µs
_PIL_US, _STEP_US = 30, 15


@dataclass(frozen=True)
class PlainPng:
    width: int
    height: int
    color_type: int
    scanlines: bytes  # the inflated IDAT stream: per row, a filter byte and the filtered bytes

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.color_type


def parse_plain_png(data: bytes) -> PlainPng | None:
    """The inflated pixel stream of a small plain PNG; None for anything PIL should handle."""
    if not data.startswith(_SIGNATURE):
        return None
    view = memoryview(data)
    pos, header, idat = 8, None, []
    try:
        while True:
            length, kind = struct.unpack_from(">I4s", data, pos)
            end = pos + 8 + length
            (crc,) = struct.unpack_from(">I", data, end)
            if zlib.crc32(view[pos + 4 : end]) != crc:
                return None  # PIL decides how a damaged file fails
            if kind == b"IHDR":
                header = struct.unpack_from(">IIBBBBB", data, pos + 8)
            elif kind == b"IDAT":
                idat.append(view[pos + 8 : end])
            elif kind == b"IEND":
                break
            elif kind not in _HARMLESS:
                return None
            pos = end + 4
    except struct.error:  # truncated
        return None
    if header is None:
        return None
    width, height, depth, color_type, compression, filtering, interlace = header
    if depth != 8 or color_type not in _MODES or (compression, filtering, interlace) != (0, 0, 0):
        return None
    if not 0 < width * height <= MAX_PIXELS:
        return None
    try:
        scanlines = zlib.decompress(b"".join(idat))
    except zlib.error:
        return None
    if len(scanlines) != height * (1 + width * _MODES[color_type][1]):
        return None
    return PlainPng(width, height, color_type, scanlines)


def worth_batching(count: int, width: int, height: int) -> bool:
    """Whether ``count`` same-shaped images decode faster together than one by one in PIL."""
    return count * _PIL_US >= width * height * _STEP_US


def decode_batch(pngs: list[PlainPng]) -> tuple[np.ndarray, str]:
    """Pixels of PNGs of one shape (width, height, colour type): (N, H, W, C) uint8, PIL mode.

    Raises ValueError for an unknown filter type; the caller then leaves the batch to PIL.
    """
    first = pngs[0]
    mode, bpp = _MODES[first.color_type]
    stride = 1 + first.width * bpp
    scanlines = np.frombuffer(b"".join(p.scanlines for p in pngs), np.uint8)
    pixels = unfilter(scanlines.reshape(len(pngs), first.height, stride), bpp)
    return pixels.reshape(len(pngs), first.height, first.width, bpp), mode


def unfilter(scanlines: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters: (N, H, 1 + W·bpp) uint8 scanlines -> (N, H, W·bpp) uint8 pixels.

    Rows depend on the row above, so the loop runs over rows; within a row, None, Sub and Up
    are whole-array operations, Average and Paeth loop over pixels. uint8 arithmetic wraps
    modulo 256, exactly as the PNG specification's filter arithmetic does.
    """
    n, height, stride = scanlines.shape
    if n and scanlines[:, :, 0].max() > 4:
        raise ValueError("unknown PNG filter type")
    row_bytes = stride - 1
    out = np.empty((n, height, row_bytes), np.uint8)
    prior = np.zeros((n, row_bytes), np.uint8)
    for y in range(height):
        kind, row = scanlines[:, y, 0], scanlines[:, y, 1:].copy()
        up = kind == 2
        row[up] += prior[up]
        sub = kind == 1
        if sub.any():
            wide = row[sub].reshape(-1, row_bytes // bpp, bpp)
            row[sub] = np.cumsum(wide, axis=1, dtype=np.uint8).reshape(-1, row_bytes)
        sequential = kind >= 3
        if sequential.any():
            row[sequential] = _average_or_paeth(
                row[sequential], prior[sequential], kind[sequential] == 4, bpp
            )
        out[:, y] = row
        prior = out[:, y]
    return out


def _average_or_paeth(
    row: np.ndarray, prior: np.ndarray, paeth: np.ndarray, bpp: int
) -> np.ndarray:
    """Rows filtered with Average (3) or Paeth (4), one pixel column at a time."""
    filtered, above = row.astype(np.int16), prior.astype(np.int16)
    out = np.zeros_like(filtered)
    zero = np.zeros((len(row), bpp), np.int16)
    paeth = paeth[:, None]
    for x in range(0, filtered.shape[1], bpp):
        left = out[:, x - bpp : x] if x else zero
        up_left = above[:, x - bpp : x] if x else zero
        up = above[:, x : x + bpp]
        estimate = left + up - up_left
        d_left, d_up = np.abs(estimate - left), np.abs(estimate - up)
        d_up_left = np.abs(estimate - up_left)
        nearest = np.where(
            (d_left <= d_up) & (d_left <= d_up_left), left, np.where(d_up <= d_up_left, up, up_left)
        )
        predictor = np.where(paeth, nearest, (left + up) >> 1)
        out[:, x : x + bpp] = (filtered[:, x : x + bpp] + predictor) & 0xFF
    return out.astype(np.uint8)
