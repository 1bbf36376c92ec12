"""Messy real folders: every case of the README's table, generated here (no binary fixtures), with
its one decided outcome: decoded by a stated rule, skipped and named, a bad image, or an error."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from conftest import draw_class
from torchstages.data.build import build_dataset
from torchstages.data.discover import discover
from torchstages.data.images import BadImageError, Preprocessing, decode_image
from torchstages.data.split import split_dataset
from torchstages.errors import UserError
from torchstages.kinds import detect_kind
from torchstages.params.build_dataset import BuildDatasetParams

GRAY = Preprocessing((8, 8), "grayscale", "stretch", "nearest")
RGB = Preprocessing((8, 8), "rgb", "stretch", "nearest")
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one): (H, W, 3) uint16."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def tiff_16bit_rgb(pixels: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit RGB TIFF (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    tags = [(256, width), (257, height), (258, None), (259, 1), (262, 2), (273, None),
            (277, 3), (278, height), (279, len(data)), (284, 1)]  # fmt: skip
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    out = b"II*\0" + struct.pack("<IH", 8, len(tags))
    for tag, value in tags:
        if tag == 258:  # three BitsPerSample values, stored after the IFD
            out += struct.pack("<HHII", tag, 3, 3, ifd_end)
        elif tag in (273, 279):
            out += struct.pack("<HHII", tag, 4, 1, ifd_end + 6 if tag == 273 else value)
        else:
            out += struct.pack("<HHIHH", tag, 3, 1, value, 0)
    return out + struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + data


def png_bomb(width: int = 200_000, height: int = 200_000) -> bytes:
    """A PNG header claiming 40 gigapixels, with a few bytes of data: never decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def ycck_jpeg(cmyk: tuple[int, int, int, int]) -> bytes:
    """A YCCK JPEG (Adobe transform 2) of one colour: libjpeg turns Y, Cb, Cr back into the
    inverted C, M, Y; Pillow writes CMYK components inverted, hence the 255 - x."""
    y, cb, cr = Image.new("RGB", (1, 1), cmyk[:3]).convert("YCbCr").getpixel((0, 0))
    img = Image.new("CMYK", (16, 16), (255 - y, 255 - cb, 255 - cr, cmyk[3]))
    data = bytearray(save(img, "JPEG", quality=100))
    adobe = data.index(b"Adobe")
    data[adobe + 11] = 2  # transform flag: 0 = CMYK, 2 = YCCK
    return bytes(data)


def oriented(kind: str) -> bytes:
    """A 4x2 image (one white pixel, top left) whose metadata says: rotate 90° clockwise."""
    img = Image.new("L", (4, 2), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    if kind == "jpeg-exif":
        return save(img, "JPEG", exif=exif.tobytes(), quality=100)
    if kind == "png-exif":
        return save(img, "PNG", exif=exif)
    info = PngImagePlugin.PngInfo()
    if kind == "png-xmp":
        info.add_itxt(
            "XML:com.adobe.xmp",
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
            '22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>',
        )
    else:  # ImageMagick's PNG text chunk
        raw = exif.tobytes().hex()
        lines = "\n".join(raw[i : i + 72] for i in range(0, len(raw), 72))
        info.add_text("Raw profile type exif", f"\nexif\n{len(raw) // 2:8d}\n{lines}\n")
    return save(img, "PNG", pnginfo=info)


def decoded(data: bytes, prep: Preprocessing = GRAY) -> np.ndarray:
    return decode_image(data, "case", prep)


# ---- decoded by a stated rule ----


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grayscale_keeps_its_top_8_bits_never_clipped(fmt):
    gradient = np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8)
    out = decoded(save(Image.fromarray(gradient), fmt))[0]
    assert np.array_equal(out, (gradient >> 8).astype(np.uint8))
    assert (out == 255).mean() < 0.05  # clipping made 99.6% of it white


@pytest.mark.parametrize("encode", [png_16bit_rgb, tiff_16bit_rgb])
def test_16bit_rgb_keeps_its_top_8_bits(encode):
    pixels = np.zeros((8, 8, 3), np.uint16)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 65535, 32768, 256
    assert decoded(encode(pixels), RGB)[:, 0, 0].tolist() == [255, 128, 1]


def test_float_tiff_in_0_1_scales_by_255_and_others_by_their_own_range():
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert np.array_equal(decoded(save(Image.fromarray(ramp), "TIFF"))[0], np.rint(ramp * 255))
    wide = ramp * 1000 - 300
    wide[0, 0] = np.nan  # a missing value becomes the image's lowest
    out = decoded(save(Image.fromarray(wide), "TIFF"))[0]
    low, high = np.nanmin(wide), np.nanmax(wide)
    want = np.rint((np.nan_to_num(wide, nan=low) - low) * 255 / (high - low))
    assert np.array_equal(out, want) and out.min() == 0 and out.max() == 255


