"""The JSON side of ``torchstages serve`` for a text model: ``{"texts": ["...", ...]}`` in, the
top-k classes of each text out, through the same :func:`torchstages.text.predict.classify_texts`
as ``torchstages predict``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from torchstages.deploy.readers import InvalidPart
from torchstages.deploy.runtime import Runner
from torchstages.io import six_decimals
from torchstages.text.predict import TextEncoder, classify_texts

if TYPE_CHECKING:  # deploy/serve.py imports this module when it serves the kind
    from torchstages.deploy.serve import Limits

__all__ = ["TextRequest", "TextService"]


class TextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(
        min_length=1,
        description="the texts to classify, in order (tokenized as in training; tokens beyond "
        "the model's max_len are cut)",
        examples=[["the team scored a late goal", "bake it with garlic"]],
    )


class TextService:
    """``POST /predict`` for a text model (see ``deploy/serve.py``)."""

    field = "texts"
    request = TextRequest

    def __init__(self, runner: Runner, limits: Limits) -> None:
        self.runner = runner
        self.encoder = TextEncoder.of(runner.metadata)
        self.max_chars = limits.max_text_chars

    def describe(self) -> dict[str, Any]:
        """/metadata: the target and how texts become tokens."""
        meta = self.runner.metadata
        return {
            "target": meta["target"],
            "task": meta["task"],
            "text_column": meta["text_column"],
            "tokenizer": json.loads(meta["tokenizer"]),
            "max_len": self.encoder.max_len,
            "vocab_size": len(self.encoder.index),
        }

    def predict(self, body: TextRequest, k: int) -> dict[str, Any]:
        for i, text in enumerate(body.texts):
            if not text.strip():  # training left empty texts out: no class would mean anything
                raise InvalidPart(f"texts[{i}]", "an empty text (nothing to classify)")
            if len(text) > self.max_chars:
                raise InvalidPart(
                    f"texts[{i}]",
                    f"{len(text):,} characters, over the limit of {self.max_chars:,}",
                    status=413,
                )
        tops = classify_texts(self.runner, body.texts, k, self.encoder)
        return {
            "predictions": [
                {
                    "text": i,
                    "prediction": top[0][0],
                    "top": [{"class": c, "probability": six_decimals(p)} for c, p in top],
                }
                for i, top in enumerate(tops)
            ]
        }
