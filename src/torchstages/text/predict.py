"""Classify raw texts with an exported ONNX text model: strings in (``--text``, a text file with
one text a line, or a column of a CSV/TSV/Parquet file), tokenized by the very function
build-dataset used, with the vocabulary and rule from the model's metadata. No torch here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.errors import UserError
from torchstages.tables.read import read_table
from torchstages.text.tokenize import encode_texts

__all__ = ["onnx_logits", "predict_texts", "read_inputs"]

_BATCH = 1024
_TABLES = (".csv", ".tsv", ".parquet", ".pq")


def onnx_logits(session: Any, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, classes) logits of an exported text model, in batches."""
    return np.concatenate(
        [
            session.run(
                None,
                {"tokens": tokens[i : i + _BATCH], "lengths": lengths[i : i + _BATCH]},
            )[0]
            for i in range(0, len(tokens), _BATCH)
        ]
    )


def read_inputs(
    texts: list[str], files: list[str], column: str | None, meta: dict[str, str]
) -> list[tuple[str, str]]:
    """(where, text) pairs: ``--text`` values as ``text 1``, ``text 2``...; a .txt file's
    non-blank lines as ``FILE:LINE``; a table file's ``column`` (default: the training text
    column) as ``FILE:LINE`` (the header is line 1)."""
    out = [(f"text {i}", t) for i, t in enumerate(texts, start=1)]
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        if path.suffix.lower() in _TABLES:
            out += _table_column(path, column or meta["text_column"])
            continue
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{path}: not valid UTF-8 (one text a line, UTF-8)") from None
        out += [(f"{path}:{n}", line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not out:
        raise UserError("predict: no texts (give --text, a .txt file or a table file)")
    return out


def _table_column(path: Path, column: str) -> list[tuple[str, str]]:
    frame = read_table(path)
    if column not in frame.columns:
        raise UserError(
            f"{path}: no column {column!r} (columns: {list(frame.columns)}; --column names it)"
        )
    cells = frame[column].fillna("").tolist()
    return [(f"{path}:{n}", t) for n, t in enumerate(cells, start=2)]


def predict_texts(
    session: Any, meta: dict[str, str], inputs: list[tuple[str, str]]
) -> tuple[list[str], list[list]]:
    """(header, rows): where each text came from, the predicted class and its probability."""
    vocab = json.loads(meta["vocab"])
    index = {tok: i for i, tok in enumerate(vocab)}
    rule = json.loads(meta["tokenizer"])
    tokens, lengths, _ = encode_texts([t for _, t in inputs], rule, index, int(meta["max_len"]))
    out = onnx_logits(session, tokens, lengths)
    classes = json.loads(meta["classes"])
    # softmax after the model, never inside it: the network outputs logits
    exp = np.exp(out - out.max(1, keepdims=True))
    probs = exp / exp.sum(1, keepdims=True)
    return ["input", f"predicted_{meta['target']}", "probability"], [
        [where, classes[int(p.argmax())], round(float(p.max()), 6)]
        for (where, _), p in zip(inputs, probs, strict=True)
    ]
