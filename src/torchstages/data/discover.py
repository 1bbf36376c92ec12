"""Find the labelled image files under the raw folder: ``<raw>/<class>/<any depth>/<file>``, or
``<raw>/<split>/<class>/<any depth>/<file>`` for a dataset that comes split already (``train/``,
``test/``, maybe ``val/``)."""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from torchstages.errors import UserError

__all__ = [
    "Row",
    "Discovery",
    "discover",
    "discover_images",
    "is_image_bytes",
    "is_skipped_name",
    "not_image_reason",
]

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


@dataclass(frozen=True)
class Discovery:
    """The images found, and every other file or folder under raw with why it is not used."""

    rows: list[Row]
    skipped: list[tuple[str, str]]  # (path relative to raw, reason), sorted
    # a dataset split already: its top folder -> the split it is ("training" -> "train"); else {}
    given: dict[str, str] = field(default_factory=dict)

    def given_split(self, row: Row) -> str:
        """The split whose folder ``row`` is in (a dataset split already)."""
        return self.given[row.path.split("/", 1)[0]]


# left by operating systems and zip tools, never data: skipped by name, and still listed
_SYSTEM_NAMES = {"Thumbs.db": "Windows thumbnail cache", "desktop.ini": "Windows folder settings"}
_SYSTEM_DIRS = {"__MACOSX": "macOS resource forks from a zip file"}


def discover_images(raw_dir: str | Path) -> list[Row]:
    """All image files under ``raw_dir``, sorted by path (see :func:`discover`)."""
    return discover(raw_dir).rows


def discover(raw_dir: str | Path) -> Discovery:
    """All image files under ``raw_dir/<class>/``, sorted by path, recognised by their bytes.

    Hidden files and folders, system files and ``__MACOSX``, files that are not images, and
    symlinks leading outside ``raw_dir`` are skipped and listed with the reason; symlinks inside
    it are followed. Names that one file system would merge (differing only by case or Unicode
    normalisation) and classes that cannot fill three splits are errors.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise UserError(
            f"{raw_dir}: folder not found (put images in {raw_dir}/<class>/..., or `dvc pull`)"
        )
    root = os.path.realpath(raw_dir)
    rows: list[Row] = []
    skipped: list[tuple[str, str]] = []
    tops = _class_folders(raw_dir, "", root, skipped)
    given = _given_splits(raw_dir, tops, root)
    classes: set[str] = set()
    for top in tops:
        # a dataset split already: its classes are one level down (train/cat/...)
        for folder in _class_folders(raw_dir, top, root, skipped) if given else [top]:
            label = folder.rsplit("/", 1)[-1]
            classes.add(label)
            _walk_class(raw_dir, folder, label, root, rows, skipped)
    if skipped:
        shown = "; ".join(f"{path}: {reason}" for path, reason in sorted(skipped)[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning(
            "split: skipped %d files or folders under %s (all listed in summary.json): %s%s",
            len(skipped),
            raw_dir,
            shown,
            more,
        )
    _check_names(rows, raw_dir)
    _check_class_sizes(rows, sorted(classes), raw_dir)
    if given:
        _check_given_classes(rows, given, raw_dir)
    return Discovery(sorted(rows), sorted(skipped), given)


def _class_folders(
    raw_dir: Path, parent: str, root: str, skipped: list[tuple[str, str]]
) -> list[str]:
    """The folders directly in ``raw_dir/parent`` (relative to raw_dir, sorted); every other
    entry there is listed in ``skipped`` with why."""
    folders = []
    for entry in sorted(os.scandir(raw_dir / parent), key=lambda e: e.name):
        rel = f"{parent}/{_name(entry.name)}" if parent else _name(entry.name)
        reason = _skip_reason(entry, root)
        if reason is None and not entry.is_dir():
            reason = "not inside a class folder"
        if reason is None:
            folders.append(rel)
        else:
            skipped.append((rel, reason))
    return folders


def _walk_class(
    raw_dir: Path,
    folder: str,
    label: str,
    root: str,
    rows: list[Row],
    skipped: list[tuple[str, str]],
) -> None:
    seen = {os.path.realpath(raw_dir / folder)}  # a symlinked folder is entered once: no loops
    pending = [folder]
    while pending:
        rel_dir = pending.pop()
        for entry in sorted(os.scandir(raw_dir / rel_dir), key=lambda e: e.name):
            rel = f"{rel_dir}/{_name(entry.name)}"
            reason = _skip_reason(entry, root)
            if reason is None and entry.is_dir():
                real = os.path.realpath(entry.path)
                if real not in seen:
                    seen.add(real)
                    pending.append(f"{rel_dir}/{entry.name}")
                continue
            if reason is None:
                reason, data = _read(entry.path)
                if reason is None:
                    rows.append(Row(rel, label, hashlib.sha256(data).hexdigest()))
                    continue
            skipped.append((rel, reason))


def is_skipped_name(name: str) -> bool:
    """Names the split stage never reads as data: hidden files and folders, and OS litter
    (``Thumbs.db``, ``__MACOSX``); predict walks folders by the same rule."""
    return name.startswith(".") or name in _SYSTEM_NAMES or name in _SYSTEM_DIRS


def _name(name: str) -> str:
    """A file name as CSV and JSON can hold it: undecodable bytes shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _skip_reason(entry: os.DirEntry, root: str) -> str | None:
    """Why a folder entry is not data, or None: judged by its name and where it leads."""
    name = entry.name
    if name in _SYSTEM_DIRS:
        return _SYSTEM_DIRS[name]
    if name in _SYSTEM_NAMES:
        return _SYSTEM_NAMES[name]
    if name.startswith("."):
        return "hidden folder" if entry.is_dir() else "hidden file"
    if _name(name) != name:
        return "file name is not valid UTF-8 (rename it)"
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            return "broken symlink"
        if os.path.commonpath([root, target]) != root:
            return f"symlink to {target}, outside the data folder (copy the file in instead)"
    return None


