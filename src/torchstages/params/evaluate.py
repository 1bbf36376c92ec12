"""``validate`` and ``test`` sections: how the saved model is evaluated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from torchstages.params.base import Section


class EvaluateParams(Section):
    batch_size: int = Field(512, ge=1, description="evaluation batch size (no effect on results)")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto (as in train), cpu, cuda or mps"
    )
    top_k: int = Field(
        5, ge=1, description="report top-k accuracy for this k (skipped when classes <= k)"
    )
    calibration_bins: int = Field(
        15, ge=1, le=1000, description="equal-width confidence bins of the calibration error (ECE)"
    )
    gallery_size: int = Field(
        16, ge=0, le=100, description="most confidently wrong images drawn in wrong.png"
    )
    bootstrap_resamples: int = Field(
        1000,
        ge=0,
        le=100_000,
        description="resamples of the 95% bootstrap intervals beside each metric (0 = no intervals)",
    )
    bootstrap_seed: int = Field(
        0,
        ge=0,  # numpy's PCG64 refuses a negative seed: the stage stopped after scoring
        description="seed of the bootstrap resamples: the same predictions give the same bounds",
    )
