"""Classify raw texts with an exported text model (``.onnx``, ``.int8.onnx`` or ``.pt2``): strings
in (``--text``, a text file with one text a line, a column of a CSV/TSV/Parquet file, or JSON sent
to ``torchstages serve``), tokenized by the very function build-dataset used, with the vocabulary
and rule from the model's metadata. predict and serve both call :func:`classify_texts`. No torch
here on the ONNX path."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from torchstages.deploy.runtime import Runner, run_batched, top_k_cells, top_k_header, top_k_rows
from torchstages.errors import UserError
from torchstages.tables.read import decode_text, read_table
from torchstages.text.tokenize import encode_texts
from torchstages.wording import counted, listed

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TextEncoder", "TextInput", "classify_texts", "predict_texts", "read_inputs"]

log = logging.getLogger(__name__)
_BATCH = 1024
_TABLES = (".csv", ".tsv", ".parquet", ".pq")


# where a text came from, the text, and the cells of the --keep columns of its row
TextInput = tuple[str, str, list[str]]


def read_inputs(
    texts: list[str],
    files: list[str],
    column: str | None,
    meta: dict[str, str],
    keep: Sequence[str] = (),
) -> list[TextInput]:
    """``--text`` values as ``text 1``, ``text 2``...; a .txt file's non-blank lines as
    ``FILE:LINE``; a table file's ``column`` (default: the training text column) as
    ``FILE:LINE`` (the line its row starts on), with the cells of its ``keep`` columns (an id
    to join the predictions back on), which only table files have."""
    # files are read as the training file was (split.text.encoding and quoting); models
    # exported before the metadata held them were trained on UTF-8 with csv quoting
    encoding, quoting = meta.get("encoding", "utf-8"), meta.get("quoting", "csv")
    if keep and (texts or any(Path(n).suffix.lower() not in _TABLES for n in files)):
        raise UserError("--keep copies columns of a table file's rows: --text and .txt have none")
    out: list[TextInput] = [(f"text {i}", t, []) for i, t in enumerate(texts, start=1)]
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        if path.suffix.lower() in _TABLES:
            frame = read_table(path, encoding, quoting, words=False)
            out += _table_column(frame, path, column or meta["text_column"], keep)
            continue
        advice = "one text a line, encoded as the model's training file was"
        lines = decode_text(path, encoding, advice).splitlines()
        read = [(f"{path}:{n}", t, []) for n, t in enumerate(lines, start=1) if t.strip()]
        if not read:
            raise UserError(f"{path}: no text in it (every line is blank); {advice}")
        out += read
    if not out:
        raise UserError("predict: no texts (give --text, a .txt file or a table file)")
    return out


def _table_column(
    frame: pd.DataFrame, path: Path, column: str, keep: Sequence[str]
) -> list[TextInput]:
    if column not in frame.columns:
        raise UserError(
            f"{path}: no column {column!r} (columns: {list(frame.columns)}; --column names it)"
        )
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        raise UserError(f"{path}: --keep names column(s) {absent} that it does not have")
    kept = frame[list(keep)].fillna("").astype(str).to_numpy().tolist()
    texts = frame[column].fillna("").tolist()
    return [
        (f"{path}:{line}", text, cells)
        for line, text, cells in zip(frame.index, texts, kept, strict=True)
    ]


@dataclass(frozen=True)
class TextEncoder:
    """A text model's tokenizer rule, vocabulary and length, read once from its metadata (the
    vocabulary can hold tens of thousands of words: serve keeps one for every request)."""

    rule: dict[str, Any]
    index: dict[str, int]
    max_len: int

    @classmethod
    def of(cls, metadata: dict[str, str]) -> TextEncoder:
        vocab = json.loads(metadata["vocab"])
        index = {tok: i for i, tok in enumerate(vocab)}
        return cls(json.loads(metadata["tokenizer"]), index, int(metadata["max_len"]))

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The model's named inputs: (N, max_len) token ids and (N,) lengths."""
        tokens, lengths, _ = encode_texts(texts, self.rule, self.index, self.max_len)
        return {"tokens": tokens, "lengths": lengths}


def classify_texts(
    runner: Runner, texts: list[str], k: int = 1, encoder: TextEncoder | None = None
) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable classes of each text, best first, with their probabilities."""
    inputs = (encoder or TextEncoder.of(runner.metadata))(texts)
    return top_k_rows(run_batched(runner, inputs, _BATCH), runner.classes, k)


def predict_texts(
    runner: Runner, inputs: list[TextInput], k: int = 1, keep: Sequence[str] = ()
) -> tuple[list[str], list[list]]:
    """(header, rows): where each text came from, the ``keep`` cells of its row, its class and
    probability (``k`` > 1: the next classes and theirs too). An empty text keeps its row,
    without a prediction: training left such texts out, so any class given to one would be
    made up."""
    empty = [where for where, text, _ in inputs if not text.strip()]
    if empty:
        log.warning(
            "predict: %s, left without a prediction: %s",
            counted(len(empty), "empty text"),
            listed(empty),
        )
    given = [t for _, t, _ in inputs if t.strip()]
    tops = iter(classify_texts(runner, given, k) if given else [])
    header = ["input", *keep, *top_k_header(f"predicted_{runner.metadata['target']}", k)]
    return header, [
        [where, *kept, *(top_k_cells(next(tops)) if text.strip() else [None] * (2 * k))]
        for where, text, kept in inputs
    ]
