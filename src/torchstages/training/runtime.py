"""Device-level settings of a training run: precision, memory format, determinism, compile."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from torchstages.params.train import TrainParams

__all__ = ["Runtime", "configure", "cpu_has_native_bf16", "maybe_compile", "mps_has_bf16"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full fp32
    scaler: torch.amp.GradScaler | None  # fp16 only: bf16 has fp32's range
    channels_last: bool | str  # "auto" until for_model() resolves it

    def for_model(self, model: nn.Module) -> Runtime:
        """Resolve ``channels_last: auto``: on for models with convolutions, where it is faster
        on both oneDNN (CPU) and cuDNN; an MLP gains nothing from it. Off on MPS, where it is
        not measured and several kernels convert back to contiguous."""
        if self.channels_last != "auto":
            return self
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        return dataclasses.replace(self, channels_last=has_conv and self.device.type != "mps")

    @property
    def memory_format(self) -> torch.memory_format:
        """For the model and every batch, once :meth:`for_model` has resolved ``auto``."""
        return torch.channels_last if self.channels_last is True else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def precision_name(self) -> str:
        """The ``train.precision`` value this run resolved to."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype, "fp32")

    def describe(self) -> str:
        return (
            f"device {self.device}, precision {self.precision_name()}, "
            f"channels_last {self.channels_last}"
        )


def configure(params: TrainParams, device: torch.device) -> Runtime:
    """Apply determinism / cudnn / thread settings and choose the autocast dtype."""
    if params.threads:
        torch.set_num_threads(params.threads)
    if params.deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (adaptive pooling) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        # filling every new tensor with NaN is a debugging aid for kernels that read memory they
        # never wrote; it costs ~4% of a CPU step, and the byte-identical rerun tests would
        # catch such a kernel
        torch.utils.deterministic.fill_uninitialized_memory = False
    if device.type == "cpu":
        _keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not params.deterministic
        # TF32 rounds fp32 matmul inputs to 10 bits of mantissa: fine beside bf16 or fp16
        # autocast, not when precision: fp32 asks for fp32
        tf32 = params.precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    amp_dtype = _amp_dtype(params.precision, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    return Runtime(device, amp_dtype, scaler, params.channels_last)


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "mps":
        return _mps_amp_dtype(precision)
    if precision == "fp16":
        # CPU fp16 autocast has no fast kernels on most CPUs; fp16 is meant for a GPU
        log.warning("train: precision fp16 applies to CUDA only; this CPU run uses fp32")
        return None
    if precision == "auto" and not cpu_has_native_bf16():
        return None  # emulated bf16 is slower than fp32
    return torch.bfloat16


def _mps_amp_dtype(precision: str) -> torch.dtype | None:
    """auto stays fp32 on MPS: which Apple GPUs run bf16 natively rather than emulated is not
    something torch reports, and no speed-up is measured; fp16 and bf16 are there on request."""
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" and not mps_has_bf16():
        log.warning("train: precision bf16 needs macOS 14 or newer on MPS; this run uses fp32")
        return None
    return torch.bfloat16 if precision == "bf16" else None


def mps_has_bf16() -> bool:
    """MPS autocast supports bf16 from macOS 14 on."""
    return torch.backends.mps.is_macos_or_newer(14, 0)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: oneDNN runs bf16 convolutions and matmuls natively (about 2x fp32)."""
    if not torch.backends.mkldnn.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    """Make glibc keep freed blocks up to 64 MiB for reuse instead of handing them back.

    A training step frees and re-allocates the same activations every time. glibc serves
    blocks over 128 KiB (adaptively up to 32 MiB) with mmap and returns them on free, so each
    step costs thousands of page faults: ~15% of a CPU step for the default CNN. jemalloc or
    tcmalloc, which PyTorch's CPU tuning guide suggests, avoid this too; mallopt needs no extra
    library. Larger blocks (an evaluation batch of 1024) still go back to the OS, which keeps
    the peak RSS within ~200 MiB of glibc's default. Other C libraries keep their behaviour.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 128 << 20)


def maybe_compile(model: torch.nn.Module, enabled: bool) -> Callable[..., torch.Tensor]:
    return torch.compile(model) if enabled else model
