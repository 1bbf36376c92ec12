"""Training on image folders: uint8 arrays normalised and augmented on the device, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.augment import random_affine
from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.store import load_split
from torchstages.params.train import TrainParams
from torchstages.training.kind import KindTraining

__all__ = ["ImageTraining"]


class ImageTraining(KindTraining):
    one_thread = False

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        return load_split(processed_dir, split)

    def normalizer(self, meta: dict[str, Any], device: torch.device) -> Normalizer:
        prep = Preprocessing.from_dict(meta["preprocessing"])
        return Normalizer(prep.mean, prep.std, device)

    def augmenter(
        self, params: TrainParams, generator: torch.Generator
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: random_affine(x, params.augment, generator)

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        return {
            "classes": meta["classes"],
            "preprocessing": Preprocessing.from_dict(meta["preprocessing"]).to_dict(),
            # what the augmentation picture (drawn by validate) needs to show what the model saw
            "augment": params.augment.model_dump(mode="json"),
        }
