"""``train.model: {name: lstm | gru}``: one spec for the recurrent networks of texts and series.

``train.model`` is one union told apart by ``name``, so ``lstm`` can only mean one spec; texts
(:class:`torchstages.models.text.TextLSTM`) and series
(:class:`torchstages.models.series.Recurrent`) read the same one. A few settings differ in their
default per kind (left unset: ``None``), and the text-only ones are refused for a series.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from torchstages.errors import UserError
from torchstages.models.transfer import SpecWithTransfer

__all__ = [
    "RecurrentSpec",
    "TEXT_ONLY",
]

TEXT_ONLY = ("bidirectional", "pooling", "embedding_dim", "vectors")


class RecurrentSpec(SpecWithTransfer):
    name: Literal["lstm", "gru"] = Field("lstm", description="the recurrent cell: lstm or gru")
    hidden: int | None = Field(
        None, ge=1, description="hidden units per direction; unset: 32 for texts, 64 for series"
    )
    layers: int = Field(1, ge=1, description="stacked recurrent layers")
    dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="between layers and before the head (texts: on the embeddings too); "
        "unset: 0.3 for texts, 0.0 for series",
    )
    bidirectional: bool = Field(True, description="texts: read each text forwards and backwards")
    pooling: Literal["last", "mean", "max"] = Field(
        "max",
        description="texts: last: the final hidden state of each direction; mean / max over the "
        "text's own tokens (padding masked)",
    )
    embedding_dim: int = Field(32, ge=2, description="texts: width of each token's embedding")
    vectors: str | None = Field(
        None,
        description="texts: pretrained word vectors, a local GloVe/fastText text file (word then "
        "embedding_dim numbers per line); vocabulary words found there start from their vector",
    )

    def for_texts(self) -> RecurrentSpec:
        """This spec with the text defaults filled in."""
        return self._filled(hidden=32, dropout=0.3)

    def for_series(self) -> RecurrentSpec:
        """This spec with the series defaults filled in; a text-only setting is an error."""
        for key in TEXT_ONLY:
            # compared with the default, not "was it set": a model card stores every key
            if getattr(self, key) != type(self).model_fields[key].default:
                raise UserError(f"train.model.{key} applies to texts; a series model has none")
        return self._filled(hidden=64, dropout=0.0)

    def _filled(self, **defaults: float) -> RecurrentSpec:
        unset = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return self.model_copy(update=unset)
