"""Batched augmentation of images on the device: crop, flips, rotation and zoom as one affine
resample per batch, then colour jitter and random erasing; mixup and cutmix blend pairs.

Random numbers come from CPU generators, so the same seed gives the same augmentation on any
device; the arithmetic runs wherever the batch lives. Each random choice has a generator of its
own (:class:`Streams`), so switching a setting on or off never changes what the others draw.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from torchstages.params.train import AugmentParams

__all__ = ["Streams", "augment_batch", "random_affine", "MixedBatch", "mix_batch"]

# random erasing's rectangle: its share of the image area and its aspect ratio (log-uniform),
# the ranges of Zhong et al., 2017, which torchvision's RandomErasing keeps as defaults
ERASE_AREA = (0.02, 0.33)
ERASE_ASPECT = (0.3, 3.3)


@dataclass
class Streams:
    """A CPU generator per random choice, all from one seed: ``affine`` (crop, rotation and
    horizontal flip, the choices augmentation first had) is seeded with ``seed`` itself, so runs
    that use none of the later settings draw exactly as before they existed; every other
    stream from a hash of the seed and its name."""

    seed: int
    _generators: dict[str, torch.Generator] = field(default_factory=dict)

    def __call__(self, name: str) -> torch.Generator:
        if name not in self._generators:
            seed = self.seed
            if name != "affine":
                digest = hashlib.sha256(f"{self.seed}:{name}".encode()).digest()
                seed = int.from_bytes(digest[:8], "little") >> 1
            self._generators[name] = torch.Generator().manual_seed(seed)
        return self._generators[name]


def augment_batch(x: torch.Tensor, aug: AugmentParams, streams: Streams) -> torch.Tensor:
    """Augment a float batch (N, C, H, W) of raw pixel values (0-255)."""
    x = random_affine(x, aug, streams)
    x = _colour_jitter(x, aug, streams)
    if aug.erasing:
        x = _random_erasing(x, aug.erasing, streams("erasing"))
    return x


def random_affine(x: torch.Tensor, aug: AugmentParams, streams: Streams) -> torch.Tensor:
    """Crop-with-padding, flips, rotation and zoom as one resample; out-of-frame pixels become 0."""
    zoom = aug.zoom != (1.0, 1.0)
    if aug.crop_padding == 0 and aug.rotation == 0 and not (aug.hflip or aug.vflip or zoom):
        return x
    n, _, height, width = x.shape
    generator = streams("affine")
    # drawn whenever the resample runs, even at 0: as the first version did, so its runs replay
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(aug.rotation)
    # integer shifts in [-pad, pad]: the same as padding by `pad` and taking a random crop
    shift = torch.randint(-aug.crop_padding, aug.crop_padding + 1, (n, 2), generator=generator)
    flip = torch.ones(n)
    if aug.hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output to input in normalised coordinates; the aspect terms keep rotation rigid
    # (column 0 multiplies the output's x, column 1 its y: a flip negates one of them)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin * height / width, 2 * shift[:, 0] / width], dim=1),
            torch.stack([sin * flip * width / height, cos, 2 * shift[:, 1] / height], dim=1),
        ],
        dim=1,
    )  # (N, 2, 3)
    if aug.vflip:
        vflip = torch.where(torch.rand(n, generator=streams("vflip")) < 0.5, -1.0, 1.0)
        theta[:, :, 1] *= vflip[:, None]
    if zoom:
        # log-uniform, so that zooming in by 2 and out by 2 are equally likely in [0.5, 2]
        low, high = (math.log(z) for z in aug.zoom)
        factor = torch.exp(low + torch.rand(n, generator=streams("zoom")) * (high - low))
        theta[:, :, :2] /= factor[:, None, None]  # a factor above 1 samples a smaller window
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _factors(n: int, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per-image factors uniform in [1 - strength, 1 + strength], shaped to broadcast."""
    return (1 + (torch.rand(n, generator=generator) * 2 - 1) * strength).view(n, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601, as torchvision's rgb_to_grayscale) of an RGB batch, (N, 1, H, W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)


def _colour_jitter(x: torch.Tensor, aug: AugmentParams, streams: Streams) -> torch.Tensor:
    """Brightness, contrast and saturation, in that order (torchvision's ColorJitter shuffles
    it), each clamped to the pixel range as ColorJitter does. Saturation needs three channels
    (train checks the data)."""
    n = len(x)
    if aug.brightness:
        factor = _factors(n, aug.brightness, streams("brightness")).to(x)
        x = (x * factor).clamp(0, 255)
    if aug.contrast:
        grey = _gray(x) if x.shape[1] == 3 else x
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)
        factor = _factors(n, aug.contrast, streams("contrast")).to(x)
        x = (mean + (x - mean) * factor).clamp(0, 255)
    if aug.saturation:
        grey = _gray(x)
        factor = _factors(n, aug.saturation, streams("saturation")).to(x)
        x = (grey + (x - grey) * factor).clamp(0, 255)
    return x


