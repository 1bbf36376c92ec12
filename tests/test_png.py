"""The batched PNG path must give exactly what PIL gives, and leave everything unusual to PIL."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from torchstages.data.decode import decode_rows, resize_batch
from torchstages.data.discover import Row
from torchstages.data.images import Preprocessing, decode_image
from torchstages.data.png import decode_batch, parse_plain_png, unfilter

_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_PIL_MODE = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(pixels: np.ndarray, filters: list[int], interlace: int = 0) -> bytes:
    """A PNG written straight from the specification, with the given filter type on each row."""
    height, width, bpp = pixels.shape
    rows = pixels.reshape(height, width * bpp).astype(int)
    prior = np.zeros(width * bpp, int)
    lines = []
    for row, kind in zip(rows, filters, strict=True):
        out = [kind]
        for x in range(width * bpp):
            a = int(row[x - bpp]) if x >= bpp else 0
            b, c = int(prior[x]), (int(prior[x - bpp]) if x >= bpp else 0)
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            out.append((int(row[x]) - predictor) % 256)
        lines.append(bytes(out))
        prior = row
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[bpp], 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + _chunk(b"IEND", b"")
    )


def _pil_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img).reshape(img.height, img.width, -1)


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
def test_every_filter_type_decodes_to_what_pil_decodes(bpp):
    rng = np.random.default_rng(bpp)
    images = rng.integers(0, 256, (6, 7, 5, bpp), dtype=np.uint8)
    images[0] = 255  # saturated rows exercise the modulo-256 wrap-around
    files = [encode_png(img, list(rng.integers(0, 5, 7))) for img in images]
    pngs = [parse_plain_png(f) for f in files]
    assert all(p is not None for p in pngs)
    pixels, mode = decode_batch(pngs)
    assert mode == _PIL_MODE[bpp]
    for f, img, got in zip(files, images, pixels, strict=True):
        assert np.array_equal(_pil_pixels(f), img)  # the test's encoder is right
        assert np.array_equal(got, img)


def test_pngs_written_by_pil_decode_identically():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 9, (10, 12, 3)), axis=1).astype(np.uint8)
    for mode, array in (
        ("L", smooth[..., 0]),
        ("RGB", smooth),
        ("RGBA", np.dstack([smooth, smooth[..., :1]])),
    ):
        buf = io.BytesIO()
        Image.fromarray(array, mode).save(buf, format="PNG", optimize=True)
        pixels, got_mode = decode_batch([parse_plain_png(buf.getvalue())])
        assert got_mode == mode and np.array_equal(pixels[0], _pil_pixels(buf.getvalue()))


def _saved(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def test_anything_unusual_is_left_to_pil():
    gray = Image.new("L", (8, 8), 7)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "hello")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: only PIL's path applies the orientation
    plain = _saved(gray)
    bad_crc = bytearray(plain)
    bad_crc[29] ^= 0xFF  # inside the IHDR checksum
    unusual = {
        "palette": _saved(gray.convert("P")),
        "16-bit": _saved(Image.new("I;16", (8, 8), 300)),
        "transparency": _saved(gray, transparency=7),
        "text chunk": _saved(gray, pnginfo=text),
        "exif": _saved(gray, exif=exif),
        "interlaced": encode_png(np.zeros((8, 8, 1), np.uint8), [0] * 8, interlace=1),
        "too large": _saved(Image.new("L", (65, 64))),
        "bad checksum": bytes(bad_crc),
        "truncated": plain[:40],
        "jpeg": _jpeg(gray),
    }
    assert parse_plain_png(plain) is not None
    for name, data in unusual.items():
        assert parse_plain_png(data) is None, name


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def test_unknown_filter_type_is_refused():
    scanlines = np.zeros((1, 2, 4), np.uint8)
    scanlines[0, 1, 0] = 5
    with pytest.raises(ValueError, match="filter"):
        unfilter(scanlines, 1)


@pytest.mark.parametrize(
    "size,color,resize,interpolation",
    [
        ((16, 16), "grayscale", "stretch", "bilinear"),
        ((28, 28), "grayscale", "stretch", "bilinear"),  # same size: no resize at all
        ((9, 20), "rgb", "stretch", "lanczos"),  # up in width, down in height
        ((16, 16), "grayscale", "stretch", "nearest"),
        ((40, 33), "rgb", "stretch", "bicubic"),
        ((16, 12), "rgb", "crop", "bilinear"),
        ((12, 16), "grayscale", "pad", "bicubic"),
    ],
)
@pytest.mark.parametrize("source_mode", ["L", "RGB", "RGBA"])
def test_resize_batch_equals_resize_image_one_by_one(
    size, color, resize, interpolation, source_mode
):
    rng = np.random.default_rng(1)
    channels = len(source_mode)
    pixels = rng.integers(0, 256, (5, 28, 21, channels), dtype=np.uint8)
    pixels[:, :, :7] //= 8  # edges and flat areas, not only noise
    prep = Preprocessing(size, color, resize, interpolation)
    got = resize_batch(pixels, source_mode, prep)
    for image, batched in zip(pixels, got, strict=True):
        data = _saved(Image.fromarray(image[..., 0] if channels == 1 else image, source_mode))
        assert np.array_equal(batched, decode_image(data, "x.png", prep))


def _rows(folder, names):
    return [Row(path=n, label=0, sha256=_sha(folder / n)) for n in names]


def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("count", [3, 200])  # a group too small to batch, and one batched
def test_decode_rows_mixes_the_batched_path_and_pil(tmp_path, count):
    rng = np.random.default_rng(2)
    names = []
    for i in range(count):
        array = rng.integers(0, 256, (10, 10), dtype=np.uint8)
        (tmp_path / f"g{i}.png").write_bytes(_saved(Image.fromarray(array, "L")))
        names.append(f"g{i}.png")
    (tmp_path / "palette.png").write_bytes(_saved(Image.new("L", (10, 10), 9).convert("P")))
    (tmp_path / "photo.jpg").write_bytes(_jpeg(Image.new("RGB", (30, 20), (9, 99, 200))))
    names += ["palette.png", "photo.jpg"]
    prep = Preprocessing((6, 6), "rgb", "stretch", "bilinear")
    out, bad = decode_rows(_rows(tmp_path, names), tmp_path, prep)
    assert bad == []
    for i, name in enumerate(names):
        assert np.array_equal(out[i], decode_image((tmp_path / name).read_bytes(), name, prep))


def test_a_bad_filter_byte_is_named_by_pil(tmp_path):
    good = encode_png(np.zeros((4, 4, 1), np.uint8), [0] * 4)
    lines = bytearray(zlib.decompress(good[33 + 8 : -12 - 4]))
    lines[5] = 9  # the second row's filter byte
    bad = good[:33] + _chunk(b"IDAT", zlib.compress(bytes(lines))) + _chunk(b"IEND", b"")
    for i in range(40):  # enough of the same shape to take the batched path
        (tmp_path / f"{i}.png").write_bytes(bad if i == 17 else good)
    rows = _rows(tmp_path, [f"{i}.png" for i in range(40)])
    _, bad = decode_rows(rows, tmp_path, Preprocessing((4, 4), "grayscale", "stretch", "bilinear"))
    assert [(i, reason.split(" (")[0]) for i, reason in bad] == [(17, "cannot decode image")]
