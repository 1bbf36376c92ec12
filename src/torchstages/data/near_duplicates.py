"""Near-duplicate images: resized, re-encoded, brightened or slightly shifted copies of a picture.

Each image gets a 256-bit perceptual hash (pHash): the decoded picture in grey, resized to 32x32,
its 2-D DCT, and one bit per coefficient of the lowest 16x16 frequencies (above their median or
not). Re-encoding, resizing and brightness barely move low frequencies, so copies land a few
bits apart while different pictures land far apart. Resize and DCT are one matrix product per
axis, applied to all images of one size at once.

Finding every pair within ``threshold`` bits without comparing all pairs: cut the bits into at
least ``threshold + 1`` bands. Two hashes at most ``threshold`` bits apart agree exactly on at
least one band (pigeonhole), so only hashes sharing a band value are compared (multi-index
hashing with exact band lookups): no pair within the threshold is missed.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.discover import Row

__all__ = [
    "HASH_BITS",
    "find_near_duplicates",
    "draw_groups",
    "group_ids",
    "NearDuplicates",
    "near_pairs",
    "phash_bits",
    "phash_files",
]

_SIDE = 32  # the hash sees the picture at 32x32 ...
_KEEP = 16  # ... and keeps the lowest 16x16 frequencies: one bit each
HASH_BITS = _KEEP * _KEEP
WHITE = (255, 255, 255)  # what transparent pixels count as
# 64 bits (8x8, the textbook pHash) cannot tell MNIST digits apart: half of them have another
# digit within 6 bits, closer than a JPEG re-encode moves a copy. With 256 bits the nearest
# other digit is 22+ bits away and re-encoded, resized or brightened copies stay within ~20.


def _dct_rows(n: int) -> np.ndarray:
    """The first ``_KEEP`` rows of the orthonormal DCT-II matrix of size ``n``."""
    k = np.arange(_KEEP)[:, None]
    d = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear resize with a triangle filter widened when shrinking (antialiased,
    like PIL's bilinear): resizing then transforming is one matrix product per axis."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    return w / w.sum(1, keepdims=True)


@functools.lru_cache(maxsize=64)
def _projection(n_in: int) -> np.ndarray:
    """(_KEEP, n_in): resize one axis to _SIDE, then its lowest DCT frequencies."""
    return _dct_rows(_SIDE) @ _resample_matrix(n_in, _SIDE)


def phash_bits(images: np.ndarray) -> np.ndarray:
    """(N, HASH_BITS) bool pHash bits of a batch of (N, H, W) grey images of one size."""
    rows, cols = _projection(images.shape[1]), _projection(images.shape[2])
    low = rows @ (images.astype(np.float64) @ cols.T)  # (N, _KEEP, _KEEP) by two matmuls
    low = low.reshape(len(images), -1)
    # the median leaves out the DC term (overall brightness), so a brightened copy keeps its bits
    return low > np.median(low[:, 1:], axis=1, keepdims=True)


def _grey(path: str) -> np.ndarray | None:
    """The picture in grey as a person sees it; None when PIL cannot decode it (build-dataset
    decides what a broken file means: the near-duplicate check only leaves it out)."""
    from PIL import Image, ImageOps

    from torchstages.data.images import to_8bit_opaque

    try:
        with Image.open(path) as img:
            if "exif" in img.info:
                img = ImageOps.exif_transpose(img)  # as build-dataset decodes it
            # as build-dataset reads them: 16-bit values by their top 8 bits (PIL's own "L"
            # clips them at 255, which made every bright 16-bit picture one white square) and
            # transparent pixels as white, not as whatever colour hides under them
            return np.asarray(to_8bit_opaque(img, WHITE).convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _hash_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(len(paths), HASH_BITS) bits and (len(paths),) decoded flags; images of one size are
    transformed together."""
    images = [_grey(p) for p in paths]
    bits = np.zeros((len(paths), HASH_BITS), dtype=bool)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        if image is not None:
            by_shape.setdefault(image.shape, []).append(i)
    for members in by_shape.values():
        bits[members] = phash_bits(np.stack([images[i] for i in members]))
    return bits, np.array([image is not None for image in images], dtype=bool)


