"""Export a table model to ONNX: raw numeric columns (NaN = missing) and category indices in,
logits (or the regressed value in the target's units) out; checked on the whole test split.

Category strings are mapped to indices outside the graph, by :func:`torchstages.tables.schema.encode`
with the vocabulary stored in the ONNX metadata (the documented two-step): ONNX has no portable
string lookup that every runtime supports. Imputation, missing indicators and scaling are inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.store import load_table_split
from torchstages.deploy.exportable import Exportable
from torchstages.io import atomic_dir, atomic_path
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams
from torchstages.tables.evaluate import table_outputs

__all__ = [
    "TableModel",
    "export_and_verify_table",
    "export_table_onnx",
    "table_exportable",
]


class TableModel(nn.Module):
    """The trained network as deployed: raw inputs in; regression outputs un-standardised.

    Only the inputs the table has are graph inputs (a table without categorical columns has no
    ``categorical`` input): ONNX handles zero-width tensors poorly. :func:`table_model` picks the
    subclass whose ``forward`` takes exactly those.
    """

    def __init__(self, model: nn.Module, card: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        regression = card["task"] == "regression"
        self.register_buffer("scale", torch.tensor(card["target_std"] if regression else 1.0))
        self.register_buffer("shift", torch.tensor(card["target_mean"] if regression else 0.0))
        self.regression = regression

    def run(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = self.model(numeric, categorical)
        return out * self.scale + self.shift if self.regression else out


class _Both(TableModel):
    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.run(numeric, categorical)


class _NumericOnly(TableModel):
    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        # a zero-width slice keeps the batch dimension symbolic in the export
        return self.run(numeric, numeric[:, :0].long())


class _CategoricalOnly(TableModel):
    def forward(self, categorical: torch.Tensor) -> torch.Tensor:
        return self.run(categorical[:, :0].float(), categorical)


def input_names(card: dict[str, Any]) -> list[str]:
    schema = card["schema"]
    present = (("numeric", schema["numeric"]), ("categorical", schema["categorical"]))
    return [name for name, cols in present if cols]


def table_model(model: nn.Module, card: dict[str, Any]) -> TableModel:
    names = input_names(card)
    cls = {2: _Both}.get(len(names)) or (_NumericOnly if names == ["numeric"] else _CategoricalOnly)
    return cls(model, card).eval()


def table_exportable(model: nn.Module, card: dict[str, Any]) -> Exportable:
    """The deploy side's view of a table model (see deploy/exportable.py)."""
    schema = card["schema"]
    widths = {"numeric": len(schema["numeric"]), "categorical": len(schema["categorical"])}
    dtypes = {"numeric": torch.float32, "categorical": torch.long}
    docs = {
        "numeric": "raw values of the schema's numeric columns, NaN = missing",
        "categorical": "indices from the schema's vocabularies (0 missing, 1 other/unseen)",
    }
    names = input_names(card)
    metadata = {"schema": json.dumps(schema, sort_keys=True), "task": card["task"]}
    metadata["target"] = card["target"]
    return Exportable(
        module=table_model(model, card),
        example={n: torch.zeros(2, widths[n], dtype=dtypes[n]) for n in names},
        inputs=[
            {
                "name": n,
                "dtype": "float32" if n == "numeric" else "int64",
                "shape": [None, widths[n]],
                "doc": docs[n],
            }
            for n in names
        ],
        metadata=metadata,
    )


def export_table_onnx(model: nn.Module, card: dict[str, Any], target: Path, opset: int) -> None:
    import onnx

    from torchstages.deploy.export import onnx_proto

    exp = table_exportable(model, card)
    metadata = {
        **exp.metadata,
        "kind": "table",
        "format": "onnx",
        "inputs": json.dumps(exp.inputs, sort_keys=True),
        "output": "float32 (N, classes) logits; softmax gives probabilities"
        if card["task"] == "classification"
        else f"float32 (N, 1) predicted {card['target']}",
    }
    if "classes" in card:
        metadata["classes"] = json.dumps(card["classes"])
    with atomic_path(target) as tmp:
        onnx.save_model(onnx_proto(exp, metadata, opset), str(tmp))


def onnx_outputs(session: Any, card: dict[str, Any], numeric: np.ndarray, categorical: np.ndarray):
    feeds = {"numeric": numeric.astype(np.float32), "categorical": categorical.astype(np.int64)}
    return session.run(None, {n: feeds[n] for n in input_names(card)})[0]


def export_and_verify_table(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    export_dir: Path,
    metrics_path: Path,
) -> dict[str, Any]:
    """Export ONNX into ``export_dir``, run ONNX Runtime and PyTorch on the whole test split,
    compare, write metrics (the layout images use: ``formats.onnx``). A model that disagrees
    leaves the previous export folder as it was."""
    import onnxruntime as ort

    from torchstages.deploy.export import onnx_only, record_onnx_parity

    onnx_only(params, "a table model")
    model, card = load_model(weights, card_path)
    numeric, categorical, _ = (np.asarray(a) for a in load_table_split(processed, "test"))
    with atomic_dir(export_dir) as staging:
        export_table_onnx(model, card, staging / "model.onnx", params.opset)
        session = ort.InferenceSession(
            str(staging / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        ours = onnx_outputs(session, card, numeric, categorical)
        parity = _parity(ours, model, card, numeric, categorical, params.max_abs_diff)
        record_onnx_parity(parity, params, export_dir, metrics_path, len(numeric), "rows")
    return parity


def _parity(
    ours: np.ndarray,
    model: nn.Module,
    card: dict[str, Any],
    numeric: np.ndarray,
    categorical: np.ndarray,
    tolerance: float,
) -> dict[str, float]:
    """Max difference to eager PyTorch and the share of rows that agree: the same class, or for
    regression a value within ``tolerance`` standard deviations of the target."""
    torch_out = table_outputs(model, numeric, categorical, 1024, torch.device("cpu")).numpy()
    if card["task"] == "regression":
        torch_out = torch_out * card["target_std"] + card["target_mean"]
        # relative to the target's scale: a price in thousands differs in more absolute digits
        relative = np.abs(ours - torch_out)[:, 0] / card["target_std"]
        diff, agreement = float(relative.max()), float((relative <= tolerance).mean())
    else:
        diff = float(np.abs(ours - torch_out).max())
        agreement = float((ours.argmax(1) == torch_out.argmax(1)).mean())
    return {"max_abs_logit_diff": float(f"{diff:.1e}"), "prediction_agreement": agreement}
