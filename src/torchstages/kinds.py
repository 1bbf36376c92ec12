"""Which kind of data a project holds: an image-folder tree or one table file.

The split stage decides it from ``data/raw`` (or ``split.kind``) and records it; every later stage
reads it from what the stage before wrote: ``meta.json`` and the model card carry ``"kind"``.
Image artifacts predate kinds and carry no such key, so adding a kind never changed their bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torchstages.errors import UserError

__all__ = ["TABLE_SUFFIXES", "Kind", "detect_kind", "kind_of"]

Kind = Literal["images", "table"]
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def detect_kind(raw_dir: Path, forced: str = "auto") -> Kind:
    """``table`` when ``raw_dir`` holds one table file, ``images`` when it holds class folders."""
    if not raw_dir.is_dir():
        raise UserError(
            f"{raw_dir}: folder not found (put images in {raw_dir}/<class>/... or one table file)"
        )
    visible = [p for p in raw_dir.iterdir() if not p.name.startswith(".")]
    tables = sorted(p.name for p in visible if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
    folders = sorted(p.name for p in visible if p.is_dir())
    if tables and folders:
        raise UserError(
            f"{raw_dir}: holds both a table ({tables[0]}) and class folders ({folders[0]}, ...): "
            "keep either one table file or image folders, not both"
        )
    found: Kind = "table" if tables else "images"
    if forced != "auto" and forced != found:
        what = f"table file {tables[0]}" if tables else "no table file"
        raise UserError(f"split.kind is {forced} but {raw_dir} has {what} (expected {forced})")
    return found


def kind_of(record: dict[str, Any]) -> Kind:
    """The kind recorded in a meta.json, split summary or model card (none recorded: images)."""
    return record.get("kind", "images")
