"""Model registry: a spec (name + arguments from params) becomes an ``nn.Module``."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field, TypeAdapter, ValidationError
from torch import nn

from torchstages.errors import UserError
from torchstages.models.cnn import CNN, CNNSpec
from torchstages.models.mlp import MLP, MLPSpec

__all__ = ["ModelSpec", "build_model", "parse_spec", "check_output_shape"]

ModelSpec = Annotated[MLPSpec | CNNSpec, Field(discriminator="name")]

_BUILDERS: dict[str, Any] = {"mlp": MLP, "cnn": CNN}


def parse_spec(raw: dict[str, Any]) -> MLPSpec | CNNSpec:
    """Validate a plain-dict spec, e.g. the ``architecture`` block of ``models/model.json``."""
    try:
        return TypeAdapter(ModelSpec).validate_python(raw)
    except ValidationError as exc:
        raise UserError(f"model spec {raw!r}: {exc.errors()[0]['msg']}") from None


def build_model(
    spec: MLPSpec | CNNSpec, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> nn.Module:
    """Build the network for inputs of shape (N, in_channels, *image_size) and ``num_classes`` logits.

    The network returns raw logits: CrossEntropyLoss applies log-softmax itself, and a softmax
    here would silently train on squashed gradients.
    """
    return _BUILDERS[spec.name](spec, in_channels, image_size, num_classes)


def check_output_shape(
    model: nn.Module, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> None:
    """Run one dummy input through the model; a wrong output shape is a clear error, not a crash."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, in_channels, *image_size))
    model.train(was_training)
    if tuple(out.shape) != (2, num_classes):
        raise UserError(
            f"model output shape {tuple(out.shape)[1:]} does not match {num_classes} classes "
            f"for input (C={in_channels}, H={image_size[0]}, W={image_size[1]})"
        )


def split_head_backbone(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(head parameters, backbone parameters); the head is the module named ``head``."""
    head = list(model.head.parameters())  # TEMPORARY stub until the model zoo lands
    ids = {id(p) for p in head}
    return head, [p for p in model.parameters() if id(p) not in ids]
