"""The one preprocessing: an image file becomes the uint8 (C, H, W) array the model was trained on.

build-dataset, predict and serve all call :func:`decode_image` with the settings
stored in ``meta.json`` / the model card, so training and serving cannot drift apart.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from torchstages.errors import UserError

__all__ = [
    "Preprocessing",
    "BadImageError",
    "ImageTooLarge",
    "decode_image",
    "resize_image",
    "to_8bit_opaque",
    "composite",
    "MODES",
    "RESAMPLE",
    "BACKGROUND",
    "MAX_PIXELS",
]

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
MODES = {"grayscale": "L", "rgb": "RGB"}
BACKGROUND = (255, 255, 255)
# decoded pixels per image: about 300 MB of RGB, far above any photo, far below a bomb's billions
MAX_PIXELS = 100_000_000
# the limit above is checked per image, before decoding; Pillow's own global one would warn or
# raise (DecompressionBombError) with a message that names no file
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn a file into model input; stored in meta.json and the model card."""

    image_size: tuple[int, int]  # (height, width)
    color: str  # "grayscale" | "rgb"
    resize: str  # "stretch" | "crop" | "pad"
    interpolation: str
    mean: tuple[float, ...] = ()  # per channel, on the 0..1 scale, from the train split
    std: tuple[float, ...] = ()
    background: tuple[int, int, int] = BACKGROUND  # what transparent pixels are composited on

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        # written only when set: meta.json and model cards made before the key hash the same
        if self.background == BACKGROUND:
            del d["background"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(
            image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
            color=d["color"],
            resize=d["resize"],
            interpolation=d["interpolation"],
            mean=tuple(d.get("mean", ())),
            std=tuple(d.get("std", ())),
            background=tuple(d.get("background", BACKGROUND)),
        )


class BadImageError(UserError):
    """A file that looks like an image but cannot be used; ``reason`` says why, without the name."""

    def __init__(self, name: str | Path, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


class ImageTooLarge(BadImageError):
    """More pixels to decode than the limit: ``size`` (width, height) is what would be decoded."""

    def __init__(self, name: str | Path, size: tuple[int, int], max_pixels: int) -> None:
        width, height = size
        super().__init__(
            name,
            f"{width}x{height} = {width * height} pixels to decode, above "
            f"build_dataset.max_pixels ({max_pixels}): a decompression bomb, or raise "
            "the limit if the image is genuine",
        )
        self.size = size


def decode_image(
    data: bytes, name: str | Path, prep: Preprocessing, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """An image file's bytes, decoded, its orientation applied, transparency and high bit depths
    flattened, converted to the colour mode and resized: uint8 array (C, H, W). ``name`` is only
    for the error message.

    Animated files give their first frame. ``max_pixels`` bounds the pixels actually decoded (a
    JPEG decodes at 1/2, 1/4 or 1/8 scale first), checked from the header before any pixel is
    decoded, so a decompression bomb is an error naming the file, not an out-of-memory kill.
    """
    try:
        # one read() instead of PIL's many small ones: most of a tiny PNG's cost is per-call overhead
        with Image.open(io.BytesIO(data)) as img:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; draft keeps at least the target size
            if img.format == "JPEG":
                img.draft(MODES[prep.color], (prep.image_size[1], prep.image_size[0]))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(name, img.size, max_pixels)
            img.load()
            if _may_be_rotated(img):
                img = ImageOps.exif_transpose(img)
            return resize_image(to_8bit_opaque(img, prep.background), prep)
    except UnidentifiedImageError:
        # PIL's message names the in-memory buffer (an address: no two runs alike)
        raise BadImageError(name, "cannot decode image (no image format recognises it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(name, f"cannot decode image ({exc})") from None


def to_8bit_opaque(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """An image PIL converts to L or RGB without clipping or dropping alpha.

    16-bit integers keep their top 8 bits (0..65535 -> 0..255), the rule Pillow itself applies to
    16-bit RGB PNGs, so brightness means the same in every image; 32-bit integers that exceed
    16 bits and floats outside 0..1 are scaled by the image's own range (floats in 0..1 by 255).
    Transparent pixels are composited on ``background``.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img), mode), "L")
    if (mode == "P" and "transparency" in img.info) or mode in ("PA", "La", "RGBa"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("LA", "RGBA"):
        return composite(np.asarray(img), mode, background)
    return img


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    if mode != "F":
        values = values.astype(np.int64)
        if mode != "I" or (values.min(initial=0) >= 0 and values.max(initial=0) <= 0xFFFF):
            return (values >> 8).astype(np.uint8)
        low, high = float(values.min()), float(values.max())
    else:
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if low >= 0 and high <= 1:
            low, high = 0.0, 1.0
        values = np.nan_to_num(values.astype(np.float64), nan=low, posinf=high, neginf=low)
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros(values.shape)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def composite(pixels: np.ndarray, mode: str, background: tuple[int, int, int]) -> Image.Image:
    """(H, W, 2|4) uint8 LA or RGBA pixels over an opaque ``background``: an RGB image."""
    colour = pixels[..., :1].repeat(3, axis=-1) if mode == "LA" else pixels[..., :3]
    alpha = pixels[..., -1:].astype(np.uint32)
    bg = np.asarray(background, np.uint32)
    mixed = (colour.astype(np.uint32) * alpha + bg * (255 - alpha) + 127) // 255
    return Image.fromarray(mixed.astype(np.uint8), "RGB")


def resize_image(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """A decoded, upright image in ``prep``'s colour mode and size: uint8 array (C, H, W)."""
    height, width = prep.image_size
    mode = MODES[prep.color]
    if img.mode != mode:
        img = img.convert(mode)
    resample = RESAMPLE[prep.interpolation]
    if prep.resize == "crop":
        img = ImageOps.fit(img, (width, height), method=resample)
    elif prep.resize == "pad":
        img = ImageOps.pad(img, (width, height), method=resample, color=0)
    elif img.size != (width, height):
        img = img.resize((width, height), resample=resample)
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:  # (H, W) -> (1, H, W)
        return array[None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))  # PIL is HWC in RGB order -> CHW


# where Pillow's exif_transpose looks for an orientation (EXIF block, XMP packet, PNG text chunk)
_ORIENTATION_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif")


def _may_be_rotated(img: Image.Image) -> bool:
    """False when the file carries no orientation at all: parsing EXIF costs more than decoding
    a small PNG, and almost no dataset image has it."""
    return img.format in ("TIFF", "MPO") or any(key in img.info for key in _ORIENTATION_KEYS)