def _is_image_file(entry: os.DirEntry) -> bool:
    if entry.is_dir():
        return False
    try:
        with open(entry.path, "rb") as f:
            return is_image_bytes(f.read(16))
    except OSError:
        return False


def _read(path: str) -> tuple[str | None, bytes]:
    """(None, bytes) for an image file; else (why not, b"")."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return f"cannot read ({exc.strerror})", b""
    reason = not_image_reason(data)
    return (None, data) if reason is None else (reason, b"")


def not_image_reason(data: bytes) -> str | None:
    """Why ``data`` is no image (None: it starts like one), in the split stage's and predict's
    words."""
    if is_image_bytes(data[:16]):
        return None
    if not data:
        return "empty file"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<svg")):
        return "an HTML or XML page, not an image (a failed download?)"
    return f"not an image (starts with {data[:8]!r})"


def _check_names(rows: list[Row], raw_dir: Path) -> None:
    """Paths that macOS or Windows would take for one file or folder: a clone there would lose
    a file, or merge two class folders (Cat/ and cat/) into one class."""
    seen: dict[str, str] = {}
    for row in rows:
        parts = row.path.split("/")
        # the file, and every folder above it (one check per folder name is enough)
        for path in (row.path, *("/".join(parts[:i]) for i in range(1, len(parts)))):
            key = unicodedata.normalize("NFC", path).casefold()
            other = seen.setdefault(key, path)
            if other != path:
                raise UserError(
                    f"{raw_dir}: {other!r} and {path!r} differ only by letter case or Unicode "
                    "normalisation; macOS and Windows store them as one: rename one"
                )


# the top folders of a dataset that comes split already (train/<class>/..., test/<class>/...),
# and the split each one is
GIVEN_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def _given_splits(raw_dir: Path, tops: list[str], root: str) -> dict[str, str]:
    """``{folder: split}`` when every top folder is named for a split and holds class folders
    and no images of its own, as torchvision's and Ultralytics' datasets come; else {} (the top
    folders are the classes: train/ and test/ holding images are two classes of those names)."""
    if not tops or any(t.lower() not in GIVEN_NAMES for t in tops):
        return {}
    for top in tops:
        entries = [e for e in os.scandir(raw_dir / top) if _skip_reason(e, root) is None]
        if not any(e.is_dir() for e in entries) or any(_is_image_file(e) for e in entries):
            return {}
    given = {top: GIVEN_NAMES[top.lower()] for top in tops}
    for split in set(given.values()):
        named = sorted(top for top, s in given.items() if s == split)
        if len(named) > 1:
            raise UserError(
                f"{raw_dir}: {' and '.join(f'{n}/' for n in named)} both hold the {split} split: "
                "merge them into one folder"
            )
    if "train" not in given.values():
        raise UserError(
            f"{raw_dir}: a dataset split already ({', '.join(f'{t}/' for t in tops)}) needs a "
            "train/ folder beside them"
        )
    return given


def _check_given_classes(rows: list[Row], given: dict[str, str], raw_dir: Path) -> None:
    """Every given split holds every class: a class the model never trains on would still be
    scored, and one missing from test/ would have no score."""
    held: dict[str, set[str]] = {top: set() for top in given}
    for row in rows:
        held[row.path.split("/", 1)[0]].add(row.label)
    classes = set().union(*held.values())
    for top in sorted(given):
        missing = sorted(classes - held[top])
        if missing:
            raise UserError(
                f"{raw_dir}/{top}: no images of class(es) {missing}, which the other folders "
                f"have (every split folder needs every class: add them, or remove the class)"
            )


def _check_class_sizes(rows: list[Row], classes: list[str], raw_dir: Path) -> None:
    counts = dict.fromkeys(classes, 0)
    for row in rows:
        counts[row.label] += 1
    empty = sorted(label for label, n in counts.items() if n == 0)
    if empty:
        raise UserError(
            f"{raw_dir}: class folders without images: {empty} (add images or remove the folders)"
        )
    if not counts:
        raise UserError(f"{raw_dir}: no images found (expected {raw_dir}/<class>/<image files>)")
    if len(counts) < 2:
        raise UserError(
            f"{raw_dir}: found only class {sorted(counts)}; a classifier needs at least 2 classes, "
            f"one folder each under {raw_dir}"
        )
    small = {label: n for label, n in counts.items() if n < MIN_PER_CLASS}
    if small:
        raise UserError(
            f"{raw_dir}: classes with fewer than {MIN_PER_CLASS} images (need one each for train, "
            f"val and test): {small}"
        )
