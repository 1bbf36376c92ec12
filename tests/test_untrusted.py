"""Untrusted files: a checkpoint or weights file carrying a pickle payload is refused, and the
payload never runs (it would create a file)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from torchstages.errors import UserError
from torchstages.models.transfer import read_state_dict
from torchstages.training.checkpoint import load_resumable


class Payload:
    """Unpickling this calls open(marker, "w"): the file appears if any loader runs pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint-shaped file with the payload in it; the payload is shown to be live first."""
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    state = {
        "model": {"w": torch.zeros(2)},
        "fingerprint": "x",
        "epochs_done": 1,
        "x": Payload(marker),
    }
    torch.save(state, path)
    torch.load(path, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_resume_refuses_a_checkpoint_with_a_pickle_payload(crafted, caplog):
    path, marker = crafted
    with caplog.at_level(logging.WARNING, logger="torchstages"):
        assert load_resumable(path, "x", epochs=5) is None
    assert not marker.exists()
    assert "not resumed (UnpicklingError); training from the start" in caplog.text


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_pretrained_weights_with_a_pickle_payload_are_refused(crafted, suffix):
    path, marker = crafted
    weights = path.rename(path.with_suffix(suffix))
    key = "train.model.transfer.pretrained"
    with pytest.raises(UserError, match=rf"{key}: {weights}: not a readable state dict \(") as info:
        read_state_dict(str(weights))
    assert not marker.exists()
    # not torch's advice (in terminal colours) on how to load it the unsafe way
    assert "trust the source" not in str(info.value) and "\x1b" not in str(info.value)
    if suffix != ".safetensors":
        assert "it holds Python objects besides tensors" in str(info.value)


def test_pretrained_weights_of_random_bytes_are_named_broken_not_pickled_objects(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(
        UserError, match=r"not a readable state dict \((?!it holds).*broken"
    ) as info:
        read_state_dict(str(path))
    assert "weights_only" not in str(info.value)
