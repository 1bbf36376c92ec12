"""Device-level settings of a training run: precision, memory format, determinism, compile."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from torchstages.params.train import TrainParams

__all__ = ["Runtime", "configure", "maybe_compile"]


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full fp32
    scaler: torch.amp.GradScaler | None  # fp16 only: bf16 has fp32's range
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        amp = "off" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")
        return f"device {self.device}, amp {amp}, channels_last {self.channels_last}"


def configure(params: TrainParams, device: torch.device) -> Runtime:
    """Apply determinism / cudnn / thread settings and choose the autocast dtype."""
    if params.threads:
        torch.set_num_threads(params.threads)
    if params.deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (adaptive pooling) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not params.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = _amp_dtype(params.precision, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    return Runtime(device, amp_dtype, scaler, params.channels_last and device.type == "cuda")


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None  # CPU autocast is slower than fp32 for these convnets
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def maybe_compile(model: torch.nn.Module, enabled: bool) -> Callable[..., torch.Tensor]:
    return torch.compile(model) if enabled else model
