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
        description="files to write: onnx (fp32), pt2 (torch.export), onnx-int8 (int8 ONNX)",
    )
    opset: int = Field(
        18,
        ge=18,
        le=23,
        description="ONNX opset version; 18 or more: torch's exporter writes opset 18, and "
        "converting a graph down broke some (a table model's ReduceLogSumExp at 17)",
    )
    max_abs_diff: float = Field(
        1e-3,
        gt=0,
        description="fail the stage if any fp32 logit differs from PyTorch by more (regression "
        "and forecasts: any value, in standard deviations of the target)",
    )
    min_agreement: float = Field(
        1.0,
        ge=0,
        le=1,
        description="fail if fewer fp32 predictions than this fraction agree (the same class; "
        "values: within max_abs_diff)",
    )
    int8_quantization: Literal["auto", "static", "dynamic"] = Field(
        "auto",
        description="static: scales calibrated on train samples (fast convolutions); dynamic: "
        "none (fits linear and recurrent layers, slow for convolutions; forecasters, whose test "
        "range can lie beyond the train range); auto: static for convolutional classifiers "
        "(images, textcnn), dynamic for the others",
    )
    max_int8_accuracy_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="fail if int8 test accuracy is lower than fp32's by more (and by more than "
        "one test row)",
    )
    max_int8_error_increase: float = Field(
        0.05,
        ge=0,
        description="regression and forecasts: fail if int8 test RMSE exceeds fp32's by more "
        "than this fraction of it",
    )

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(formats)) != len(formats):
            raise ValueError("each format at most once")
        return formats
