"""The one tokenizer: text -> tokens -> padded token ids, used by build-dataset, the export
metadata and ``torchstages predict`` (no torch, no model files).

The rule is a small JSON-able dict stored in ``meta.json``, the model card and the ONNX metadata:
Unicode NFKC normalisation (full-width letters, ligatures and compatibility forms become their
plain forms), optional lowercasing, then either words by :data:`WORD_PATTERN` or characters.
Ids: 0 padding, 1 unknown, then the vocabulary in order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "PAD",
    "UNK",
    "RESERVED",
    "WORD_PATTERN",
    "duplicate_key",
    "encode_texts",
    "normalize",
    "tokenize",
    "tokenizer_rule",
]

PAD, UNK = 0, 1
RESERVED = ["<pad>", "<unk>"]
# a run of letters/digits/underscores, with inner apostrophes kept (don't, it's); or any single
# character that is neither a word character nor a space (punctuation, symbols, emoji)
WORD_PATTERN = r"\w+(?:['’]\w+)*|[^\w\s]"
_SPACES = re.compile(r"\s+")


def tokenizer_rule(level: str, lowercase: bool) -> dict[str, Any]:
    """The stored form of the tokenizer: enough to reproduce it without this code's defaults."""
    rule: dict[str, Any] = {"normalization": "NFKC", "lowercase": lowercase, "level": level}
    if level == "word":
        rule["pattern"] = WORD_PATTERN
    return rule


def normalize(text: str, lowercase: bool) -> str:
    text = unicodedata.normalize("NFKC", text)
    return text.lower() if lowercase else text


def tokenize(text: str, rule: dict[str, Any]) -> list[str]:
    """The tokens of one text under ``rule`` (see :func:`tokenizer_rule`)."""
    text = normalize(text, rule["lowercase"])
    if rule["level"] == "word":
        return re.findall(rule["pattern"], text)
    return list(_SPACES.sub(" ", text).strip())


def duplicate_key(text: str) -> str:
    """Texts with equal keys are the same text to any tokenizer setting: NFKC, lowercased, word
    tokens. The split keeps such texts in one split (it runs before the tokenizer is chosen,
    so it uses the strictest sameness)."""
    return " ".join(re.findall(WORD_PATTERN, normalize(text, lowercase=True)))


def encode_texts(
    texts: Iterable[str], rule: dict[str, Any], index: dict[str, int], max_len: int
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(N, max_len) int64 token ids (0-padded, cut after ``max_len`` tokens), (N,) int64 lengths
    of what was kept, and counts: ``tokens`` (before cutting), ``unknown`` (of those, not in the
    vocabulary) and ``truncated`` (texts longer than ``max_len``)."""
    rows = [tokenize(t, rule) for t in texts]
    ids = np.zeros((len(rows), max_len), dtype=np.int64)
    lengths = np.zeros(len(rows), dtype=np.int64)
    counts = {"tokens": 0, "unknown": 0, "truncated": 0}
    for i, tokens in enumerate(rows):
        row = [index.get(tok, UNK) for tok in tokens]
        counts["tokens"] += len(row)
        counts["unknown"] += row.count(UNK)
        counts["truncated"] += len(row) > max_len
        kept = row[:max_len]
        ids[i, : len(kept)] = kept
        lengths[i] = len(kept)
    return ids, lengths, counts
