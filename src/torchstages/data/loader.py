"""Batches straight out of the uint8 arrays: no Dataset, no per-sample Python, no worker processes.

The whole split is moved to the device once when it fits (else it stays in pinned host memory
and each indexed batch is copied asynchronously); each batch is converted, augmented and
normalised as tensor ops on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

__all__ = ["to_device_tensor", "Normalizer", "OnDevice", "BatchLoader"]

Inputs = torch.Tensor | tuple[torch.Tensor, ...]
Batch = tuple[Inputs, torch.Tensor]


GPU_SHARE = 0.5  # a split may take at most this share of free GPU memory; the rest is for training


def to_device_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy an array (possibly memory-mapped) to ``device`` if it fits, else to pinned host memory."""
    # np.array copies a read-only memory map into writable memory, as torch requires
    tensor = torch.from_numpy(np.array(array, copy=not array.flags.writeable, order="C"))
    if device.type != "cuda":
        return tensor
    tensor = tensor.pin_memory()
    free, _ = torch.cuda.mem_get_info(device)
    if tensor.nbytes > GPU_SHARE * free:
        return tensor  # BatchLoader copies each batch over, overlapped with compute
    return tensor.to(device, non_blocking=True)


class Normalizer:
    """uint8 pixels -> float, (x/255 - mean) / std per channel, with the train split's statistics."""

    def __init__(
        self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
    ) -> None:
        # (1, C, 1, 1) so it broadcasts over (N, C, H, W)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255.0 - self.mean) / self.std


class OnDevice:
    """The ``normalize`` of inputs that need none in the loader (a table's model scales its own
    inputs): passes a batch through, and says which device batches go to."""

    def __init__(self, device: torch.device) -> None:
        # with its index, as a tensor reports it ("cuda:0", not "cuda"): the loader compares them
        self.device = torch.empty(0, device=device).device

    def __call__(self, inputs: Inputs) -> Inputs:
        return inputs


class BatchLoader:
    """Iterate (inputs, labels) batches over one split held as tensors.

    ``shuffle`` and ``augment`` are for training only; evaluation builds its loader without them,
    so an evaluation can never be computed on shuffled or augmented data by mistake.
    """

    def __init__(
        self,
        images: Inputs,
        labels: torch.Tensor,
        batch_size: int,
        normalize: Normalizer | OnDevice,
        *,
        generator: torch.Generator | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        shard: tuple[int, int] = (0, 1),
        training: bool = False,
    ) -> None:
        # several tensors (a table's numeric and categorical columns) are indexed together
        self.inputs = images if isinstance(images, tuple) else (images,)
        if any(len(x) != len(labels) for x in self.inputs):
            raise ValueError(f"{len(self.inputs[0])} inputs but {len(labels)} labels")
        self.images, self.labels = self.inputs[0], labels
        self.batch_size = batch_size
        self.normalize = normalize
        self.generator = generator  # set: shuffle every epoch with it
        self.augment = augment
        # (rank, world size): with a generator, each process takes every world-th sample of the
        # shared permutation, cut to an equal count so all processes step together
        self.rank, self.world = shard
        self.training = training

    @property
    def samples(self) -> int:
        """Samples this process sees per pass."""
        return len(self.images) // self.world if self.world > 1 else len(self.images)

    def batch_bounds(self) -> list[tuple[int, int]]:
        """(start, end) of every batch. In training a last batch of one sample is merged into
        the one before: BatchNorm cannot normalise a single sample, and it would be pure noise."""
        n = self.samples
        bounds = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        if self.training and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self.batch_bounds())

    def __iter__(self) -> Iterator[Batch]:
        order = None
        if self.generator is not None:
            order = torch.randperm(len(self.images), generator=self.generator)
            order = order[self.rank :: self.world][: self.samples].to(self.images.device)
        device = self.normalize.device
        for start, end in self.batch_bounds():
            if order is None:
                xs, y = [x[start:end] for x in self.inputs], self.labels[start:end]
            else:
                idx = order[start:end]
                xs, y = [x[idx] for x in self.inputs], self.labels[idx]
            # a no-op when the split lives on the device; an async copy when it could not fit
            if y.device != device and device.type == "cuda":
                xs, y = [x.pin_memory() for x in xs], y.pin_memory()  # indexing dropped pinning
            xs = [x.to(device, non_blocking=True) for x in xs]
            y = y.to(device, non_blocking=True)
            if len(xs) > 1:
                yield self.normalize(tuple(xs)), y
                continue
            x = xs[0].float()
            if self.augment is not None:
                x = self.augment(x)
            yield self.normalize(x), y
