"""The test split is for the end: training, early stopping and model selection never read it.

The test arrays are made unreadable while train runs: permission bits for ordinary users, and an
audit hook that refuses to open them for anyone (tests may run as root, which ignores the bits).
Any read of the test split by train, its early stopping or its choice of the best epoch fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_train_params

_GUARDED: set[str] = set()
_ATTEMPTS: list[str] = []


def _refuse_guarded_opens(event: str, args: tuple) -> None:
    # "open" covers open(), io.open, os.open and so np.load, np.memmap and torch.load
    if event == "open" and _GUARDED and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path in _GUARDED:
            _ATTEMPTS.append(path)
            raise PermissionError(f"test split is off limits during train: {path}")


sys.addaudithook(_refuse_guarded_opens)  # hooks cannot be removed; it acts only while _GUARDED


@pytest.fixture
def test_split_unreadable(processed: Path):
    files = [processed / "test_images.npy", processed / "test_labels.npy"]
    for f in files:
        f.chmod(0)
    _GUARDED.update(os.path.realpath(f) for f in files)
    _ATTEMPTS.clear()
    yield files
    _GUARDED.clear()
    for f in files:
        f.chmod(0o644)


def test_training_with_early_stopping_never_reads_the_test_split(
    tmp_path, processed, test_split_unreadable
):
    from torchstages.data.store import load_split
    from torchstages.training.loop import TrainOutputs, train

    # the guard works: reading the test split now fails, as any read by train would
    with pytest.raises(PermissionError):
        load_split(processed, "test")
    _ATTEMPTS.clear()

    params = tiny_train_params(
        epochs=5, early_stopping={"patience": 1, "monitor": "val_loss"}, monitor="val_accuracy"
    )
    outputs = TrainOutputs(
        tmp_path / "m/model.safetensors", tmp_path / "m/model.json", tmp_path / "m/ckpt.pt",
        tmp_path / "live",
    )  # fmt: skip
    card = train(params, processed, outputs)
    assert _ATTEMPTS == []
    assert outputs.weights.exists() and card["best"]["monitor"] == "val_accuracy"
    # and the split is still there for the test stage, once the guard is lifted
    _GUARDED.clear()
    for f in test_split_unreadable:
        f.chmod(0o644)
    images, labels = load_split(processed, "test")
    assert len(images) == len(labels) > 0 and np.asarray(labels).dtype == np.int64
