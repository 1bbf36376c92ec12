"""Markdown tables of every params section, generated from the models (the README embeds them)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from torchstages.models.cnn import CNNSpec
from torchstages.models.mlp import MLPSpec
from torchstages.models.recurrent import RecurrentSpec
from torchstages.models.series import TCNSpec
from torchstages.models.tabular import FTTransformerSpec
from torchstages.models.text import TextCNNSpec, TextTransformerSpec
from torchstages.models.torchvision import TorchvisionSpec
from torchstages.models.transfer import TransferSpec
from torchstages.params.base import show_value
from torchstages.params.build_dataset import (
    BuildDatasetParams,
    SeriesBuildParams,
    TableBuildParams,
    TextBuildParams,
)
from torchstages.params.evaluate import EvaluateParams
from torchstages.params.export import ExportParams
from torchstages.params.split import (
    SeriesSplitParams,
    SplitParams,
    TableSplitParams,
    TextSplitParams,
)
from torchstages.params.train import (
    AugmentParams,
    EarlyStoppingParams,
    ScheduleParams,
    TrainParams,
)

__all__ = ["SECTIONS", "params_reference"]

# (heading, key prefix, model); validate and test share one model
SECTIONS: list[tuple[str, str, type[BaseModel]]] = [
    ("split", "split", SplitParams),
    ("split.table", "split.table", TableSplitParams),
    ("split.text", "split.text", TextSplitParams),
    ("split.series", "split.series", SeriesSplitParams),
    ("build_dataset", "build_dataset", BuildDatasetParams),
    ("build_dataset.table", "build_dataset.table", TableBuildParams),
    ("build_dataset.text", "build_dataset.text", TextBuildParams),
    ("build_dataset.series", "build_dataset.series", SeriesBuildParams),
    ("train", "train", TrainParams),
    ("train.schedule", "train.schedule", ScheduleParams),
    ("train.early_stopping", "train.early_stopping", EarlyStoppingParams),
    ("train.augment", "train.augment", AugmentParams),
    ("train.model: name: cnn", "train.model", CNNSpec),
    ("train.model: name: mlp", "train.model", MLPSpec),
    ("train.model: name: torchvision", "train.model", TorchvisionSpec),
    ("train.model: name: ft_transformer", "train.model", FTTransformerSpec),
    ("train.model: name: textcnn", "train.model", TextCNNSpec),
    ("train.model: name: transformer", "train.model", TextTransformerSpec),
    ("train.model: name: lstm | gru (texts and series)", "train.model", RecurrentSpec),
    ("train.model: name: tcn", "train.model", TCNSpec),
    ("train.model.transfer", "train.model.transfer", TransferSpec),
    ("validate, test", "validate / test", EvaluateParams),
    ("export", "export", ExportParams),
]


def params_reference() -> str:
    out = []
    for heading, prefix, model in SECTIONS:
        out += [f"#### `{heading}`", "", "| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            if _is_nested(field.annotation):
                continue
            default = field.get_default(call_default_factory=True)
            out.append(
                f"| `{prefix}.{name}` | `{show_value(default)}` | {field.description or ''} |"
            )
        out.append("")
    return "\n".join(out)


def _is_nested(annotation: Any) -> bool:
    args = typing.get_args(annotation) or (annotation,)
    return any(isinstance(a, type) and issubclass(a, BaseModel) for a in args) or (
        typing.get_origin(annotation) is typing.Annotated
    )
