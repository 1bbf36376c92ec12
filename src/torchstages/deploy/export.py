"""The export stage: ONNX with preprocessing inside and in the metadata, checked against PyTorch."""

from __future__ import annotations

import json
import logging
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
from torchstages.io import atomic_path, write_json
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams

__all__ = ["PixelModel", "export_onnx", "check_parity", "export_and_verify"]

log = logging.getLogger(__name__)
INPUT_DOC = "float32 (N, C, H, W) pixel values 0..255 after the stored preprocessing; RGB order"


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


def export_onnx(model: nn.Module, card: dict[str, Any], target: Path, opset: int) -> None:
    """Export with a dynamic batch dimension; classes and preprocessing go into the metadata."""
    import onnx

    prep = Preprocessing.from_dict(card["preprocessing"])
    wrapped = PixelModel(model, prep).eval()
    example = torch.zeros(2, prep.channels, *prep.image_size)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        wrapped,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    proto = program.model_proto
    metadata = {
        "classes": json.dumps(card["classes"]),
        "preprocessing": json.dumps(prep.to_dict(), sort_keys=True),
        "input": INPUT_DOC,
        "output": "float32 (N, classes) logits; softmax gives probabilities",
    }
    _strip_debug_metadata(proto)
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(target) as tmp:
        onnx.save_model(proto, str(tmp))


def _strip_debug_metadata(proto: Any) -> None:
    """Drop the exporter's per-node debug records (stack traces with absolute paths and line
    numbers, FX node text): they would make the file differ between checkouts and comment edits."""
    for graph_nodes in [proto.graph.node, *(f.node for f in proto.functions)]:
        for node in graph_nodes:
            del node.metadata_props[:]
            node.doc_string = ""


def check_parity(
    onnx_path: Path,
    model: nn.Module,
    prep: Preprocessing,
    images: np.ndarray,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Run ONNX Runtime and PyTorch on the same images: max |logit difference|, prediction agreement."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = np.concatenate(
        [
            session.run(None, {"pixels": images[i : i + batch_size].astype(np.float32)})[0]
            for i in range(0, len(images), batch_size)
        ]
    )
    device = torch.device("cpu")
    torch_logits = predict_logits(
        model, images, Normalizer(prep.mean, prep.std, device), batch_size, device
    ).numpy()
    return {
        "max_abs_logit_diff": float(np.abs(onnx_logits - torch_logits).max()),
        "prediction_agreement": float((onnx_logits.argmax(1) == torch_logits.argmax(1)).mean()),
        "samples": len(images),
    }


def export_and_verify(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    onnx_path: Path,
    metrics_path: Path,
) -> dict[str, float]:
    """Export, check on the whole test split, write metrics; fail loudly when they disagree."""
    model, card = load_model(weights, card_path)
    export_onnx(model, card, onnx_path, params.opset)
    images, _ = load_split(processed, "test")
    parity = check_parity(onnx_path, model, Preprocessing.from_dict(card["preprocessing"]), images)
    # the exact difference varies in the last bits between kernels; round so the file is stable
    parity["max_abs_logit_diff"] = float(f"{parity['max_abs_logit_diff']:.1e}")
    write_json(metrics_path, parity)
    log.info(
        "export: %s  max |logit diff| %.1e  agreement %.4f on %d test images",
        onnx_path,
        parity["max_abs_logit_diff"],
        parity["prediction_agreement"],
        parity["samples"],
    )
    if (
        parity["max_abs_logit_diff"] > params.max_abs_diff
        or parity["prediction_agreement"] < params.min_agreement
    ):
        raise UserError(
            f"{onnx_path}: ONNX disagrees with PyTorch (max |diff| "
            f"{parity['max_abs_logit_diff']:.1e} > export.max_abs_diff {params.max_abs_diff} or "
            f"agreement {parity['prediction_agreement']:.4f} < export.min_agreement)"
        )
    return parity