def test_one_bit_image_is_black_and_white():
    img = Image.fromarray(np.eye(8, dtype=bool))
    assert img.mode == "1"
    assert np.array_equal(decoded(save(img, "PNG"))[0], np.eye(8, dtype=np.uint8) * 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_the_background_colour(mode):
    opaque = (255, 0, 0, 255) if mode != "LA" else (120, 255)
    if mode == "P":
        img = Image.new("P", (8, 8), 1)
        img.putpalette([0, 0, 0, 255, 0, 0])
        img.info["transparency"] = 0
        img.putpixel((0, 0), 0)
        data = save(img, "PNG", transparency=0)
    else:
        img = Image.new(mode, (8, 8), opaque)
        img.putpixel((0, 0), (0, 0, 0, 0) if mode == "RGBA" else (0, 0))
        data = save(img, "PNG")
    prep = Preprocessing((8, 8), "rgb", "stretch", "nearest", background=(10, 200, 30))
    out = decoded(data, prep)
    assert out[:, 0, 0].tolist() == [10, 200, 30]  # transparent: the background, not black
    assert out[:, 0, 1].tolist() == ([255, 0, 0] if mode != "LA" else [120] * 3)


def test_half_transparent_pixels_mix_with_the_background():
    img = Image.new("LA", (8, 8), (0, 128))
    prep = Preprocessing((8, 8), "grayscale", "stretch", "nearest")  # default background white
    assert decoded(save(img, "PNG"), prep)[0, 0, 0] == 127  # (0·128 + 255·127) / 255


def test_cmyk_and_ycck_jpegs_decode_to_the_same_colour():
    colour = (200, 60, 30, 20)
    cmyk = decoded(save(Image.new("CMYK", (16, 16), colour), "JPEG", quality=100), RGB)
    ycck = decoded(ycck_jpeg(colour), RGB)
    assert np.abs(cmyk.astype(int) - ycck.astype(int)).max() <= 4
    assert cmyk[:, 0, 0].tolist() != [0, 0, 0]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_files_give_their_first_frame(fmt):
    frames = [Image.new("RGB", (8, 8), (v, v, v)) for v in (200, 50, 90)]
    data = save(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert abs(int(decoded(data)[0, 0, 0]) - 200) <= 2


@pytest.mark.parametrize("kind", ["jpeg-exif", "png-exif", "png-xmp", "png-text"])
def test_orientation_metadata_is_applied(kind):
    prep = Preprocessing((4, 2), "grayscale", "stretch", "nearest")  # (height, width): upright
    out = decoded(oriented(kind), prep)[0]
    assert out.shape == (4, 2)
    assert out[0, 1] > 200 and out[0, 0] < 60  # top left moved to top right


def test_decompression_bomb_is_a_bad_image_naming_the_file_and_the_param():
    with pytest.raises(BadImageError, match=r"^case: 200000x200000 = .*build_dataset\.max_pixels"):
        decoded(png_bomb())


def test_huge_jpeg_decodes_at_reduced_scale_within_the_limit():
    big = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (512, 8)))  # 2048x512
    data = save(big, "JPEG")
    assert decode_image(data, "big", GRAY, max_pixels=2048 * 512 // 32).shape == (1, 8, 8)
    with pytest.raises(BadImageError, match="max_pixels"):  # a PNG cannot decode smaller
        decode_image(save(big, "PNG"), "big", GRAY, max_pixels=2048 * 512 // 32)


# ---- a whole messy folder: split and build-dataset ----

BAD = {  # looks like an image (its first bytes), does not decode
    "truncated.jpg": lambda good: save(Image.fromarray(good), "JPEG")[:200],
    "truncated.png": lambda good: save(Image.fromarray(good), "PNG")[:60],
    "bomb.png": lambda good: png_bomb(),
}
NOT_IMAGES = {  # skipped by split, named in summary.json with the reason
    "empty.jpg": (b"", "empty file"),
    "notes.jpg": (b"shopping list\n", "not an image"),
    "error.jpg": (b"<!DOCTYPE html><html><body>404</body></html>", "HTML or XML page"),
    ".hidden.png": (None, "hidden file"),
    ".DS_Store": (b"\0\0\0\1Bud1", "hidden file"),
    "Thumbs.db": (b"\xd0\xcf\x11\xe0", "Windows thumbnail cache"),
}


def messy_folder(raw: Path) -> Path:
    """Three classes of good images in every shape of mess, plus every bad and non-image case."""
    rng = np.random.default_rng(0)
    outside = raw.parent / "outside.png"
    outside.write_bytes(save(Image.fromarray(draw_class(0, rng)), "PNG"))
    for k, label in enumerate(["cat", "dog", "vögel"]):
        for n in range(5):
            sub = raw / label / ("nested/deeper" if n == 4 else "")
            sub.mkdir(parents=True, exist_ok=True)
            name = f"{n} with spaces.png" if n == 3 else f"{n}.png"
            Image.fromarray(draw_class(k, rng)).save(sub / name)
    good = draw_class(1, rng)
    for name, make in BAD.items():
        (raw / "dog" / name).write_bytes(make(good))
    for name, (data, _) in NOT_IMAGES.items():
        (raw / "cat" / name).write_bytes(
            save(Image.fromarray(good), "PNG") if data is None else data
        )
    (raw / "__MACOSX" / "cat").mkdir(parents=True)
    (raw / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\0\5\26\7")
    (raw / "readme.txt").write_text("a file outside the class folders\n")
    os.symlink(raw / "cat" / "0.png", raw / "cat" / "link-inside.png")
    os.symlink(outside, raw / "cat" / "link-outside.png")
    os.symlink("/etc/passwd", raw / "dog" / "passwd.jpg")
    os.symlink(raw / "missing.png", raw / "dog" / "broken.png")
    return raw


def test_split_names_every_file_it_skips_with_the_reason(tmp_path):
    raw = messy_folder(tmp_path / "raw")
    # the split stage first decides the kind: the readme.txt beside the class folders is no table
    assert detect_kind(raw) == "images"
    summary = split_dataset(raw, tmp_path / "splits", FRACTIONS, seed=0)
    skipped = {s["path"]: s["reason"] for s in summary["skipped"]}
    for name, (_, reason) in NOT_IMAGES.items():
        assert reason in skipped[f"cat/{name}"], name
    assert "outside the data folder" in skipped["cat/link-outside.png"]
    assert "outside the data folder" in skipped["dog/passwd.jpg"]
    assert skipped["dog/broken.png"] == "broken symlink"
    assert "zip" in skipped["__MACOSX"] and "class folder" in skipped["readme.txt"]
    on_disk = json.loads((tmp_path / "splits/summary.json").read_text())
    assert on_disk["skipped"] == summary["skipped"]
    used = {row for name in ("train", "val", "test") for row in _paths(tmp_path / "splits", name)}
    assert {"cat/link-inside.png", "vögel/nested/deeper/4.png", "cat/3 with spaces.png"} <= used
    assert {f"dog/{name}" for name in BAD} <= used  # image signatures: build-dataset decides
    assert not used & set(skipped)


def _paths(splits: Path, name: str) -> list[str]:
    return [line.split(",")[0] for line in (splits / f"{name}.csv").read_text().splitlines()[1:]]


def test_on_bad_image_error_lists_every_bad_file_in_one_run(tmp_path):
    raw = messy_folder(tmp_path / "raw")
    split_dataset(raw, tmp_path / "splits", FRACTIONS, seed=0)
    params = BuildDatasetParams(image_size=8, workers=1)
    with pytest.raises(UserError) as caught:
        build_dataset(params, raw, tmp_path / "splits", tmp_path / "processed")
    message = str(caught.value)
    assert message.startswith("3 bad images under data/raw")
    assert "\n" not in message
    for name in BAD:
        assert f"dog/{name}: " in message
    assert "max_pixels" in message and "truncated" in message
    assert not (tmp_path / "processed").exists()


def test_a_long_list_of_bad_images_names_the_first_and_counts_the_rest():
    """max_pixels: 1 makes every image a bad one: not thousands of names on one line."""
    from torchstages.data.bad_images import NAMED, bad_images_message

    entries = [{"path": f"cat/{i}.png", "reason": "too large"} for i in range(NAMED + 15)]
    message = bad_images_message(entries)
    assert message.startswith(f"{NAMED + 15} bad images under data/raw")
    assert f"cat/{NAMED - 1}.png: too large; … and 15 more" in message
    assert f"cat/{NAMED}.png" not in message
    assert bad_images_message(entries[:NAMED]).endswith(f"cat/{NAMED - 1}.png: too large")


def test_on_bad_image_skip_drops_them_and_lists_them_with_reasons(tmp_path):
    raw = messy_folder(tmp_path / "raw")
    split_dataset(raw, tmp_path / "splits", FRACTIONS, seed=0)
    params = BuildDatasetParams(image_size=8, workers=2, on_bad_image="skip")
    counts = build_dataset(params, raw, tmp_path / "splits", tmp_path / "processed")
    meta = json.loads((tmp_path / "processed/meta.json").read_text())
    assert sorted(s["path"] for s in meta["skipped"]) == sorted(f"dog/{n}" for n in BAD)
    assert all(s["reason"] and s["split"] and s["label"] == "dog" for s in meta["skipped"])
    rows = sum(len(_paths(tmp_path / "splits", n)) for n in ("train", "val", "test"))
    assert sum(counts.values()) == rows - len(BAD)
    labels = np.load(tmp_path / "processed/train_labels.npy")
    assert len(labels) == counts["train"]


def test_split_csv_paths_cannot_leave_the_data_folder(tmp_path, image_folder):
    split_dataset(image_folder, tmp_path / "splits", FRACTIONS, seed=0)
    csv = tmp_path / "splits/val.csv"
    lines = csv.read_text().splitlines()
    for escape in ("../outside.png", "/etc/passwd", "class0/../../outside.png"):
        path, *rest = lines[1].split(",")
        csv.write_text("\n".join([lines[0], ",".join([escape, *rest]), *lines[2:]]) + "\n")
        with pytest.raises(UserError, match="must stay inside"):
            build_dataset(
                BuildDatasetParams(image_size=8, workers=1), image_folder, tmp_path / "splits",
                tmp_path / "processed",
            )  # fmt: skip


# ---- folders that cannot make a dataset: an error saying what is needed ----


def _folder(raw: Path, counts: dict[str, int]) -> Path:
    rng = np.random.default_rng(1)
    for k, (label, n) in enumerate(counts.items()):
        (raw / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(draw_class(k % 3, rng)).save(raw / label / f"{i}.png")
    return raw


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"a": 4, "b": 4, "empty": 0}, r"class folders without images: \['empty'\] \(add images"),
        ({"a": 4, "b": 2}, r"fewer than 3 images \(need one each for train, val and test\)"),
        ({"only": 5}, r"found only class \['only'\]; a classifier needs at least 2 classes"),
    ],
)
def test_folders_that_cannot_be_split_say_what_is_needed(tmp_path, counts, message):
    with pytest.raises(UserError, match=message):
        discover(_folder(tmp_path / "raw", counts))


