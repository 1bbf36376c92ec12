"""torchvision architectures by name, with the head sized for our classes and the stem for our channels.

torchvision is imported inside :func:`build_torchvision` only, so stages and commands that never
build one of these models do not pay for the import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from torchstages.models.transfer import SpecWithTransfer, adapt_in_channels

__all__ = ["TorchvisionSpec", "build_torchvision", "ARCHS"]

Arch = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
]
ARCHS: tuple[str, ...] = Arch.__args__  # type: ignore[attr-defined]

# per family: (first conv = the stem, final classifier layer = the head)
_LAYOUT = {
    "resnet": ("conv1", "fc"),
    "mobilenet_v3": ("features.0.0", "classifier.3"),
    "efficientnet": ("features.0.0", "classifier.1"),
}


class TorchvisionSpec(SpecWithTransfer):
    name: Literal["torchvision"] = "torchvision"
    arch: Arch = Field(
        "resnet18",
        description="torchvision architecture; the head is sized for the classes, the first "
        "conv for the channels; global pooling takes any image size from 8x8",
    )

    def weights_arch(self) -> str | None:
        return self.arch


def build_torchvision(
    spec: TorchvisionSpec, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> nn.Module:
    """The architecture with random weights (``transfer.pretrained`` is applied by build_model)."""
    from torchvision.models import get_model

    # num_classes here builds the head at our size; pretrained loading skips it by name
    model = get_model(spec.arch, weights=None, num_classes=num_classes)
    family = next(f for f in _LAYOUT if spec.arch.startswith(f))
    stem_name, head_name = _LAYOUT[family]
    if in_channels != 3:
        _adapt_stem(model, stem_name, in_channels)
    model.head_name = head_name  # see models.transfer
    return model


def _adapt_stem(model: nn.Module, name: str, in_channels: int) -> None:
    """Swap the first conv for one taking ``in_channels``, initialised from its RGB kernels.

    Summing the random RGB kernels keeps the architecture's init scale; pretrained weights get
    the same conversion when they are loaded (models.transfer.adapt_in_channels).
    """
    old = model.get_submodule(name)
    assert isinstance(old, nn.Conv2d)
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        groups=old.groups,
        bias=old.bias is not None,
    )
    new.weight.data.copy_(adapt_in_channels(old.weight.data, in_channels))
    if old.bias is not None:
        new.bias.data.copy_(old.bias.data)
    model.set_submodule(name, new)
