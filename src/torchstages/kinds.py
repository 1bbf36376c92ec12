"""Which kind of data a project holds: an image-folder tree, or one table file read as a table
(rows of features), as texts (a text column and a label) or as a time series.

The split stage decides it from ``data/raw`` (or ``split.kind``) and records it; every later stage
reads it from what the stage before wrote: ``meta.json`` and the model card carry ``"kind"``.
Image artifacts predate kinds and carry no such key, so adding a kind never changed their bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torchstages.errors import UserError

__all__ = [
    "FILE_KINDS",
    "TABLE_SUFFIXES",
    "Kind",
    "detect_kind",
    "is_table_file",
    "kind_of",
    "sample_noun",
    "table_files",
    "visible_entries",
]

Kind = Literal["images", "table", "text", "series"]
FILE_KINDS = ("table", "text", "series")  # the kinds read from one table file
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
# workbooks are not read (that would need a reader per format); the error says what to do
_WORKBOOKS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def visible_entries(folder: Path) -> list[Path]:
    """What the split stage sees in ``folder``: every entry but hidden ones (none if absent)."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


def is_table_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


def table_files(folder: Path) -> list[Path]:
    """The table files directly in ``folder``, sorted. A ``.txt`` counts only when nothing else
    could be the data: beside class folders or a .csv/.tsv/.parquet file it is a readme or a
    licence (as downloaded datasets ship them), skipped like any loose file."""
    visible = visible_entries(folder)
    files = sorted(p for p in visible if is_table_file(p))
    others = [p for p in files if p.suffix.lower() != ".txt"]
    if others or any(p.is_dir() for p in visible):
        return others
    return files


def detect_kind(raw_dir: Path, forced: str = "auto") -> Kind:
    """``images`` when ``raw_dir`` holds class folders; when it holds one table file, ``table``
    unless ``forced`` names another kind read from a table file (``text``, ``series``)."""
    if not raw_dir.is_dir():
        raise UserError(
            f"{raw_dir}: folder not found (put images in {raw_dir}/<class>/... or one table file)"
        )
    visible = visible_entries(raw_dir)
    tables = [p.name for p in table_files(raw_dir)]
    folders = sorted(p.name for p in visible if p.is_dir())
    if tables and folders:
        raise UserError(
            f"{raw_dir}: holds both a table ({tables[0]}) and class folders ({folders[0]}, ...): "
            "keep either one table file or image folders, not both"
        )
    if not tables and not folders:
        _refuse_loose_files(raw_dir, sorted(p.name for p in visible if p.is_file()))
    if tables and forced in FILE_KINDS:
        return forced  # type: ignore[return-value]
    found: Kind = "table" if tables else "images"
    if forced != "auto" and forced != found:
        what = f"table file {tables[0]}" if tables else "no table file"
        expected = "one table file" if forced in FILE_KINDS else "class folders"
        if forced == "text" and folders:
            expected = "one CSV/TSV/Parquet file with a text and a label column; folders of "
            expected += "text files are not read"
        raise UserError(f"split.kind is {forced} but {raw_dir} has {what} (expected {expected})")
    return found


def _refuse_loose_files(raw_dir: Path, files: list[str]) -> None:
    """Files but neither class folders nor a table file: say what each would need to be."""
    if not files:
        return  # empty: the images reader names the folder and what it expected
    workbooks = [n for n in files if Path(n).suffix.lower() in _WORKBOOKS]
    if workbooks:
        raise UserError(
            f"{raw_dir / workbooks[0]}: a spreadsheet workbook is not read; save the sheet as "
            "CSV (or Parquet) in its place"
        )
    shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    raise UserError(
        f"{raw_dir}: holds files ({shown}) but no class folders and no table file: images go "
        f"in {raw_dir}/<class>/, a table is one .csv, .tsv or .parquet file"
    )


def kind_of(record: dict[str, Any]) -> Kind:
    """The kind recorded in a meta.json, split summary or model card (none recorded: images)."""
    return record.get("kind", "images")


# what one sample of each kind is called in logs, reports and pictures
_SAMPLE_NOUNS = {"images": "image", "table": "row", "text": "text", "series": "window"}


def sample_noun(kind: str, count: int = 1) -> str:
    """``image``, ``row``, ``text`` or ``window``; plural unless ``count`` is 1."""
    return _SAMPLE_NOUNS[kind] + ("" if count == 1 else "s")
