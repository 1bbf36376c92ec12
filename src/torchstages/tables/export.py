"""A table model as the generic export (deploy/export.py) takes it: raw numeric columns
(NaN = missing) and category indices in, logits (or the regressed value in the target's units)
out; checked on the whole test split.

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

from torchstages import paths
from torchstages.data.store import load_table_split
from torchstages.deploy.card import CardText, classifier_uses
from torchstages.deploy.exportable import CLASS_OUTPUT, Exportable, KindExport
from torchstages.deploy.parity import ClassParity, ValueParity
from torchstages.tables.evaluate import table_outputs

__all__ = ["TableModel", "table_export", "table_exportable"]

_PARITY_BATCH = 1024  # rows per PyTorch batch for the reference outputs


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
    classification = card["task"] == "classification"
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
        classes=list(card["classes"]) if classification else None,
        output=CLASS_OUTPUT if classification else f"float32 (N, 1) predicted {card['target']}",
    )


def _named(card: dict[str, Any], numeric: np.ndarray, categorical: np.ndarray) -> dict:
    """A split as the model's named inputs (only those the table has)."""
    arrays = {"numeric": np.asarray(numeric), "categorical": np.asarray(categorical)}
    return {n: arrays[n] for n in input_names(card)}


def table_export(model: nn.Module, card: dict[str, Any], processed: Path) -> KindExport:
    """A table model for the generic export: its test split as named raw inputs; classification
    compares logits, regression values in the target's units; dynamic int8 (linear layers)."""
    numeric, categorical, labels = (np.asarray(a) for a in load_table_split(processed, "test"))
    reference = table_outputs(model, numeric, categorical, _PARITY_BATCH, torch.device("cpu"))
    exp = table_exportable(model, card)
    schema = card["schema"]
    columns = [c["name"] for c in schema["numeric"]] + [c["name"] for c in schema["categorical"]]
    regression = card["task"] == "regression"
    data = [
        f"- kind: table; task: {card['task']} of `{card['target']}`"
        + ("" if regression else f" into {len(card['classes'])} classes"),
        *([] if regression else [f"- classes, in output order: {_ticks(card['classes'])}"]),
        f"- columns ({len(columns)}): {_ticks(columns)}",
    ]
    if regression:
        mean, std = card["target_mean"], card["target_std"]
        parity: ClassParity | ValueParity = ValueParity(np.full(len(labels), std))
        reference = reference.double().numpy() * std + mean
        truth = np.asarray(labels, dtype=np.float64)[:, None]
        data.append(f"- `{card['target']}` on the train split: mean {mean:.6g}, std {std:.6g}")
        uses = _regression_uses(card["target"])
    else:
        parity, reference, truth = ClassParity(), reference.numpy(), labels
        uses = classifier_uses("rows like the training rows")
    return KindExport(
        exportable=exp,
        test=_named(card, numeric, categorical),
        reference=reference,
        truth=truth,
        parity=parity,
        card=CardText(
            title=f"{card['architecture'].get('name', 'model')} {card['task']} (table)",
            data=data,
            details=[
                f"Output `{exp.output_name}`: {exp.output.removeprefix('logits: ')}. The schema "
                "in every file's metadata holds the columns in input order, each numeric "
                "column's train median (filled in for a missing value) and each categorical "
                "column's vocabulary (a category's index is its position + 2); `torchstages "
                "predict` and `serve` apply it to raw rows.",
            ],
            uses=uses,
            cli=[f"torchstages predict new_rows.csv --model {paths.ONNX_MODEL} --output out.csv"],
            keys=["schema", "task", "target", *([] if regression else ["classes"])],
            unit="rows",
        ),
        train=lambda: _named(card, *load_table_split(processed, "train")[:2]),
    )


def _regression_uses(target: str) -> list[str]:
    return [
        f"- Predicts `{target}` for rows like the training rows, in its units. Far outside the "
        "training values of a column the network extrapolates, and nothing says so: compare "
        "new rows with each column's train mean and standard deviation (the `schema` "
        "metadata) first.",
        "- One value per row, no interval: the test stage's RMSE and its bootstrap interval "
        "(`metrics/test.json`) say how far off it typically is.",
        "- int8 trades a little accuracy (the RMSE change above) for a smaller file and faster "
        "CPU inference.",
    ]


def _ticks(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
