"""The export side of a data kind, in one place: the deployable module and the test inputs.

Everything else in ``deploy/`` (the format loop, parity, the model card, the runtimes, predict,
serve) works on *named* inputs and never asks which kind it holds. A new kind (tables: numeric +
categorical) adds one branch to :func:`exportable`, :func:`split_inputs` and
:func:`reference_logits`, and a reader in ``deploy/readers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.store import load_split
from torchstages.errors import UserError
from torchstages.evaluation.inference import predict_logits

__all__ = ["Exportable", "PixelModel", "exportable", "split_inputs", "reference_logits", "kind_of"]

KINDS = ("images",)


@dataclass(frozen=True)
class Exportable:
    """A model ready for export: raw inputs in (preprocessing inside the graph), logits out."""

    module: nn.Module
    example: dict[str, torch.Tensor]  # a batch of 2 per input name, in forward-argument order
    inputs: list[dict[str, Any]]  # per input: name, dtype, shape (None = dynamic batch), doc
    metadata: dict[str, str]  # what the kind's reader needs besides the inputs (preprocessing)


class PixelModel(nn.Module):
    """The trained network behind its normalisation: raw pixels in, logits out.

    Baking mean/std into the graph means a deployed model cannot be fed unnormalised input.
    """

    def __init__(self, model: nn.Module, prep: Preprocessing) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) 0..255 -> (N, classes)
        return self.model((pixels / 255.0 - self.mean) / self.std)


def kind_of(card: dict[str, Any]) -> str:
    """The data kind a model card (or model metadata) describes; cards before kinds are images."""
    kind = card.get("kind", "images")
    if kind not in KINDS:
        raise UserError(f"model card: data kind {kind!r} cannot be exported (known: {KINDS})")
    return kind


def exportable(model: nn.Module, card: dict[str, Any]) -> Exportable:
    """Wrap the trained ``model`` described by ``card`` for export (kind ``images``: pixels)."""
    kind_of(card)
    prep = Preprocessing.from_dict(card["preprocessing"])
    height, width = prep.image_size
    return Exportable(
        module=PixelModel(model, prep).eval(),
        example={"pixels": torch.zeros(2, prep.channels, height, width)},
        inputs=[
            {
                "name": "pixels",
                "dtype": "float32",
                "shape": [None, prep.channels, height, width],
                "doc": "pixel values 0..255 after the stored resize (channels in RGB order)",
            }
        ],
        metadata={"preprocessing": _json(prep.to_dict())},
    )


def split_inputs(
    processed: Path, card: dict[str, Any], split: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A whole split as the exported model's named inputs, and its labels.

    Kept in the stored dtype (uint8 pixels, memory-mapped): runners cast batch by batch, so a
    large split is never held as float32.
    """
    kind_of(card)
    images, labels = load_split(processed, split)
    return {"pixels": images}, np.asarray(labels)


def reference_logits(
    model: nn.Module, card: dict[str, Any], inputs: dict[str, np.ndarray], batch_size: int = 512
) -> np.ndarray:
    """Eager PyTorch logits the way the test stage computes them (its normaliser, not the
    wrapper's): parity then also proves the wrapper preprocesses as training did."""
    kind_of(card)
    prep = Preprocessing.from_dict(card["preprocessing"])
    device = torch.device("cpu")
    normalize = Normalizer(prep.mean, prep.std, device)
    return predict_logits(model, inputs["pixels"], normalize, batch_size, device).numpy()


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True)
