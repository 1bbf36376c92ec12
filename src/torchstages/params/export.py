"""``export`` section: which deployment formats to write and how closely each must match PyTorch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from torchstages.params.base import Section

Format = Literal["onnx", "pt2", "onnx-int8"]
FORMATS: tuple[Format, ...] = ("onnx", "pt2", "onnx-int8")


class ExportParams(Section):
    formats: tuple[Format, ...] = Field(
        FORMATS,
        min_length=1,
        description="files to write: onnx (fp32), pt2 (torch.export), onnx-int8 (dynamic int8 ONNX)",
    )
    opset: int = Field(18, ge=13, le=23, description="ONNX opset version")
    max_abs_diff: float = Field(
        1e-3, gt=0, description="fail the stage if any fp32 logit differs from PyTorch by more"
    )
    min_agreement: float = Field(
        1.0, ge=0, le=1, description="fail if fewer fp32 predictions than this fraction agree"
    )
    int8_quantization: Literal["static", "dynamic"] = Field(
        "static",
        description="static: scales calibrated on train samples (fast convolutions); dynamic: "
        "none (fits linear layers, slow for convolutions)",
    )
    max_int8_accuracy_drop: float = Field(
        0.01, ge=0, le=1, description="fail if int8 test accuracy is lower than fp32's by more"
    )

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(formats)) != len(formats):
            raise ValueError("each format at most once")
        return formats
