"""What training needs to know of one data kind: one subclass per kind, in the kind's own package
(``data/training.py`` for images, ``tables/``, ``text/``, ``series/``). The loop and
:mod:`torchstages.training.data` ask the kind; they never branch on its name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.data.augment import MixedBatch
from torchstages.data.loader import Normalizer, OnDevice
from torchstages.params.train import TrainParams

__all__ = ["KindTraining"]


class KindTraining:
    """The defaults are those of a kind whose arrays are model-ready on the device: no
    augmentation, nothing fitted outside the optimizer, no settings of its own."""

    # train.model.name when params.yaml leaves train.model unset (None: TrainParams' own, cnn)
    default_model: str | None = None
    # threads: 0 means one thread: the layers of table, text and series models are too small
    # to split across threads, and one trains faster by far when other jobs share the CPU
    # (bench/RESULTS.md: "Tables", "Texts"); images use every core
    one_thread = True
    # train.augment applies: its later settings (zoom, jitter, erasing, mixing) are refused
    # where it does not, as a model key of another kind is
    augments = False
    # monitor: auto picks the best epoch by val loss for any regression or forecast, and for
    # this kind's classifiers too when this says so (else by val accuracy)
    monitor_loss = False

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        """One split's arrays as build-dataset wrote them: the inputs, then the targets."""
        raise NotImplementedError

    def vocab(self, processed_dir: Path) -> list[str] | None:
        """The tokens in id order, for a text model's pretrained vectors; None for other kinds."""
        return None

    def normalizer(self, meta: dict[str, Any], device: torch.device) -> Normalizer | OnDevice:
        return OnDevice(device)

    def defaults(
        self, params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The kind's auto settings, as an update of the params (``model``: the spec already
        filled in for an unset train.model, else None)."""
        return {}

    def fit_before_training(
        self, model: nn.Module, meta: dict[str, Any], train: tuple[torch.Tensor, ...]
    ) -> None:
        """Fit what the optimizer does not train (``train``: the inputs, then the targets)."""

    def augmenter(
        self, params: TrainParams, seed: int
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """What augments a training batch, its random draws seeded by ``seed``; None: batches
        as they are."""
        return None

    def mixer(self, params: TrainParams, seed: int) -> Callable[[torch.Tensor], MixedBatch] | None:
        """What blends a training batch with itself (mixup, cutmix); None: batches as they are."""
        return None

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        """What the model card records about the data, with the kind's own keys."""
        raise NotImplementedError