def test_a_class_whose_copies_fill_fewer_than_three_splits_is_refused(tmp_path):
    """Three files, two of them equal: copies stay together, so a split would get none of the
    class, and its score there (and every macro average) would be made up."""
    raw = _folder(tmp_path / "raw", {"a": 4, "b": 4, "few": 2})
    (raw / "few" / "0_copy.png").write_bytes((raw / "few" / "0.png").read_bytes())
    said = r"class 'few' has no image in the (val|test) split: its 3 images include identical"
    with pytest.raises(UserError, match=said):
        split_dataset(raw, tmp_path / "splits", FRACTIONS, seed=3)
    assert not (tmp_path / "splits").exists()


def test_class_folders_holding_folders_are_classes_with_their_sub_folders(tmp_path):
    """Unless every top folder is named for a split (test_given_splits.py)."""
    for part in ("cats", "dogs"):
        _folder(tmp_path / "nested" / part, {"indoor": 2, "outdoor": 2})
    assert {r.label for r in discover(tmp_path / "nested").rows} == {"cats", "dogs"}


@pytest.mark.parametrize("names", [("Cat", "cat"), ("caf\u00e9", "cafe\u0301")])
def test_class_folders_one_file_system_would_merge_are_an_error(tmp_path, names):
    """macOS and Windows would merge them into one class, with other files in it."""
    raw = _folder(tmp_path / "raw", {names[0]: 3, "b": 3})
    (raw / names[1]).mkdir()
    for v in (10, 100, 200):
        Image.new("L", (4, 4), v).save(raw / names[1] / f"other{v}.png")
    with pytest.raises(UserError, match="differ only by letter case or Unicode normalisation"):
        discover(raw)


@pytest.mark.parametrize("names", [("A.png", "a.png"), ("caf\u00e9.png", "cafe\u0301.png")])
def test_names_one_file_system_would_merge_are_an_error(tmp_path, names):
    raw = _folder(tmp_path / "raw", {"a": 3, "b": 3})
    for name, v in zip(names, (10, 200), strict=True):
        Image.new("L", (4, 4), v).save(raw / "a" / name)
    with pytest.raises(UserError, match="differ only by letter case or Unicode normalisation"):
        discover(raw)
