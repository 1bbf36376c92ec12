"""The predict/serve side of a data kind, in one place: raw input bytes -> the model's named
input arrays for one sample. No torch here: predict and serve start without it.

A new kind adds a reader class with the same three members and one branch in
:func:`reader_for`; predict's input expansion, batching and output, and the HTTP service, are
generic over readers.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np
from PIL import Image

from torchstages.data.discover import is_image_bytes, not_image_reason
from torchstages.data.images import BadImageError, ImageTooLarge, Preprocessing, decode_image
from torchstages.errors import UserError
from torchstages.kinds import kind_of

__all__ = [
    "Reader",
    "ImageReader",
    "InputTooLarge",
    "InvalidPart",
    "reader_for",
    "DEFAULT_MAX_PIXELS",
]

# serve's default, pixels decoded per image (~120 MB of RGB); predict's is build-dataset's
DEFAULT_MAX_PIXELS = 40_000_000


class InputTooLarge(UserError):
    """An input over a size limit (serve answers 413, not 400)."""


class InvalidPart(UserError):
    """A part of a JSON request that cannot be used; ``part`` names where it is (``rows[3].x1``),
    so serve can answer ``{"error": ..., "part": ...}`` with ``status``."""

    def __init__(self, part: str, message: str, status: int = 400) -> None:
        super().__init__(f"{part}: {message}")
        self.part, self.status = part, status


class Reader(Protocol):
    """Turns one raw input (a file's bytes, an upload) into the model's named input arrays."""

    def accepts(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (16 bytes) is an input, for folder walks."""
        ...

    def decode(self, data: bytes, name: str) -> dict[str, np.ndarray]:
        """One sample per input name, without the batch axis; ``UserError`` naming ``name``."""
        ...


class ImageReader:
    """Images: the same decode and resize as build-dataset (``data/images.py``), and a pixel
    limit checked on the header before any pixel is decoded (decompression bombs)."""

    def __init__(self, preprocessing: dict, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.prep = Preprocessing.from_dict(preprocessing)
        self.max_pixels = max_pixels

    def accepts(self, head: bytes) -> bool:
        return is_image_bytes(head)

    def decode(self, data: bytes, name: str) -> dict[str, np.ndarray]:
        reason = not_image_reason(data)
        if reason is not None:  # what the split stage would have said of it
            raise BadImageError(name, reason)
        try:
            # the limit counts the pixels decoded, as in build-dataset: a 48-megapixel JPEG
            # decodes at 1/8 scale for a small model
            return {"pixels": decode_image(data, name, self.prep, self.max_pixels)}
        except ImageTooLarge as exc:
            width, height = exc.size
            raise InputTooLarge(
                f"{name}: {width}x{height} is {width * height:,} pixels to decode, over the limit "
                f"of {self.max_pixels:,}"
            ) from None
        except Image.DecompressionBombError as exc:  # frames or layers beyond the header's size
            raise InputTooLarge(f"{name}: {exc}") from None


def reader_for(metadata: dict[str, str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Reader:
    """The reader for the data kind named in an exported model's metadata."""
    kind = kind_of(metadata)
    if kind == "images":
        return ImageReader(json.loads(metadata["preprocessing"]), max_pixels)
    raise UserError(f"model: data kind {kind!r} has no reader for predict/serve (known: images)")
