"""A small configurable CNN: conv-BN-ReLU blocks, max-pool between them, global pooling at the end."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt
from torch import nn

from torchstages.models.transfer import SpecWithTransfer


class CNNSpec(SpecWithTransfer):
    name: Literal["cnn"] = "cnn"
    channels: list[PositiveInt] = Field(
        [32, 64, 128], min_length=1, description="output channels per block"
    )
    convs_per_block: int = Field(2, ge=1, description="3x3 convolutions in each block")
    batch_norm: bool = Field(True, description="BatchNorm after every convolution")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier")


class CNN(nn.Module):
    """Blocks halve the resolution (except the last); global average pooling makes any size work."""

    def __init__(
        self, spec: CNNSpec, in_channels: int, image_size: tuple[int, int], num_classes: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for i, out in enumerate(spec.channels):
            for _ in range(spec.convs_per_block):
                layers.append(nn.Conv2d(width, out, 3, padding=1, bias=not spec.batch_norm))
                if spec.batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                width = out
            if i < len(spec.channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(spec.dropout),
            nn.Linear(width, num_classes),
        )
        self.head_name = "head"  # see models.transfer: only its Linear has parameters

    def forward(self, x):  # (N, C, H, W) -> (N, classes) logits
        return self.head(self.features(x))
