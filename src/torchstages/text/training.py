"""Training on texts: token ids and lengths, the vocabulary for pretrained vectors, a textcnn by
default, a recurrent model's sizes filled in for texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from torchstages.models.recurrent import RecurrentSpec
from torchstages.params.train import TrainParams
from torchstages.text.store import load_text_split, load_vocab
from torchstages.training.kind import KindTraining

__all__ = ["TextTraining"]


class TextTraining(KindTraining):
    default_model = "textcnn"

    def load(self, processed_dir: Path, split: str) -> tuple[np.ndarray, ...]:
        return load_text_split(processed_dir, split)

    def vocab(self, processed_dir: Path) -> list[str]:
        return load_vocab(processed_dir)

    def defaults(
        self, params: TrainParams, model: dict[str, Any] | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        if isinstance(params.model, RecurrentSpec):
            # the card records the sizes trained, not "unset" (hidden: 32 for texts)
            return {"model": params.model.for_texts().model_dump(mode="json")}
        return {}

    def card(self, meta: dict[str, Any], params: TrainParams) -> dict[str, Any]:
        keys = ("kind", "task", "target", "classes", "text_column", "tokenizer")
        keys += ("encoding", "quoting", "vocab_size", "max_len")
        return {k: meta[k] for k in keys}
