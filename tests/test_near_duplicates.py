"""Near duplicates: generated near copies (JPEG at another quality, 1-pixel shift, resized up and
down, brightened) are grouped with their original; unrelated pictures are not; the band index
finds exactly the pairs a brute-force comparison finds; the split keeps groups together."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchstages.data.discover import discover_images
from torchstages.data.near_duplicates import (
    HASH_BITS,
    NearDuplicates,
    find_near_duplicates,
    group_ids,
    near_pairs,
    phash_files,
)
from torchstages.data.split import split_dataset

THRESHOLD = 16  # params.yaml's default


def _picture(seed: int, size: int = 256) -> Image.Image:
    """A photo-like RGB picture: random noise with a 1/f spectrum, like natural images."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    f[0, 0] = 1.0
    spectrum = rng.normal(size=(3, size, size)) + 1j * rng.normal(size=(3, size, size))
    x = np.real(np.fft.ifft2(spectrum / f)).transpose(1, 2, 0)
    x = (x - x.mean()) / x.std() * 45 + 128
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _copies(img: Image.Image) -> dict[str, bytes]:
    """The original as a JPEG at quality 95 and its near copies, as file bytes."""
    a = np.asarray(img)
    shifted = np.concatenate([a[:, :1], a[:, :-1]], axis=1)  # one pixel right, edge repeated
    brighter = np.clip(a.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    return {
        "original.jpg": _jpeg(img, 95),
        "jpeg60.jpg": _jpeg(img, 60),
        "shift1.jpg": _jpeg(Image.fromarray(shifted), 95),
        "up.png": _png(img.resize((384, 384), Image.Resampling.BICUBIC)),
        "down.png": _png(img.resize((160, 160), Image.Resampling.LANCZOS)),
        "brighter.png": _png(Image.fromarray(brighter)),
    }


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def raw_with_copies(tmp_path: Path) -> Path:
    """raw/<class>/: per class 3 pictures (256x256) with 5 near copies each, and 6 unrelated."""
    raw = tmp_path / "raw"
    for k in range(3):
        folder = raw / f"class{k}"
        folder.mkdir(parents=True)
        for p in range(3):
            for name, data in _copies(_picture(100 * k + p)).items():
                (folder / f"p{p}_{name}").write_bytes(data)
        for u in range(6):
            (folder / f"unrelated{u:02d}.png").write_bytes(_png(_picture(1000 + 100 * k + u)))
    return raw


def test_near_copies_are_grouped_and_unrelated_pictures_are_not(raw_with_copies):
    rows = discover_images(raw_with_copies)
    groups = find_near_duplicates(raw_with_copies, rows, THRESHOLD)
    expected = sorted(
        sorted(r.path for r in rows if r.path.startswith(f"class{k}/p{p}_"))
        for k in range(3)
        for p in range(3)
    )
    assert sorted([r.path for r in g] for g in groups) == expected


def test_a_file_that_does_not_decode_is_left_out_of_the_check(raw_with_copies):
    broken = raw_with_copies / "class1" / "p0_broken.png"
    broken.write_bytes(_png(_picture(100))[:300])  # truncated copy of class1/p0's picture
    rows = discover_images(raw_with_copies)
    assert "class1/p0_broken.png" in {r.path for r in rows}
    groups = find_near_duplicates(raw_with_copies, rows, THRESHOLD)
    assert len(groups) == 9 and all("broken" not in r.path for g in groups for r in g)


def test_each_kind_of_copy_is_within_the_default_threshold(raw_with_copies):
    """Which edits the hash tolerates, and by how much (a margin under the threshold)."""
    folder = raw_with_copies / "class0"
    bits, ok = phash_files(sorted(folder.glob("p0_*")), workers=1)
    assert ok.all()
    names = [p.name for p in sorted(folder.glob("p0_*"))]
    original = bits[names.index("p0_original.jpg")]
    distance = {n: int((b != original).sum()) for n, b in zip(names, bits, strict=True)}
    assert max(distance.values()) <= THRESHOLD, distance
    unrelated, _ = phash_files(sorted(folder.glob("unrelated*")), workers=1)
    assert min(int((u != original).sum()) for u in unrelated) > 3 * THRESHOLD


def test_16_bit_pictures_are_hashed_as_build_dataset_reads_them(tmp_path):
    """A 16-bit scan whose values pass 255: PIL's grey conversion clipped it to white, so every
    such picture hashed alike (false copies) and none matched its 8-bit twin (a missed one)."""
    folder = tmp_path / "c"
    folder.mkdir()
    grey = [np.asarray(_picture(seed).convert("L")) for seed in (1, 2)]
    for k, pixels in enumerate(grey):
        Image.fromarray(pixels).save(folder / f"eight{k}.png")
        Image.fromarray(pixels.astype(np.uint16) * 257).save(folder / f"sixteen{k}.png")
    assert Image.open(folder / "sixteen0.png").mode.startswith("I")
    paths = sorted(folder.glob("*.png"))
    bits, ok = phash_files(paths, workers=1)
    assert ok.all()
    pairs = {tuple(sorted((paths[i].stem, paths[j].stem))) for i, j in near_pairs(bits, THRESHOLD)}
    assert pairs == {("eight0", "sixteen0"), ("eight1", "sixteen1")}


@pytest.mark.parametrize("threshold", [0, 3, 16, 40])
def test_band_index_finds_exactly_the_brute_force_pairs(threshold):
    rng = np.random.default_rng(threshold)
    bits = rng.random((400, HASH_BITS)) < 0.5
    # plant copies at every distance from 0 to threshold + 2 (the last two must not be found)
    for d in range(threshold + 3):
        i, j = rng.choice(400, 2, replace=False)
        bits[j] = bits[i]
        bits[j, rng.choice(HASH_BITS, d, replace=False)] ^= True
    distance = (bits[:, None, :] != bits[None, :, :]).sum(2)
    i, j = np.nonzero(np.triu(distance <= threshold, 1))
    assert np.array_equal(near_pairs(bits, threshold), np.stack([i, j], 1))


def test_groups_are_connected_components():
    pairs = np.array([[0, 3], [3, 5], [1, 2], [6, 7], [5, 7]])
    # 6-7 and 5-7 join 6 to 0-3-5: components {0, 3, 5, 6, 7}, {1, 2}, {4}, {8}
    assert group_ids(9, pairs).tolist() == [0, 1, 1, 0, 4, 0, 0, 0, 8]


def test_a_near_copy_under_another_class_is_named(raw_with_copies, tmp_path, caplog):
    """An exact copy in two classes was named as a label conflict; a re-encoded one was grouped
    without a word, though it is the more common way one picture gets two labels."""
    moved = raw_with_copies / "class0" / "p0_jpeg60.jpg"
    moved.rename(raw_with_copies / "class1" / "from_class0.jpg")
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    with caplog.at_level("WARNING", logger="torchstages"):
        summary = split_dataset(
            raw_with_copies, tmp_path / "s", fractions, 1, NearDuplicates("group", THRESHOLD)
        )
    conflicts = summary["near_duplicates"]["label_conflicts"]
    assert len(conflicts) == 1 and "class1/from_class0.jpg" in conflicts[0]
    assert "class0/p0_original.jpg" in conflicts[0]
    assert "1 group of near-duplicate pictures under different classes" in caplog.text


def test_split_keeps_groups_together_and_report_mode_only_counts(raw_with_copies, tmp_path):
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    grouped = split_dataset(
        raw_with_copies, tmp_path / "g", fractions, 1, NearDuplicates("group", THRESHOLD)
    )
    near = grouped["near_duplicates"]
    assert (near["groups"], near["files"], near["groups_across_splits"]) == (9, 54, 0)
    assert "label_conflicts" not in near  # every group within one class
    assert near["largest_group"] == 6
    first = near["examples"][0]
    splits = {p.split(" (")[1].rstrip(")") for p in first}
    assert first[0].startswith("class0/p0_brighter.png (") and len(splits) == 1
    with Image.open(tmp_path / "g/near_duplicates.png") as sheet:  # 8 groups of 4 pictures shown
        assert sheet.size == (4 * 68 + 4, 8 * 68 + 4)
        assert sheet.convert("L").getextrema() != (96, 96)

    from torchstages.evaluation.report import _near_duplicates

    written = json.loads((tmp_path / "g/summary.json").read_text())
    section = "\n".join(_near_duplicates(written["near_duplicates"]))
    assert section.startswith("## Near duplicates\n\n9 groups of near copies (54 files")
    assert "each kept within one split" in section and "- class0/p0_brighter.png (" in section
    assert "The first 5 groups:" in section and section.count("\n- ") == 5  # of 9

    plain = split_dataset(raw_with_copies, tmp_path / "p", fractions, 1)
    reported = split_dataset(
        raw_with_copies, tmp_path / "r", fractions, 1, NearDuplicates("report", THRESHOLD)
    )
    assert "near_duplicates" not in plain
    for name in ("train", "val", "test"):  # report mode leaves the split as it was
        assert (tmp_path / "r" / f"{name}.csv").read_text() == (
            tmp_path / "p" / f"{name}.csv"
        ).read_text()
    across = reported["near_duplicates"]["groups_across_splits"]
    assert 0 < across <= 9, "6 files of a group, split 3:1.5:1.5 without the check: most straddle"
    assert reported["totals"] == plain["totals"]
