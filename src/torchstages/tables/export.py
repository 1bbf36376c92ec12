"""Export a table model to ONNX: raw numeric columns (NaN = missing) and category indices in,
logits (or the regressed value in the target's units) out; checked on the whole test split.

Category strings are mapped to indices outside the graph, by :func:`torchstages.tables.schema.encode`
with the vocabulary stored in the ONNX metadata (the documented two-step): ONNX has no portable
string lookup that every runtime supports. Imputation, missing indicators and scaling are inside.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.store import load_table_split
from torchstages.errors import UserError
from torchstages.io import atomic_path, write_json
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams
from torchstages.tables.evaluate import table_outputs

__all__ = ["TableModel", "export_table_onnx", "export_and_verify_table"]

log = logging.getLogger(__name__)


class TableModel(nn.Module):
    """The trained network as deployed: raw inputs in; regression outputs un-standardised.

    Only the inputs the table has are graph inputs (a table without categorical columns has no
    ``categorical`` input): ONNX handles zero-width tensors poorly.
    """

    def __init__(self, model: nn.Module, card: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.n_numeric = len(card["schema"]["numeric"])
        self.n_categorical = len(card["schema"]["categorical"])
        regression = card["task"] == "regression"
        self.register_buffer("scale", torch.tensor(card["target_std"] if regression else 1.0))
        self.register_buffer("shift", torch.tensor(card["target_mean"] if regression else 0.0))
        self.regression = regression

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        numeric = next(it) if self.n_numeric else None
        categorical = next(it) if self.n_categorical else None
        # zero-width slices of the other input keep the batch dimension symbolic in the export
        if numeric is None:
            numeric = categorical[:, :0].float()
        if categorical is None:
            categorical = numeric[:, :0].long()
        out = self.model(numeric, categorical)
        return out * self.scale + self.shift if self.regression else out


def input_names(card: dict[str, Any]) -> list[str]:
    schema = card["schema"]
    return [
        n
        for n, cols in (("numeric", schema["numeric"]), ("categorical", schema["categorical"]))
        if cols
    ]


def export_table_onnx(model: nn.Module, card: dict[str, Any], target: Path, opset: int) -> None:
    import onnx

    from torchstages.deploy.export import _strip_debug_metadata

    wrapped = TableModel(model, card).eval()
    names = input_names(card)
    example = {
        "numeric": torch.zeros(2, len(card["schema"]["numeric"])),
        "categorical": torch.zeros(2, len(card["schema"]["categorical"]), dtype=torch.long),
    }
    batch = torch.export.Dim("batch", min=1)
    output = "prediction" if card["task"] == "regression" else "logits"
    program = torch.onnx.export(
        wrapped,
        tuple(example[n] for n in names),
        dynamo=True,
        opset_version=opset,
        input_names=names,
        output_names=[output],
        dynamic_shapes=(tuple({0: batch} for _ in names),),  # forward takes *inputs
        verbose=False,
    )
    proto = program.model_proto
    metadata = {
        "kind": "table",
        "task": card["task"],
        "target": card["target"],
        "schema": json.dumps(card["schema"], sort_keys=True),
        "input": "numeric: float32 (N, F) raw values, NaN = missing; categorical: int64 (N, C) "
        "indices from the schema's vocabularies (0 missing, 1 other/unseen)",
        "output": "float32 (N, classes) logits; softmax gives probabilities"
        if output == "logits"
        else f"float32 (N, 1) predicted {card['target']}",
    }
    if "classes" in card:
        metadata["classes"] = json.dumps(card["classes"])
    _strip_debug_metadata(proto)
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(target) as tmp:
        onnx.save_model(proto, str(tmp))


def onnx_outputs(session: Any, card: dict[str, Any], numeric: np.ndarray, categorical: np.ndarray):
    feeds = {"numeric": numeric.astype(np.float32), "categorical": categorical.astype(np.int64)}
    return session.run(None, {n: feeds[n] for n in input_names(card)})[0]


def export_and_verify_table(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    onnx_path: Path,
    metrics_path: Path,
) -> dict[str, float]:
    """Export, run ONNX Runtime and PyTorch on the whole test split, compare, write metrics."""
    import onnxruntime as ort

    model, card = load_model(weights, card_path)
    export_table_onnx(model, card, onnx_path, params.opset)
    numeric, categorical, _ = load_table_split(processed, "test")
    numeric, categorical = np.asarray(numeric), np.asarray(categorical)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = onnx_outputs(session, card, numeric, categorical)
    torch_out = table_outputs(model, numeric, categorical, 1024, torch.device("cpu")).numpy()
    if card["task"] == "regression":
        torch_out = torch_out * card["target_std"] + card["target_mean"]
        # relative to the target's scale: a price in thousands differs in more absolute digits
        relative = np.abs(ours - torch_out)[:, 0] / card["target_std"]
        diff = float(relative.max())
        agreement = float((relative <= params.max_abs_diff).mean())
    else:
        diff = float(np.abs(ours - torch_out).max())
        agreement = float((ours.argmax(1) == torch_out.argmax(1)).mean())
    parity = {
        "max_abs_logit_diff": float(f"{diff:.1e}"),
        "prediction_agreement": agreement,
        "samples": len(numeric),
    }
    write_json(metrics_path, parity)
    log.info(
        "export: %s  max |diff| %.1e  agreement %.4f on %d test rows",
        onnx_path,
        parity["max_abs_logit_diff"],
        agreement,
        len(numeric),
    )
    if parity["max_abs_logit_diff"] > params.max_abs_diff or agreement < params.min_agreement:
        raise UserError(
            f"{onnx_path}: ONNX disagrees with PyTorch (max |diff| {diff:.1e} > "
            f"export.max_abs_diff {params.max_abs_diff} or agreement {agreement:.4f} < "
            "export.min_agreement)"
        )
    return parity
