"""Multi-layer perceptron on flattened pixels: the baseline every tutorial starts from.

Tables use the same spec (see :mod:`torchstages.models.tabular`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt
from torch import nn

from torchstages.errors import UserError
from torchstages.models.transfer import SpecWithTransfer

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


class MLPSpec(SpecWithTransfer):
    name: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field([256, 128], description="hidden layer widths")
    activation: Literal["relu", "leaky_relu", "gelu", "tanh"] = Field(
        "relu", description="activation after each hidden layer"
    )
    batch_norm: bool = Field(
        False, description="BatchNorm1d between each hidden layer and its activation"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each hidden layer")
    embedding_dims: dict[str, Annotated[int, Field(ge=1)]] = Field(
        {}, description="tables: embedding width per categorical column; unset: min(50, 1.6 n^0.56)"
    )
    ensemble: int = Field(
        0,
        ge=0,
        description="tables: k MLPs trained at once as one batched network sharing its weights "
        "(TabM-mini), their predictions averaged; 0 = auto (tables: 8, else 1)",
    )
    linear_weight: Literal["auto"] | Annotated[float, Field(ge=0, le=1)] = Field(
        "auto",
        description="tables: weight of a linear model (LogisticRegression / Ridge with "
        "scikit-learn's default L2, fitted on the train rows before training) in the average "
        "with the network's prediction; 0 = the network alone; auto = 0.25 for tables, else 0",
    )


TABLE_ONLY = ("embedding_dims", "ensemble", "linear_weight")


def check_single(spec: MLPSpec, kind: str) -> None:
    """An ensemble of MLPs, one averaged with a linear model or with category embeddings is a
    table model: elsewhere ``ensemble`` must stay 0 (auto) or 1, ``linear_weight`` auto or 0
    and ``embedding_dims`` empty."""
    if spec.ensemble > 1:
        raise UserError(f"train.model.ensemble: {spec.ensemble} is for tables; {kind} take 0 or 1")
    if spec.embedding_dims:
        raise UserError(
            f"train.model.embedding_dims: sizes of a table's category embeddings; {kind} have no "
            "categorical columns"
        )
    if spec.linear_weight not in ("auto", 0):
        raise UserError(
            f"train.model.linear_weight: {spec.linear_weight} is for tables; {kind} take auto or 0"
        )


def hidden_layers(spec: MLPSpec, width: int) -> tuple[list[nn.Module], int]:
    """[Linear -> (BatchNorm1d) -> activation -> Dropout] per hidden width, and the last width."""
    layers: list[nn.Module] = []
    for hidden in spec.hidden:
        # BatchNorm's shift makes the Linear bias redundant
        layers.append(nn.Linear(width, hidden, bias=not spec.batch_norm))
        if spec.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers += [ACTIVATIONS[spec.activation](), nn.Dropout(spec.dropout)]
        width = hidden
    return layers, width


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> Dropout] per hidden width -> Linear head."""

    def __init__(
        self, spec: MLPSpec, in_channels: int, image_size: tuple[int, int], num_classes: int
    ) -> None:
        super().__init__()
        check_single(spec, "images")
        hidden, width = hidden_layers(spec, in_channels * image_size[0] * image_size[1])
        layers: list[nn.Module] = [nn.Flatten(), *hidden, nn.Linear(width, num_classes)]
        self.net = nn.Sequential(*layers)
        self.head_name = f"net.{len(layers) - 1}"  # see models.transfer: the final Linear

    def forward(self, x):  # (N, C, H, W) -> (N, classes) logits
        return self.net(x)
