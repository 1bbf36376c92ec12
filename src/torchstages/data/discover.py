"""Find the labelled image files under the raw folder: ``<raw>/<class>/<any depth>/<file>``."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from torchstages.errors import UserError

__all__ = ["Row", "discover_images", "is_image_bytes"]

log = logging.getLogger(__name__)

# Recognised by content, so "scan.JPG", "img.jpeg.bak" or an extension-less export all work
# and a stray README.txt inside a class folder does not become a training sample.
_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
MIN_PER_CLASS = 3  # one sample for each of train, val and test


@dataclass(frozen=True, order=True)
class Row:
    """One sample of the manifest: where it is (relative to raw), its class, the hash of its bytes."""

    path: str
    label: str
    sha256: str


def is_image_bytes(head: bytes) -> bool:
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def discover_images(raw_dir: str | Path) -> list[Row]:
    """All image files under ``raw_dir``, sorted by path; hidden files and folders are skipped."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(f"{raw_dir}: folder not found (put images in {raw_dir}/<class>/...)")
    rows: list[Row] = []
    skipped = 0
    for class_dir in sorted(p for p in raw_dir.iterdir() if p.is_dir() and not _hidden(p.name)):
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for name in sorted(filenames):
                if _hidden(name):
                    continue
                path = Path(dirpath, name)
                data = path.read_bytes()
                if not is_image_bytes(data[:16]):
                    skipped += 1
                    continue
                rel = path.relative_to(raw_dir).as_posix()
                rows.append(Row(rel, class_dir.name, hashlib.sha256(data).hexdigest()))
    if skipped:
        log.warning("split: skipped %d files under %s that are not images", skipped, raw_dir)
    if not rows:
        raise UserError(f"{raw_dir}: no images found (expected {raw_dir}/<class>/<image files>)")
    _check_class_sizes(rows, raw_dir)
    return sorted(rows)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _check_class_sizes(rows: list[Row], raw_dir: Path) -> None:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    if len(counts) < 2:
        raise UserError(f"{raw_dir}: found only class {sorted(counts)}; need at least 2 classes")
    small = {label: n for label, n in counts.items() if n < MIN_PER_CLASS}
    if small:
        raise UserError(
            f"{raw_dir}: classes with fewer than {MIN_PER_CLASS} images (one per split): {small}"
        )
