"""Choosing the device: CUDA when asked for or available, a clear error when missing."""

from __future__ import annotations

import torch

from torchstages.errors import UserError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without one is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was requested but torch.cuda.is_available() is False")
    return torch.device(name)
