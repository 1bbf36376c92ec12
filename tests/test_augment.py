"""Batched image augmentation: what each setting does to the pixels, that one switched on never
changes what the others draw, mixup and cutmix with their losses, and a run that uses them all."""

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_train_params
from torchstages.data.augment import Streams, augment_batch, mix_batch, random_affine
from torchstages.errors import UserError
from torchstages.params.train import AugmentParams

OFF = {"crop_padding": 0, "rotation": 0.0}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _square(n=32, size=16, lo=6, hi=10):
    """White squares in the middle of black images."""
    x = torch.zeros(n, 1, size, size)
    x[:, :, lo:hi, lo:hi] = 255
    return x


def test_vertical_flip_mirrors_top_to_bottom_about_half_the_time():
    x = torch.rand(64, 1, 6, 5, generator=_gen(1)) * 255
    out = random_affine(x, AugmentParams(**OFF, vflip=True), Streams(0))
    same = torch.isclose(out, x, atol=1e-3).flatten(1).all(1)
    flipped = torch.isclose(out, x.flip(2), atol=1e-3).flatten(1).all(1)
    assert (same | flipped).all() and 16 < flipped.sum() < 48


def test_zoom_in_crops_and_zoom_out_shrinks_inside_a_black_border():
    x = _square()
    area = x.sum((1, 2, 3))
    bigger = random_affine(x, AugmentParams(**OFF, zoom=(2.0, 2.0)), Streams(0))
    smaller = random_affine(x, AugmentParams(**OFF, zoom=(0.5, 0.5)), Streams(0))
    assert torch.allclose(bigger.sum((1, 2, 3)), area * 4, rtol=0.05)
    assert torch.allclose(smaller.sum((1, 2, 3)), area / 4, rtol=0.05)
    ranged = random_affine(x, AugmentParams(**OFF, zoom=(0.5, 2.0)), Streams(0))
    ratio = ranged.sum((1, 2, 3)) / area
    assert (ratio > 0.2).all() and (ratio < 4.2).all() and ratio.std() > 0.3


def test_brightness_scales_within_its_range_and_clamps():
    x = torch.full((200, 1, 2, 2), 100.0)
    out = augment_batch(x, AugmentParams(**OFF, brightness=0.4), Streams(0))
    factor = out[:, 0, 0, 0] / 100
    assert factor.min() >= 0.6 and factor.max() <= 1.4 and factor.std() > 0.15
    assert (out[:, :, 0, 0] == out[:, :, 1, 1]).all(), "one factor per image"
    bright = augment_batch(
        torch.full((50, 1, 2, 2), 250.0), AugmentParams(brightness=0.5), Streams(0)
    )
    assert bright.max() == 255


def _luma(x):
    return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)


def test_contrast_keeps_the_mean_and_saturation_keeps_the_grey():
    x = torch.rand(16, 3, 8, 8, generator=_gen(2)) * 100 + 50  # no clamping at 0.6-1.4
    contrast = augment_batch(x, AugmentParams(**OFF, contrast=0.4), Streams(0))
    assert torch.allclose(_luma(contrast).mean((1, 2)), _luma(x).mean((1, 2)), atol=1e-3)
    assert not torch.allclose(contrast, x)
    saturated = augment_batch(x, AugmentParams(**OFF, saturation=0.5), Streams(0))
    assert torch.allclose(_luma(saturated), _luma(x), atol=1e-3)
    assert not torch.allclose(saturated, x)
    grey = x[:, :1].expand(-1, 3, -1, -1)
    assert torch.allclose(
        augment_batch(grey, AugmentParams(**OFF, saturation=0.5), Streams(0)), grey
    )


def test_erasing_blacks_out_one_rectangle_in_its_share_of_the_images():
    x = torch.full((400, 1, 20, 20), 200.0)
    out = augment_batch(x, AugmentParams(**OFF, erasing=0.5), Streams(0))
    erased = (out == 0).flatten(1).sum(1)
    hit = erased > 0
    assert 160 < hit.sum() < 240
    share = erased[hit].float() / 400
    assert share.min() >= 0.005 and share.max() <= 0.45  # 2-33% of the area, rounded to pixels
    for image in out[hit][:20, 0]:  # one axis-aligned rectangle: its rows and columns span it
        rows, cols = (image == 0).any(1).nonzero(), (image == 0).any(0).nonzero()
        assert (image == 0).sum() == len(rows) * len(cols)
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)


