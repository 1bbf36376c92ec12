"""Training on image folders: uint8 arrays normalised and augmented on the device, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.augment import MixedBatch, Streams, augment_batch, mix_batch
from torchstages.data.images import Preprocessing
from torchstages.data.loader import Normalizer
from torchstages.data.store import load_split
from torchstages.errors import UserError
from torchstages.params.train import TrainParams
from torchstages.training.kind import KindTraining

__all__ = ["ImageTraining"]


class ImageTraining(KindTraining):
    one_thread = False
    augments = True

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        return load_split(processed_dir, split)

    def normalizer(self, meta: dict[str, Any], device: torch.device) -> Normalizer:
        prep = Preprocessing.from_dict(meta["preprocessing"])
        return Normalizer(prep.mean, prep.std, device)

    def defaults(
        self, params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        if params.augment.saturation and (channels := meta["channels"]) != 3:
            raise UserError(
                f"train.augment.saturation: needs colour images, and data/processed holds "
                f"{channels} channel(s) (build_dataset.color); set it to 0"
            )
        return {}

    def augmenter(self, params: TrainParams, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
        streams = Streams(seed)
        return lambda x: augment_batch(x, params.augment, streams)

    def mixer(self, params: TrainParams, seed: int) -> Callable[[torch.Tensor], MixedBatch] | None:
        if not params.augment.mixes:
            return None
        generator = torch.Generator().manual_seed(seed)
        return lambda x: mix_batch(x, params.augment, generator)

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        return {
            "classes": meta["classes"],
            "preprocessing": Preprocessing.from_dict(meta["preprocessing"]).to_dict(),
            # what the augmentation picture (drawn by validate) needs to show what the model saw
            "augment": params.augment.recorded(),
        }
