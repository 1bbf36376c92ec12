"""``export`` section: ONNX export and its parity check against PyTorch."""

from __future__ import annotations

from pydantic import Field

from torchstages.params.base import Section


class ExportParams(Section):
    opset: int = Field(18, ge=13, le=23, description="ONNX opset version")
    max_abs_diff: float = Field(
        1e-3, gt=0, description="fail the stage if any ONNX logit differs from PyTorch by more"
    )
    min_agreement: float = Field(
        1.0, ge=0, le=1, description="fail if fewer predictions than this fraction agree"
    )
