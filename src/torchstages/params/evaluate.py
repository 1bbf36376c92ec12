"""``validate`` and ``test`` sections: how the saved model is evaluated."""

from __future__ import annotations

from pydantic import Field

from torchstages.params.base import Section


class EvaluateParams(Section):
    batch_size: int = Field(512, ge=1, description="evaluation batch size (no effect on results)")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto, cpu or cuda")
