"""``build_dataset`` section: how image files become uint8 arrays, or a table becomes numbers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from torchstages.data.images import BACKGROUND, MAX_PIXELS
from torchstages.params.base import Section


class TableBuildParams(Section):
    """Column types, missing values and category vocabularies; every statistic is fitted on the
    train split alone."""

    categorical: list[str] = Field([], description="columns forced categorical (e.g. zip codes)")
    numeric: list[str] = Field([], description="columns forced numeric")
    missing: Literal["impute", "error"] = Field(
        "impute",
        description="impute: numeric gets the train median plus a missing-indicator column, "
        "categorical its own 'missing' category; error: any missing feature value stops the stage",
    )
    non_numeric: Literal["error", "missing"] = Field(
        "error", description="a non-number in a numeric column: error, or treat it as missing"
    )
    datetime: Literal["expand", "drop"] = Field(
        "expand",
        description="date/time columns: expand into year, month, day, day of week (and hour), "
        "or drop them",
    )
    min_category_count: int = Field(
        1,
        ge=1,
        description="categories seen fewer times in train share one 'other' index (as unseen ones do)",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> TableBuildParams:
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise ValueError(f"columns both categorical and numeric: {both}")
        return self


class TextBuildParams(Section):
    """The tokenizer and the vocabulary; the vocabulary and max_len: auto come from the train
    split alone."""

    level: Literal["word", "char"] = Field(
        "word",
        description="word: runs of letters and digits (with inner apostrophes) and each other "
        "non-space character; char: every character, runs of spaces as one space",
    )
    lowercase: bool = Field(True, description="lowercase after Unicode NFKC normalisation")
    min_freq: int = Field(
        2, ge=1, description="tokens seen fewer times in the train split become unknown (id 1)"
    )
    max_size: int = Field(
        20000, ge=1, description="most tokens in the vocabulary (the most frequent are kept)"
    )
    max_len: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="tokens per text (longer texts are cut at the end); auto: the 95th "
        "percentile of the train texts' lengths",
    )


class SeriesBuildParams(Section):
    """Windows of a time series and their scaling, fitted on the train range alone."""

    lookback: int = Field(24, ge=1, description="input steps of each window")
    horizon: int = Field(12, ge=1, description="steps forecast from each window")
    stride: int = Field(
        1, ge=1, description="steps between train windows (val and test score every window)"
    )
    transform: Literal["none", "log"] = Field(
        "none",
        description="log: forecast the target's logarithm (for multiplicative series, whose "
        "seasonal swing grows with the level; every value must be positive), scaled after; "
        "metrics, predictions and the export stay in the target's own units",
    )
    scaler: Literal["standard", "minmax"] = Field(
        "standard",
        description="per series and column, fitted on the train range: standard (mean, std) "
        "or minmax (to 0..1)",
    )
    level: Literal["relative", "absolute"] = Field(
        "relative",
        description="what the network sees of each window's target: relative to its last value "
        "(the recent shape, whatever the level: for trends and level shifts) or absolute (the "
        "scaled values: when the level itself predicts, as in mean-reverting series)",
    )
    calendar: bool = Field(
        False,
        description="add sin/cos of the month (monthly data and finer) and day of week (daily "
        "and finer) as inputs",
    )
    season: int | None = Field(
        None,
        ge=1,
        description="season length in steps (seasonal naive, MASE); unset: from the frequency "
        "(monthly 12, daily 7, hourly 24, ...), for integer times the train range's "
        "autocorrelation peak",
    )


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
    table: TableBuildParams = Field(
        default_factory=TableBuildParams, description="tables only: column types, missing values"
    )
    text: TextBuildParams = Field(
        default_factory=TextBuildParams, description="texts only: tokenizer and vocabulary"
    )
    series: SeriesBuildParams = Field(
        default_factory=SeriesBuildParams,
        description="time series only: window lengths, scaling, calendar features, season",
    )

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, size: int | tuple[int, int]) -> int | tuple[int, int]:
        if min(size if isinstance(size, tuple) else (size,)) < 1:
            raise ValueError("every side must be at least 1 pixel (one int, or [height, width])")
        return size
