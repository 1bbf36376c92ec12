"""The pictures: valid PNGs of a sensible size, identical bytes on a second run, readable content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchstages.evaluation.figures import (
    confusion_figure,
    curves_figure,
    gallery_figure,
    image_grid_figure,
    save_png,
)


def _check_png(path: Path, min_side: int = 200, max_side: int = 3000) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()  # a truncated or corrupt file raises here
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
        extrema = img.convert("L").getextrema()
    assert min_side <= width <= max_side and min_side // 2 <= height <= max_side, (width, height)
    assert extrema[0] < extrema[1], "a blank image"
    return width, height


def _digits(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, 8, 8), dtype=np.uint8)


@pytest.mark.parametrize("n_classes", [2, 10, 50])
def test_confusion_heatmap(tmp_path, n_classes):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, (n_classes, n_classes)) + np.diag(rng.integers(20, 30, n_classes))
    classes = [f"class_{k}" for k in range(n_classes)]
    save_png(confusion_figure(matrix, classes, "Confusion matrix (test)"), tmp_path / "c.png")
    width, height = _check_png(tmp_path / "c.png")
    assert width <= 2600, "capped for many classes"


def _contrast(a: float, b: float) -> float:
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def _luminance(color) -> float:
    from matplotlib.colors import to_rgb

    c = np.array(to_rgb(color))
    return float(
        np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) @ [0.2126, 0.7152, 0.0722]
    )


def test_confusion_numbers_are_readable_on_every_shade():
    """A hard case: diagonal shares from 0.05 to 0.95 and mistakes that take most of a row.
    Every non-zero count contrasts with its cell at least 3:1 (WCAG's bar for large or bold
    text); the old rule (white above 0.5, grey or red below) failed mid-range cells."""
    n = 20
    matrix = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        matrix[i, i] = round(100 * (0.05 + 0.9 * i / (n - 1)))
        matrix[i, (i + 1) % n] = 100 - matrix[i, i]  # 95 down to 5: dark to pale mistakes
    fig = confusion_figure(matrix, [f"c{k}" for k in range(n)], "hard")
    ax = fig.axes[0]
    image = ax.images[0]
    texts = [t for t in ax.texts if t.get_text() != "0"]
    assert len(texts) == 2 * n
    shares = image.get_array()

    def cell(t) -> float:
        x, y = t.get_position()
        return _luminance(image.cmap(image.norm(shares[round(y), round(x)])))

    worst = min(_contrast(_luminance(t.get_color()), cell(t)) for t in texts)
    assert worst >= 3.0, worst
    # pale mistakes (most of them) are still red, bold
    red = [t for t in texts if t.get_color() == "#a00000"]
    assert len(red) >= n // 2 and all(t.get_fontweight() == "bold" for t in red)


@pytest.mark.parametrize(("count", "channels"), [(0, 1), (2, 1), (16, 3)])
def test_gallery(tmp_path, count, channels):
    images = _digits(count, channels)
    fig = gallery_figure(images, [f"true a\npred b ({0.9:.2f})"] * count, "Most confidently wrong")
    save_png(fig, tmp_path / "g.png")
    width, _ = _check_png(tmp_path / "g.png", min_side=140)
    assert width >= 600, "wide enough for its title"


def test_gallery_captions_do_not_run_into_each_other():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    name = "american_pit_bull_terrier"  # an Oxford pets class
    fig = gallery_figure(_digits(8), [f"true {name}\npred {name} (0.93)"] * 8, "wrong")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    first, second = fig.axes[0], fig.axes[1]
    caption = first.title.get_window_extent(canvas.get_renderer())
    pitch = second.get_window_extent().x0 - first.get_window_extent().x0
    assert caption.width < pitch


def test_long_class_names_are_clipped_in_captions():
    from torchstages.evaluation.evaluate import _clipped

    assert _clipped("golden_retriever") == "golden_retriever"
    assert _clipped("a" * 30) == "a" * 23 + "…" and len(_clipped("a" * 30)) == 24


def test_image_grid_and_curves(tmp_path):
    rows = [_digits(5, seed=s) for s in range(4)]
    fig = image_grid_figure(rows, ["original", "a1", "a2", "a3"], list("abcde"), "What it sees")
    save_png(fig, tmp_path / "grid.png")
    _check_png(tmp_path / "grid.png")
    epochs = [1.0, 2.0, 3.0]
    panels = [
        ("loss", [(epochs, [1.0, 0.5, 0.2], "train"), (epochs, [1.2, 0.6, 0.4], "val")]),
        ("accuracy", [(epochs, [0.5, 0.7, 0.9], "train"), (epochs, [0.4, 0.6, 0.8], "val")]),
        ("learning rate", [(epochs, [0.1, 0.05, 0.0], "lr")]),
    ]
    save_png(curves_figure(panels, "Training curves", best_epoch=3), tmp_path / "curves.png")
    _check_png(tmp_path / "curves.png")


@pytest.mark.parametrize("epochs", [2, 3, 30])
def test_curves_mark_whole_epochs_only(epochs):
    x = [float(e) for e in range(1, epochs + 1)]
    fig = curves_figure([("loss", [(x, [1.0 / e for e in x], "train")])], "Training curves")
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(t == int(t) for t in ticks), ticks


def test_pngs_are_byte_stable(tmp_path):
    """No software stamp or time inside: the same data draws the same bytes (DVC sees no change)."""
    matrix = np.array([[5, 1], [0, 7]])
    for name in ("a.png", "b.png"):
        save_png(confusion_figure(matrix, ["x", "y"], "c"), tmp_path / name)
        save_png(gallery_figure(_digits(3), ["p"] * 3, "g"), tmp_path / f"g{name}")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "ga.png").read_bytes() == (tmp_path / "gb.png").read_bytes()
    with Image.open(tmp_path / "a.png") as img:
        assert "Software" not in img.info


def test_training_figures_from_dvclive_tsvs_and_processed(tmp_path, processed):
    from torchstages.evaluation.train_figures import augmentation_sample, draw_training_figures
    from torchstages.params.train import AugmentParams

    metrics = tmp_path / "live/plots/metrics"
    for split in ("train", "val"):
        (metrics / split).mkdir(parents=True)
        for name, values in [("loss", "0.9\n1\t0.4"), ("accuracy", "0.5\n1\t0.8")]:
            (metrics / split / f"{name}.tsv").write_text(f"step\t{name}\n0\t{values}\n")
    (metrics / "lr.tsv").write_text("step\tlr\n0\t0.01\n1\t0.005\n")
    aug = AugmentParams(crop_padding=1, rotation=10.0)
    for out in ("a", "b"):
        draw_training_figures(tmp_path / "live", processed, aug, 0, tmp_path / out, best_epoch=1)
    for name in ("curves.png", "augmented.png"):
        _check_png(tmp_path / "a" / name)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    images, labels = (
        np.load(processed / "train_images.npy"),
        np.load(processed / "train_labels.npy"),
    )
    picked, rows = augmentation_sample(images, labels, aug, seed=0)
    assert sorted(set(labels[picked].tolist())) == sorted(set(labels.tolist())), "every class"
    assert len(rows) == 4 and all(r.shape == rows[0].shape and r.dtype == np.uint8 for r in rows)
    assert (rows[0] == images[picked]).all(), "first row: the originals, untouched"
    assert not (rows[1] == rows[0]).all(), "then augmented"