def test_a_setting_switched_on_never_changes_what_the_others_draw():
    """Over several batches, as training draws them: each choice has a stream of its own."""
    x = torch.rand(32, 1, 12, 12, generator=_gen(3)) * 200 + 20
    base = AugmentParams(crop_padding=2, rotation=10.0, hflip=True)
    plain, erased = Streams(5), Streams(5)
    for _ in range(3):
        kept_draws = augment_batch(x, base, plain)
        with_erasing = augment_batch(x, base.model_copy(update={"erasing": 1.0}), erased)
        kept = with_erasing != 0
        assert kept.float().mean() < 0.95
        assert torch.equal(with_erasing[kept], kept_draws[kept])
    constant = torch.full((16, 1, 6, 6), 100.0)  # unchanged by flips and zooming in
    alone = AugmentParams(**OFF, brightness=0.3)
    more = alone.model_copy(update={"vflip": True, "zoom": (1.1, 1.5), "contrast": 0.2})
    one, other = Streams(7), Streams(7)
    for _ in range(3):
        factors = augment_batch(constant, alone, one)[:, 0, 0, 0]
        # contrast about a constant image's mean changes nothing: only brightness is left
        assert torch.allclose(augment_batch(constant, more, other)[:, 0, 0, 0], factors)
        assert factors.std() > 0


