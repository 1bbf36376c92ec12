"""Choosing the device: CUDA, then Apple's MPS, then the CPU; a clear error when one is missing."""

from __future__ import annotations

import torch

from torchstages.errors import UserError

__all__ = ["mps_available", "resolve_device"]


def mps_available() -> bool:
    """Apple silicon GPU through Metal (a macOS build of torch on an M-series Mac)."""
    return torch.backends.mps.is_available()


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` picks CUDA, else MPS, else the CPU; asking for a device that is missing is an error
    naming ``key``, the params key or option it came from (``train.device``, ``--device``).

    The MPS path is covered by unit tests with a stubbed ``is_available``, not run on Apple
    hardware in CI.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}: cuda was requested but torch.cuda.is_available() is False")
    if name == "mps" and not mps_available():
        raise UserError(
            f"{key}: mps was requested but torch.backends.mps.is_available() is False "
            "(needs an Apple silicon Mac)"
        )
    return torch.device(name)
