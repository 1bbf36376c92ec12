"""``train`` section: model, optimizer, schedule, augmentation and device."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from torchstages.models import ModelSpec
from torchstages.models.cnn import CNNSpec
from torchstages.params.base import Section


class AugmentParams(Section):
    """Training-only augmentation, applied to whole batches as one affine resample."""

    crop_padding: int = Field(2, ge=0, description="random crop after padding by this many pixels")
    hflip: bool = Field(False, description="random horizontal flip (off: digits must not mirror)")
    rotation: float = Field(10.0, ge=0, le=180, description="random rotation range in degrees (±)")


class TrainParams(Section):
    seed: int = Field(42, description="seed for weights, data order and augmentation")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = cuda when torch.cuda.is_available(), else cpu"
    )
    epochs: int = Field(30, ge=1, description="passes over the train split")
    batch_size: int = Field(64, ge=1, description="samples per optimizer step")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("adamw", description="optimizer")
    lr: float = Field(0.003, gt=0, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum (sgd, rmsprop)")
    weight_decay: float = Field(0.0005, ge=0, description="decoupled (adamw) or L2 weight decay")
    schedule: Literal["none", "cosine"] = Field("cosine", description="lr schedule over the epochs")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    monitor: Literal["val_accuracy", "val_loss"] = Field(
        "val_accuracy", description="validation metric that picks the best epoch's weights"
    )
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = torch's default")
    model: ModelSpec = Field(default_factory=CNNSpec, description="architecture, see models")
    augment: AugmentParams = Field(default_factory=AugmentParams)
