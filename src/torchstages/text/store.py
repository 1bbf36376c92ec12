"""The processed texts on disk, for the stages after build-dataset: reading only, so editing the
tokenizer or the build code never makes train, evaluation or export depend on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchstages.data.store import load_arrays
from torchstages.errors import UserError
from torchstages.io import read_json

__all__ = ["TEXTS_FILE", "VOCAB_FILE", "load_text_split", "load_vocab"]

VOCAB_FILE = "vocab.json"
TEXTS_FILE = "texts.json"  # the val and test texts as read, for the evaluation's wrong-texts list


def load_text_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (N, max_len) int64, lengths (N,) int64 and labels (N,) int64 of one split."""
    return load_arrays(out_dir, split, ("tokens", "lengths", "labels"))  # type: ignore[return-value]


def load_vocab(out_dir: Path) -> list[str]:
    """The tokens in id order (0 padding, 1 unknown), as build-dataset wrote them."""
    path = out_dir / VOCAB_FILE
    if not path.exists():
        raise UserError(f"{path}: not found (run the build-dataset stage first)")
    return read_json(path)["tokens"]