def phash_files(paths: list[Path], workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, HASH_BITS) bool pHash bits of image files and (N,) whether each file could be decoded
    (the bits of one that could not are all False); ``workers`` processes (0: one per core)."""
    names = [str(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(names) < 4000:
        return _hash_chunk(names)
    size = -(-len(names) // (4 * workers))
    chunks = [names[i : i + size] for i in range(0, len(names), size)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_hash_chunk, chunks))
    return np.concatenate([b for b, _ in parts]), np.concatenate([ok for _, ok in parts])


def near_pairs(bits: np.ndarray, threshold: int) -> np.ndarray:
    """(K, 2) int64 index pairs i < j of hashes ``bits`` (N, HASH_BITS) at most ``threshold``
    bits apart, sorted. Exact: the band index only skips pairs that cannot be that close."""
    n_bits = bits.shape[1]
    if not 0 <= threshold < n_bits // 4:
        raise ValueError(f"threshold must be in 0..{n_bits // 4 - 1}, got {threshold}")
    words = np.packbits(bits, axis=1).view(">u8")  # (N, n_bits / 64): Hamming by popcount
    bands = max(threshold + 1, -(-n_bits // 48))  # a band's value must fit in a uint64
    found = [np.empty((0, 2), np.int64)]
    for band in range(bands):
        # every bands-th bit: neighbouring frequencies (correlated bits) fall in different
        # bands, so band values spread over more buckets and fewer pairs are compared
        part = bits[:, band::bands]
        key = part @ (np.uint64(1) << np.arange(part.shape[1], dtype=np.uint64))
        found.append(_pairs_sharing_key(words, key, threshold))
    return np.unique(np.concatenate(found), axis=0)


def _pairs_sharing_key(words: np.ndarray, key: np.ndarray, threshold: int) -> np.ndarray:
    """Pairs within ``threshold`` among hashes with equal ``key``: runs of a sort, compared in
    blocks of equal run size so numpy does the work (no Python per run)."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    out = [np.empty((0, 2), np.int64)]
    for size in np.unique(sizes[sizes > 1]):
        members = order[starts[sizes == size][:, None] + np.arange(size)[None, :]]  # (runs, size)
        i, j = np.triu_indices(size, 1)
        step = max(1, 2_000_000 // len(i))  # runs per block: ~2M pairs in memory at once
        for block in range(0, len(members), step):
            m = members[block : block + step]
            a, b = m[:, i].ravel(), m[:, j].ravel()
            close = np.bitwise_count(words[a] ^ words[b]).sum(1) <= threshold
            out.append(np.stack([np.minimum(a, b)[close], np.maximum(a, b)[close]], 1))
    return np.concatenate(out)


def group_ids(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) id of each item's connected component under ``pairs`` (the smallest member index)."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees flat
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(x) for x in range(n)], dtype=np.int64)


def find_near_duplicates(raw_dir: Path, rows: list[Row], threshold: int) -> list[list[Row]]:
    """Groups (two or more files, sorted; groups sorted) of images at most ``threshold`` pHash
    bits apart, linked transitively. Exact copies are hashed once and belong together anyway."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.sha256, row)
    decoded, ok = phash_files([raw_dir / r.path for r in sorted(first.values())])
    unique = [r for r, good in zip(sorted(first.values()), ok, strict=True) if good]
    bits = decoded[ok]
    roots = group_ids(len(unique), near_pairs(bits, threshold))
    by_root: dict[int, set[str]] = {}
    for row, root in zip(unique, roots.tolist(), strict=True):
        by_root.setdefault(root, set()).add(row.sha256)
    linked = {sha: root for root, shas in by_root.items() if len(shas) > 1 for sha in shas}
    groups: dict[int, list[Row]] = {}
    for row in rows:
        if row.sha256 in linked:
            groups.setdefault(linked[row.sha256], []).append(row)
    return sorted(sorted(g) for g in groups.values())


@dataclass(frozen=True)
class NearDuplicates:
    """The split stage's near-duplicate check of images (see ``split.NearDuplicateFinder``)."""

    mode: str  # group | report
    threshold: int

    def find(self, raw_dir: Path, rows: list[Row]) -> list[list[Row]]:
        return find_near_duplicates(raw_dir, rows, self.threshold)

    def draw(self, raw_dir: Path, groups: list[list[Row]], out_dir: Path) -> None:
        draw_groups(raw_dir, groups, out_dir / "near_duplicates.png")

    def summary(
        self, groups: list[list[Row]], splits: dict[str, list[Row]], shown: int = 20
    ) -> dict[str, Any]:
        """How many groups and files, how many groups ended up in more than one split (0 when
        grouped), and the first ``shown`` groups as "path (split)" lists; when any group holds
        files of several classes (a re-encoded copy filed under another class: a wrong label,
        most likely), every such group under ``label_conflicts``."""
        split_of = {row.path: name for name, members in splits.items() for row in members}
        out: dict[str, Any] = {
            "mode": self.mode,
            "threshold": self.threshold,
            "groups": len(groups),
            "files": sum(len(g) for g in groups),
            "largest_group": max((len(g) for g in groups), default=0),
            "groups_across_splits": sum(len({split_of[r.path] for r in g}) > 1 for g in groups),
            "examples": [[f"{r.path} ({split_of[r.path]})" for r in g] for g in groups[:shown]],
        }
        if conflicts := [[r.path for r in g] for g in groups if len({r.label for r in g}) > 1]:
            out["label_conflicts"] = conflicts
        return out


def draw_groups(raw_dir: Path, groups: list[list[Row]], out: Path, shown: int = 8) -> None:
    """A PNG of the first ``shown`` groups, one per row (up to 4 files each), every picture fitted
    into a 64x64 cell: to see at a glance whether the threshold links true copies only."""
    from PIL import Image, ImageOps

    from torchstages.io import atomic_path

    cell, pad, columns = 64, 4, 4
    rows = groups[:shown]
    sheet = Image.new(
        "L", (columns * (cell + pad) + pad, max(1, len(rows)) * (cell + pad) + pad), 96
    )
    for r, group in enumerate(rows):
        for c, row in enumerate(group[:columns]):
            with Image.open(raw_dir / row.path) as img:
                grey = ImageOps.exif_transpose(img).convert("L")
            # small pictures as pixel blocks, large ones smoothly
            method = (
                Image.Resampling.NEAREST if max(grey.size) < cell else Image.Resampling.BILINEAR
            )
            thumb = ImageOps.contain(grey, (cell, cell), method)
            x = pad + c * (cell + pad) + (cell - thumb.width) // 2
            sheet.paste(thumb, (x, pad + r * (cell + pad) + (cell - thumb.height) // 2))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