def _boxes(
    n: int,
    height: int,
    width: int,
    area: torch.Tensor,
    aspect: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """Top, left, bottom, right of a box per image of the given share of the area and aspect
    ratio (height / width), cut to the image, placed uniformly."""
    box_h = (torch.sqrt(area * aspect) * height).round().clamp(1, height).long()
    box_w = (torch.sqrt(area / aspect) * width).round().clamp(1, width).long()
    top = (torch.rand(n, generator=generator) * (height - box_h + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - box_w + 1)).long()
    return top, left, top + box_h, left + box_w


def _box_mask(
    boxes: tuple[torch.Tensor, ...], height: int, width: int, device: torch.device
) -> torch.Tensor:
    """(N, 1, H, W) boolean, True inside each image's box."""
    top, left, bottom, right = (b.to(device).view(-1, 1, 1, 1) for b in boxes)
    rows = torch.arange(height, device=device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, -1)
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def _random_erasing(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Black out one random rectangle in ``share`` of the images (Zhong et al., 2017)."""
    n, _, height, width = x.shape
    chosen = torch.rand(n, generator=generator) < share
    area = ERASE_AREA[0] + torch.rand(n, generator=generator) * (ERASE_AREA[1] - ERASE_AREA[0])
    log_low, log_high = math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])
    aspect = torch.exp(log_low + torch.rand(n, generator=generator) * (log_high - log_low))
    mask = _box_mask(_boxes(n, height, width, area, aspect, generator), height, width, x.device)
    return x.masked_fill(mask & chosen.to(x.device).view(-1, 1, 1, 1), 0.0)


@dataclass(frozen=True)
class MixedBatch:
    """A blended batch: each image is ``share`` of its own and ``1 - share`` of image ``partner``
    of the same batch (by pixels for mixup, by area for cutmix), and so is its loss."""

    x: torch.Tensor
    partner: torch.Tensor  # (N,) index into the batch
    share: float

    def loss(self, loss_fn, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss against both labels in their shares (Zhang et al., 2018): the same as the
        loss against the blended label for cross-entropy (label smoothing included; with class
        weights each term keeps its own weighting), and defined for any loss."""
        y_partner = y[self.partner.to(y.device)]
        return self.share * loss_fn(logits, y) + (1 - self.share) * loss_fn(logits, y_partner)

    def dominant(self, y: torch.Tensor) -> torch.Tensor:
        """The label with the larger share of each image: what train accuracy is counted on."""
        return y if self.share >= 0.5 else y[self.partner.to(y.device)]


def mix_batch(x: torch.Tensor, aug: AugmentParams, generator: torch.Generator) -> MixedBatch:
    """Mixup or cutmix of a (normalised) batch with a shuffled copy of itself, one share per
    batch drawn from Beta(alpha, alpha); with both on, each batch uses one of them at even odds
    (timm's Mixup with switch_prob 0.5)."""
    n, _, height, width = x.shape
    partner = torch.randperm(n, generator=generator)
    use_cutmix = aug.cutmix > 0
    if aug.mixup and aug.cutmix:
        use_cutmix = bool(torch.rand(1, generator=generator) < 0.5)
    alpha = aug.cutmix if use_cutmix else aug.mixup
    # torch's Beta takes no generator (it would draw from the global one, which dropout uses):
    # numpy's, seeded from this batch's generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    share = float(np.random.default_rng(seed).beta(alpha, alpha))
    other = x[partner.to(x.device)]
    if not use_cutmix:
        return MixedBatch(share * x + (1 - share) * other, partner, share)
    # one box for the whole batch, of area 1 - share, placed uniformly; the share is then
    # recomputed from the box as cut to the image (Yun et al., 2019)
    area = torch.tensor([1 - share])
    top, left, bottom, right = _boxes(1, height, width, area, torch.ones(1), generator)
    mask = _box_mask((top, left, bottom, right), height, width, x.device)
    pasted = ((bottom - top) * (right - left)).item()
    return MixedBatch(torch.where(mask, other, x), partner, 1 - pasted / (height * width))
