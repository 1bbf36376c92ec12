"""Multi-layer perceptron on flattened pixels: the baseline every tutorial starts from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from torchstages.params.base import Section


class MLPSpec(Section):
    name: Literal["mlp"] = "mlp"
    hidden: list[int] = Field([256, 128], description="hidden layer widths")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each hidden layer")


class MLP(nn.Module):
    def __init__(
        self, spec: MLPSpec, in_channels: int, image_size: tuple[int, int], num_classes: int
    ) -> None:
        super().__init__()
        width = in_channels * image_size[0] * image_size[1]
        layers: list[nn.Module] = [nn.Flatten()]
        for hidden in spec.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(spec.dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (N, C, H, W) -> (N, classes) logits
        return self.net(x)
