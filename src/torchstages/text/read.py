"""Reading the one text table under ``data/raw`` and naming its text and label columns."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd

from torchstages.errors import UserError
from torchstages.params.split import TextSplitParams
from torchstages.tables.read import NotDecodable, UnclosedQuote, read_table

__all__ = ["read_texts", "resolve_text_columns"]

_TEXT_NAMES = ("text", "message", "sentence", "review", "content", "document")
_LABEL_NAMES = ("label", "target", "class", "y")
_QUOTES_IN_TEXTS = "set split.text.quoting: none when quotes are part of the texts"


def read_texts(path: Path, params: TextSplitParams) -> tuple[pd.DataFrame, str, str]:
    """The file's cells as ``str`` or NaN (read with the params' encoding and quoting), and the
    names of its text and label columns.

    With csv quoting, a quote that is never closed swallows the lines after it into one text;
    a text with a line inside that reads like a row of the file (its label field one of the
    labels) is reported as such a broken quote.
    """
    try:
        frame = read_table(path, params.encoding, params.quoting, words=False)
    except UnclosedQuote as exc:
        raise UserError(f"{exc} ({_QUOTES_IN_TEXTS})") from None
    except NotDecodable as exc:  # texts exported by older tools may be in a legacy encoding
        if codecs.lookup(params.encoding).name != "utf-8":
            raise
        raise UserError(
            f"{exc}, or set split.text.encoding (e.g. {(exc.encoding or 'cp1252').lower()})"
        ) from None
    text, label = resolve_text_columns(frame, params, path)
    if params.quoting == "csv" and path.suffix.lower() not in (".parquet", ".pq"):
        _refuse_swallowed_rows(frame, label, path)
    return frame, text, label


def _refuse_swallowed_rows(frame: pd.DataFrame, label: str, path: Path) -> None:
    columns = list(frame.columns)
    labels = set(frame[label].dropna())
    at = columns.index(label)
    # "text, label": the reader set aside the space after each comma, so the check does too
    spaced = frame.attrs.get("skipinitialspace", False)
    for line, *cells in frame.itertuples(name=None):
        texts = [c for c in cells if isinstance(c, str)]
        for inner in (part for c in texts for part in c.split("\n")[1:]):
            for delimiter in "\t,;|":
                fields = inner.split(delimiter)
                if len(fields) != len(columns):
                    continue
                if (fields[at].lstrip(" ") if spaced else fields[at]) in labels:
                    raise UserError(
                        f"{path}: line {line}: a quote opened here is never closed, and the "
                        f"lines after it were read as one text ({_QUOTES_IN_TEXTS})"
                    )


def resolve_text_columns(
    frame: pd.DataFrame, params: TextSplitParams, path: Path
) -> tuple[str, str]:
    """(text column, label column): as named in params, else found by name; a text column may
    also be found as the column with the longest cells."""
    columns = list(frame.columns)
    for key, column in (("split.text.text", params.text), ("split.text.label", params.label)):
        if column is not None and column not in columns:
            raise UserError(f"{path}: {key}: no column {column!r} (columns: {columns})")
    label = params.label or next((c for c in columns if c.lower() in _LABEL_NAMES), None)
    if label is None:
        raise UserError(
            f"{path}: no column named {'/'.join(_LABEL_NAMES)}; set split.text.label to one of "
            f"{columns}"
        )
    text = params.text or next(
        (c for c in columns if c.lower() in _TEXT_NAMES and c != label), None
    )
    if text is None:
        others = [c for c in columns if c != label]
        if not others:
            raise UserError(f"{path}: no column besides the label {label!r} to read texts from")
        # free text is the column with the longest cells (ids and categories are short)
        text = max(others, key=lambda c: frame[c].fillna("").str.len().mean())
    if text == label:
        raise UserError(f"{path}: split.text.text and split.text.label both name {text!r}")
    return text, label
