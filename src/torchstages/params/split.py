"""``split`` section: how data/raw is cut into train, val and test."""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import Field, field_validator, model_validator

from torchstages.params.base import Section


class TableSplitParams(Section):
    """What a table's columns mean: the target, the task, groups, and the columns to use."""

    target: str | None = Field(
        None, description="target column; unset: the column named target, label, class or y"
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto",
        description="auto: classification for a non-numeric target or an integer one with at "
        "most max_classes distinct values, else regression; measurements with a few words "
        "among them (unknown) are refused, naming the first",
    )
    max_classes: int = Field(
        20, ge=2, description="auto task: most distinct integer targets that still mean classes"
    )
    group: str | None = Field(
        None, description="column whose rows stay in one split (a patient, a customer)"
    )
    features: list[str] | None = Field(
        None,
        min_length=1,
        description="feature columns to use; unset: every column but target, group, drop",
    )
    drop: list[str] = Field([], description="columns never used as features (ids, free text)")
    bins: int = Field(
        10, ge=2, le=100, description="regression: quantile bins of the target to stratify on"
    )
    near_duplicate_digits: int = Field(
        4,
        ge=1,
        le=15,
        description="rows equal after rounding numbers to this many significant digits (and "
        "folding text case and spaces) are near duplicates (split.near_duplicates says what "
        "happens to them)",
    )


class TextSplitParams(Section):
    """Which columns hold the texts and their labels, and how the file is read."""

    text: str | None = Field(
        None,
        description="text column; unset: the column named text, message, sentence, review, "
        "content or document, else the column with the longest texts",
    )
    label: str | None = Field(
        None, description="label column; unset: the column named label, target, class or y"
    )
    empty: Literal["drop", "error"] = Field(
        "drop",
        description="a row whose text is empty or only spaces: drop it (counted in "
        "data/splits/summary.json), or stop with an error naming its line",
    )
    encoding: str = Field(
        "utf-8",
        description="the file's text encoding (utf-8 reads a byte-order mark too); any name "
        "Python knows, e.g. latin-1, cp1252",
    )
    quoting: Literal["csv", "none"] = Field(
        "csv",
        description='csv: a field in "quotes" may hold the delimiter and line breaks; none: '
        "quotes are part of the text and every line is one row",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("unknown text encoding (known: e.g. utf-8, latin-1, cp1252)") from None
        return value


class SeriesSplitParams(Section):
    """What a time series file's columns mean, and what to do with missing time steps."""

    time: str | None = Field(
        None,
        description="time column: dates, datetimes or integers; unset: the column named time, "
        "date, datetime, timestamp, month, ds or t",
    )
    target: str | None = Field(
        None,
        description="the value to forecast; unset: the only other column (besides time, id and "
        "covariates), or else the one named target, y or value",
    )
    id: str | None = Field(
        None, description="column naming the series of a panel (one model for all of them)"
    )
    covariates: list[str] = Field(
        [], description="more numeric columns fed to the model as inputs (never forecast)"
    )
    fill: Literal["interpolate", "ffill", "error"] = Field(
        "interpolate",
        description="missing time steps (gaps against the detected frequency) and empty cells: "
        "interpolate linearly between neighbours, ffill (repeat the last value), or error",
    )


class SplitParams(Section):
    """Stratified, seeded three-way split; exact duplicate files always stay in one split, near
    duplicates too by default."""

    seed: int = Field(42, description="seed of the split; change it to draw a different split")
    train: float = Field(0.70, gt=0, lt=1, description="fraction of each class for training")
    val: float = Field(0.15, gt=0, lt=1, description="fraction of each class for validation")
    test: float = Field(0.15, gt=0, lt=1, description="fraction of each class for the final test")
    kind: Literal["auto", "images", "table", "text", "series"] = Field(
        "auto",
        description="auto: table when data/raw holds one .csv/.tsv/.parquet file, images when it "
        "holds class folders; text or series read that one file as texts or as a time series",
    )
    table: TableSplitParams = Field(
        default_factory=TableSplitParams, description="tables only: target, task, columns"
    )
    text: TextSplitParams = Field(
        default_factory=TextSplitParams, description="texts only: columns, empty texts, encoding"
    )
    series: SeriesSplitParams = Field(
        default_factory=SeriesSplitParams,
        description="time series only: time, target, id columns, gap filling (chronological split)",
    )
    given_splits: Literal["keep", "pool"] = Field(
        "keep",
        description="images that come split already (data/raw/train/, test/ and maybe val/, each "
        "holding the class folders): keep uses each folder as its split and carves a missing val "
        "or test out of train/ (in these fractions' proportions); pool splits them anew by class",
    )
    near_duplicates: Literal["group", "report", "off"] = Field(
        "group",
        description="near copies (resized, re-encoded, brightened): group keeps each group in one "
        "split; report only counts them in data/splits/summary.json; off skips the check",
    )
    near_duplicate_threshold: int = Field(
        16,
        ge=0,
        le=63,
        description="two images whose 256-bit perceptual hashes (pHash) differ in at most this "
        "many bits are near copies (re-encoded, resized or brightened copies stay within about "
        "20); at most 63: the exact search for close pairs cuts the hash into threshold + 1 "
        "bands of at least 4 bits each (fewer would compare almost every pair)",
    )

    @field_validator("near_duplicates", mode="before")
    @classmethod
    def _off_as_yaml_reads_it(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted off as false, and dvc exp run -S writes it unquoted
        return "off" if value is False else value

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        return self
