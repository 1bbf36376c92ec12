"""The one preprocessing: an image file becomes the uint8 (C, H, W) array the model was trained on.

build-dataset, predict and the export check all call :func:`load_image` with the settings stored
in ``meta.json`` / the model card, so training and serving cannot drift apart.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from torchstages.errors import UserError

__all__ = ["Preprocessing", "load_image", "decode_image", "resize_image", "MODES", "RESAMPLE"]

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
MODES = {"grayscale": "L", "rgb": "RGB"}


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn a file into model input; stored in meta.json and the model card."""

    image_size: tuple[int, int]  # (height, width)
    color: str  # "grayscale" | "rgb"
    resize: str  # "stretch" | "crop" | "pad"
    interpolation: str
    mean: tuple[float, ...] = ()  # per channel, on the 0..1 scale, from the train split
    std: tuple[float, ...] = ()

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(
            image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
            color=d["color"],
            resize=d["resize"],
            interpolation=d["interpolation"],
            mean=tuple(d.get("mean", ())),
            std=tuple(d.get("std", ())),
        )


def load_image(path: str | Path, prep: Preprocessing) -> np.ndarray:
    """Decode, apply EXIF orientation, convert colour mode and resize: uint8 array (C, H, W)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    return decode_image(data, path, prep)


def decode_image(data: bytes, name: str | Path, prep: Preprocessing) -> np.ndarray:
    """:func:`load_image` on bytes already read (``name`` is only for the error message)."""
    try:
        # one read() instead of PIL's many small ones: most of a tiny PNG's cost is per-call overhead
        with Image.open(io.BytesIO(data)) as img:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; draft keeps at least the target size
            if img.format == "JPEG":
                img.draft(MODES[prep.color], (prep.image_size[1], prep.image_size[0]))
            img.load()
            if _may_be_rotated(img):
                img = ImageOps.exif_transpose(img)
            return resize_image(img, prep)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{name}: cannot decode image ({exc})") from None


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