def test_the_first_settings_draw_as_from_one_generator_seeded_with_the_seed():
    """Runs that use none of the later settings replay as before they existed."""
    x = torch.rand(8, 1, 10, 10, generator=_gen(4)) * 255
    aug = AugmentParams(crop_padding=2, rotation=10.0, hflip=True)
    streams, generator = Streams(11), torch.Generator().manual_seed(11)
    n = len(x)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * torch.pi / 18
    shift = torch.randint(-2, 3, (n, 2), generator=generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, 2 * shift[:, 0] / 10], dim=1),
            torch.stack([sin * flip, cos, 2 * shift[:, 1] / 10], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert torch.allclose(random_affine(x, aug, streams), expected, atol=1e-4)


def test_mixup_blends_pixels_and_losses_in_one_share():
    x = torch.rand(16, 3, 4, 4, generator=_gen(4))
    mixed = mix_batch(x, AugmentParams(mixup=0.4), _gen())
    assert 0 < mixed.share < 1
    assert sorted(mixed.partner.tolist()) == list(range(16))
    assert torch.allclose(mixed.x, mixed.share * x + (1 - mixed.share) * x[mixed.partner])
    y, logits = torch.randint(0, 5, (16,)), torch.randn(16, 5, generator=_gen(6))
    soft = mixed.share * F.one_hot(y, 5) + (1 - mixed.share) * F.one_hot(y[mixed.partner], 5)
    assert torch.allclose(mixed.loss(F.cross_entropy, logits, y), F.cross_entropy(logits, soft))
    dominant = mixed.dominant(y)
    assert torch.equal(dominant, y if mixed.share >= 0.5 else y[mixed.partner])


def test_cutmix_pastes_one_box_and_shares_labels_by_its_area():
    x, other = torch.zeros(8, 1, 10, 10), None
    x += torch.arange(8).view(8, 1, 1, 1)  # each image one value: pasted pixels show
    shares = []
    for seed in range(20):
        mixed = mix_batch(x, AugmentParams(cutmix=1.0), _gen(seed))
        other = x[mixed.partner]
        pasted = (mixed.x == other) & (x != other)
        moved = mixed.partner != torch.arange(8)
        frac = pasted[moved].flatten(1).float().mean(1)
        assert torch.allclose(frac, torch.full_like(frac, 1 - mixed.share))
        shares.append(mixed.share)
    assert min(shares) < 0.4 and max(shares) > 0.6


def test_with_mixup_and_cutmix_each_batch_uses_one_of_them():
    x = torch.rand(8, 1, 10, 10, generator=_gen(7))
    kinds = set()
    for seed in range(30):
        mixed = mix_batch(x, AugmentParams(mixup=0.4, cutmix=1.0), _gen(seed))
        blended = mixed.share * x + (1 - mixed.share) * x[mixed.partner]
        kinds.add("mixup" if torch.allclose(mixed.x, blended) else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_mixing_is_reproducible_from_the_generator():
    x = torch.rand(8, 1, 6, 6, generator=_gen(8))
    aug = AugmentParams(mixup=0.2, cutmix=1.0)
    a, b = mix_batch(x, aug, _gen(9)), mix_batch(x, aug, _gen(9))
    assert torch.equal(a.x, b.x) and a.share == b.share


def test_zoom_is_a_range_above_zero():
    for zoom in ((1.2, 0.8), (0.0, 1.0)):
        with pytest.raises(ValueError, match="zoom"):
            AugmentParams(zoom=zoom)


def test_the_card_records_the_settings_that_are_on_beside_the_first_three():
    assert AugmentParams().recorded() == {"crop_padding": 2, "hflip": False, "rotation": 10.0}
    assert AugmentParams(mixup=0.2, zoom=(0.9, 1.1)).recorded() == {
        "crop_padding": 2,
        "hflip": False,
        "rotation": 10.0,
        "mixup": 0.2,
        "zoom": [0.9, 1.1],
    }


def test_a_run_with_every_augmentation_trains_reproducibly(tmp_path, processed):
    from torchstages.training.loop import TrainOutputs, train

    augment = {
        "vflip": True,
        "zoom": [0.8, 1.25],
        "brightness": 0.2,
        "contrast": 0.2,
        "erasing": 0.5,
        "mixup": 0.2,
        "cutmix": 1.0,
    }
    weights = []
    for name in ("a", "b"):
        d = tmp_path / name
        outputs = TrainOutputs(d / "w.safetensors", d / "card.json", d / "ckpt.pt", d / "live")
        card = train(tiny_train_params(epochs=2, augment=augment), processed, outputs)
        weights.append(outputs.weights.read_bytes())
    assert weights[0] == weights[1]
    assert card["augment"]["mixup"] == 0.2 and "saturation" not in card["augment"]
    for name, only in (("plain", {}), ("mixup", {"mixup": 0.4}), ("cutmix", {"cutmix": 1.0})):
        d = tmp_path / name
        outputs = TrainOutputs(d / "w.safetensors", d / "c.json", d / "k.pt", d / "l")
        train(tiny_train_params(epochs=2, augment=only), processed, outputs)
        weights.append(outputs.weights.read_bytes())
    assert len(set(weights)) == 4, "mixing alone changes what is trained"


def test_saturation_of_grey_images_is_refused_before_training(tmp_path, processed):
    from torchstages.training.loop import TrainOutputs, train

    d = tmp_path / "m"
    outputs = TrainOutputs(d / "w.safetensors", d / "card.json", d / "ckpt.pt", d / "live")
    with pytest.raises(UserError, match=r"train\.augment\.saturation: needs colour images"):
        train(tiny_train_params(augment={"saturation": 0.3}), processed, outputs)
    assert not d.exists()


def test_the_picture_adds_a_blended_row_and_names_what_is_on(processed):
    import numpy as np

    from torchstages.evaluation.train_figures import _more_settings, augmentation_sample

    images = np.load(processed / "train_images.npy")
    labels = np.load(processed / "train_labels.npy")
    aug = AugmentParams(cutmix=1.0, erasing=0.5, zoom=(0.9, 1.1))
    _, rows = augmentation_sample(images, labels, aug, seed=0)
    assert len(rows) == 5 and not (rows[4] == rows[3]).all()
    assert len(augmentation_sample(images, labels, AugmentParams(), seed=0)[1]) == 4
    assert _more_settings(aug) == ["zoom 0.9-1.1", "erasing 0.5", "cutmix 1"]
    assert _more_settings(AugmentParams()) == []


def test_the_report_lists_the_augmentation_the_card_records():
    from torchstages.evaluation.report import _params_rows

    params = {"train": {"augment": AugmentParams(mixup=0.2).model_dump(mode="json")}}
    rows = dict(_params_rows(params, "images", "classification", augment={"rotation": 10.0}))
    assert "train.augment.rotation" in rows and "train.augment.mixup" not in rows
    recorded = AugmentParams(mixup=0.2).recorded()
    rows = dict(_params_rows(params, "images", "classification", augment=recorded))
    assert rows["train.augment.mixup"] == "0.2" and "train.augment.cutmix" not in rows


def test_later_settings_are_refused_for_data_that_is_not_augmented():
    from torchstages.params.train import TrainParams
    from torchstages.training.data import params_for_kind

    table = {"kind": "table", "task": "classification"}
    params_for_kind(TrainParams(), table)  # crop and rotation: in every params.yaml, unread
    for augment, message in (
        (
            {"mixup": 0.2},
            r"train\.augment\.mixup: augments images; table data .* \(set it to 0\.0\)",
        ),
        ({"zoom": [0.9, 1.1]}, r"train\.augment\.zoom: .* \(set it to \[1\.0, 1\.0\]\)"),
    ):
        with pytest.raises(UserError, match=message):
            params_for_kind(TrainParams.model_validate({"augment": augment}), table)
    with pytest.raises(UserError, match=r"train\.augment\.erasing: augments images; text data"):
        params_for_kind(
            TrainParams(augment={"erasing": 0.5}), {"kind": "text", "task": "classification"}
        )
