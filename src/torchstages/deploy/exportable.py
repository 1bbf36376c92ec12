"""The export side of a data kind: what the generic export (deploy/export.py) needs from it.

Everything else in ``deploy/`` (the format loop, parity, the model card, the runtimes, predict,
serve) works on *named* inputs and never asks which kind it holds. A kind supplies one
:class:`KindExport` (images: :func:`image_export` here; tables, texts and series in their own
``export.py``) and a reader in ``deploy/readers.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from torchstages import paths
from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.store import load_split
from torchstages.deploy.card import CardText, classifier_uses
from torchstages.deploy.parity import ClassParity, ValueParity
from torchstages.evaluation.inference import predict_logits

__all__ = [
    "CLASS_OUTPUT",
    "Exportable",
    "KindExport",
    "PixelModel",
    "exportable",
    "image_export",
    "reference_logits",
    "split_inputs",
]

CLASS_OUTPUT = "logits: float32 (N, classes); softmax gives probabilities"


@dataclass(frozen=True)
class Exportable:
    """A model ready for export: raw inputs in (preprocessing inside the graph), outputs in the
    deployed units out (logits, or values in the target's units)."""

    module: nn.Module
    example: dict[str, torch.Tensor]  # a batch of 2 per input name, in forward-argument order
    inputs: list[dict[str, Any]]  # per input: name, dtype, shape (None = dynamic batch), doc
    metadata: dict[str, str]  # what the kind's reader needs besides the inputs (preprocessing)
    classes: list[str] | None = None  # a classifier's outputs in logit order; None: values
    output: str = CLASS_OUTPUT  # what the output is, for the metadata and the card

    @property
    def output_name(self) -> str:
        """The ONNX output's name: a classifier's scores, or values in the target's units."""
        return "logits" if self.classes is not None else "prediction"


@dataclass(frozen=True)
class KindExport:
    """A trained model of one data kind, ready for the generic export and its check."""

    exportable: Exportable
    test: dict[str, np.ndarray]  # the whole test split as the exported model's named inputs
    reference: np.ndarray  # eager PyTorch on it, in the deployed units, as evaluation computes it
    truth: np.ndarray  # labels (N,), or true values (N, outputs) in the target's units
    parity: ClassParity | ValueParity
    card: CardText
    # the train split as named inputs, for static int8's calibration (read only when needed)
    train: Callable[[], dict[str, np.ndarray]] = field(repr=False)
    int8: Literal["static", "dynamic"] = "dynamic"  # what export.int8_quantization auto means


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


def exportable(model: nn.Module, card: dict[str, Any]) -> Exportable:
    """Wrap the trained ``model`` described by ``card`` for export (kind ``images``: pixels)."""
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
        metadata={"preprocessing": json.dumps(prep.to_dict(), sort_keys=True)},
        classes=list(card["classes"]),
    )


def split_inputs(
    processed: Path, card: dict[str, Any], split: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A whole split as the exported model's named inputs, and its labels.

    Kept in the stored dtype (uint8 pixels, memory-mapped): runners cast batch by batch, so a
    large split is never held as float32.
    """
    images, labels = load_split(processed, split)
    return {"pixels": images}, np.asarray(labels)


def reference_logits(
    model: nn.Module, card: dict[str, Any], inputs: dict[str, np.ndarray], batch_size: int = 512
) -> np.ndarray:
    """Eager PyTorch logits the way the test stage computes them (its normaliser, not the
    wrapper's): parity then also proves the wrapper preprocesses as training did."""
    prep = Preprocessing.from_dict(card["preprocessing"])
    device = torch.device("cpu")
    normalize = Normalizer(prep.mean, prep.std, device)
    return predict_logits(model, inputs["pixels"], normalize, batch_size, device).numpy()


def image_export(model: nn.Module, card: dict[str, Any], processed: Path) -> KindExport:
    """An image classifier: pixels in, logits out; static int8 (its convolutions run in int8
    kernels only with calibrated scales)."""
    test, labels = split_inputs(processed, card, "test")
    exp = exportable(model, card)
    classes = card["classes"]
    return KindExport(
        exportable=exp,
        test=test,
        reference=reference_logits(model, card, test),
        truth=labels,
        parity=ClassParity(),
        card=CardText(
            title=f"{card['architecture'].get('name', 'model')} classifier (images)",
            data=[
                f"- kind: images; task: classification into {len(classes)} classes",
                f"- classes, in output order: {', '.join(f'`{c}`' for c in classes)}",
            ],
            details=[
                f"Output `logits`: {exp.output.split(': ', 1)[1]}. Preprocessing (stored in every "
                "file's metadata and applied by `torchstages predict` and `serve`):",
                "",
                *_key_values(card["preprocessing"]),
            ],
            uses=classifier_uses("inputs that look like the training data"),
            cli=[f"torchstages predict path/to/inputs --model {paths.ONNX_MODEL} --top-k 3"],
            keys=["classes", "preprocessing"],
        ),
        train=lambda: split_inputs(processed, card, "train")[0],
        int8="static",
    )


def _key_values(values: dict[str, Any]) -> list[str]:
    return [f"- {key}: {json.dumps(value)}" for key, value in sorted(values.items())]
