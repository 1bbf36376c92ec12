"""Batched augmentation: crop-with-padding, flip and rotation as one affine resample per batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from torchstages.params.train import AugmentParams

__all__ = ["random_affine"]


def random_affine(x: torch.Tensor, aug: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Augment a float batch (N, C, H, W) of raw pixel values; out-of-frame pixels become 0.

    Random numbers come from a CPU generator, so the same seed gives the same augmentation on
    any device; the resample itself runs wherever ``x`` lives.
    """
    if aug.crop_padding == 0 and aug.rotation == 0 and not aug.hflip:
        return x
    n, _, height, width = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(aug.rotation)
    # integer shifts in [-pad, pad]: the same as padding by `pad` and taking a random crop
    shift = torch.randint(-aug.crop_padding, aug.crop_padding + 1, (n, 2), generator=generator)
    flip = torch.ones(n)
    if aug.hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output to input in normalised coordinates; the aspect terms keep rotation rigid
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin * height / width, 2 * shift[:, 0] / width], dim=1),
            torch.stack([sin * flip * width / height, cos, 2 * shift[:, 1] / height], dim=1),
        ],
        dim=1,
    ).to(device=x.device, dtype=x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
