import numpy as np
import torch

from torchstages.data.augment import Streams, random_affine
from torchstages.data.loader import BatchLoader, Normalizer, to_device_tensor
from torchstages.params.train import AugmentParams

CPU = torch.device("cpu")


def _data(n=10):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return images, torch.arange(n)


def test_evaluation_order_is_the_array_order():
    images, labels = _data()
    loader = BatchLoader(images, labels, 3, Normalizer((0.0,), (1.0,), CPU))
    seen = torch.cat([y for _, y in loader])
    assert seen.tolist() == list(range(10)) and len(loader) == 4


def test_training_order_is_shuffled_reproducibly_and_pairs_stay_aligned():
    images, labels = _data()
    norm = Normalizer((0.0,), (1 / 255,), CPU)  # undo /255 so pixel value == index
    orders = []
    for _ in range(2):
        loader = BatchLoader(images, labels, 4, norm, generator=torch.Generator().manual_seed(7))
        batches = list(loader)
        for x, y in batches:
            assert torch.allclose(x[:, 0, 0, 0], y.float())
        orders.append(torch.cat([y for _, y in batches]).tolist())
    assert orders[0] == orders[1] and orders[0] != list(range(10))
    assert sorted(orders[0]) == list(range(10))


def test_normalizer_uses_mean_and_std_per_channel():
    x = torch.full((1, 2, 1, 1), 255, dtype=torch.uint8)
    out = Normalizer((0.5, 0.0), (0.5, 2.0), CPU)(x)
    assert out.flatten().tolist() == [1.0, 0.5]


def test_read_only_memory_map_becomes_a_tensor_without_warning(tmp_path, recwarn):
    np.save(tmp_path / "a.npy", np.ones((2, 3), dtype=np.uint8))
    tensor = to_device_tensor(np.load(tmp_path / "a.npy", mmap_mode="r"), CPU)
    assert tensor.sum() == 6 and not recwarn.list


def test_augmentation_off_is_the_identity_and_shift_moves_pixels_exactly():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 255
    gen = Streams(0)
    assert random_affine(x, AugmentParams(crop_padding=0, rotation=0), gen) is x
    out = random_affine(x, AugmentParams(crop_padding=2, rotation=0), gen)
    for a, b in zip(x, out, strict=True):  # each output is a translated copy by whole pixels
        found = any(
            torch.allclose(
                b[0, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)],
                a[0, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)],
                atol=1e-3,
            )
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        assert found


def test_augmentation_never_mirrors_unless_asked():
    """An asymmetric image rotated by at most a few degrees keeps its left-heavy mass."""
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 4:12, 2:6] = 255
    out = random_affine(x, AugmentParams(crop_padding=1, rotation=10), Streams(1))
    left, right = out[..., :8].sum((1, 2, 3)), out[..., 8:].sum((1, 2, 3))
    assert (left > right).all()
    flipped = random_affine(x, AugmentParams(crop_padding=0, rotation=0, hflip=True), Streams(1))
    assert (flipped[..., 8:].sum((1, 2, 3)) > flipped[..., :8].sum((1, 2, 3))).any()


def test_augmentation_is_reproducible_from_the_generator():
    x = torch.rand(8, 3, 10, 12) * 255
    aug = AugmentParams(crop_padding=2, rotation=15, hflip=True)
    a = random_affine(x, aug, Streams(3))
    b = random_affine(x, aug, Streams(3))
    assert torch.equal(a, b) and a.shape == x.shape
