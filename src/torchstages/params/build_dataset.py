"""``build_dataset`` section: how image files become uint8 arrays."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from torchstages.data.images import BACKGROUND, MAX_PIXELS
from torchstages.params.base import Section


class BuildDatasetParams(Section):
    """Decoding, colour mode and resizing, applied once to every split (and again by predict)."""

    image_size: int | tuple[int, int] = Field(
        16, description="output size: one int for square images, or [height, width]"
    )
    color: Literal["grayscale", "rgb"] = Field(
        "grayscale", description="convert every image to 1-channel grayscale or 3-channel RGB"
    )
    resize: Literal["stretch", "crop", "pad"] = Field(
        "stretch",
        description="stretch to size; crop: scale the short side, centre-crop; pad: letterbox",
    )
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = Field(
        "bilinear", description="resampling filter (antialiased when shrinking)"
    )
    workers: int = Field(0, ge=0, description="decode processes; 0 = one per CPU core")
    on_bad_image: Literal["error", "skip"] = Field(
        "error",
        description="a file that looks like an image but does not decode: error lists every "
        "one; skip drops them and lists them in meta.json and the report",
    )
    background: tuple[
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
        Annotated[int, Field(ge=0, le=255)],
    ] = Field(BACKGROUND, description="[r, g, b] that transparent pixels are composited on")
    max_pixels: int = Field(
        MAX_PIXELS,
        ge=1,
        description="most pixels one image may decode to (JPEG: after reduced-scale decoding); "
        "a larger one is a bad image",
    )
