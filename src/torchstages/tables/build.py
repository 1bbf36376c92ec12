"""The build-dataset stage for a table: fit types and statistics on train, encode every split.

Writes ``{split}_numeric.npy`` (float32, NaN = missing), ``{split}_categorical.npy`` (int64),
``{split}_labels.npy`` (int64 classes, or float32 regression targets) and ``meta.json`` with the
fitted schema. Statistics come from the train rows only: val and test rows can change without
changing anything fitted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from torchstages.errors import UserError
from torchstages.io import atomic_dir, nine_digits, read_json, write_json, write_npy
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.paths import SPLIT_NAMES
from torchstages.tables.read import missing_words_text, read_table, row_hashes
from torchstages.tables.schema import encode, fit_schema
from torchstages.tables.split import read_table_split
from torchstages.wording import counted, listed

__all__ = ["build_table", "load_table_rows"]

log = logging.getLogger(__name__)


def load_table_rows(
    raw_dir: Path, splits_dir: Path, words: bool = True
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The split summary and each split's rows, checked against the hashes the split recorded
    (``words``: as the split read them, see :func:`~torchstages.tables.read.read_table`)."""
    summary = read_json(splits_dir / "summary.json")
    path = raw_dir / summary["file"]
    if not path.exists():
        raise UserError(f"{path}: not found (the split stage read it; rerun dvc repro)")
    # a text table records how it was read (split.text.encoding, quoting); a table reads as UTF-8
    frame = read_table(
        path, summary.get("encoding", "utf-8"), summary.get("quoting", "csv"), words=words
    )
    # rows added since would be left out of every split without a word (a summary that
    # predates the count, written by an older torchstages, is rerun the same way)
    if len(frame) != summary.get("rows_read"):
        read = summary.get("rows_read", "an unrecorded number of")
        raise UserError(
            f"{path}: has {len(frame)} rows, the split stage read {read} rows (rerun dvc repro)"
        )
    columns = [*summary["features"], summary["target"]]
    out = {}
    for name in SPLIT_NAMES:
        rows = read_table_split(splits_dir / f"{name}.csv")
        part = frame.iloc[[r for r, _, _, _ in rows]]
        hashes = zip(part.index, rows, row_hashes(part, columns), strict=True)
        for line, (_, _, expected, _), actual in hashes:
            if actual != expected:
                raise UserError(
                    f"{path}: line {line} changed since the split stage read it (rerun dvc repro)"
                )
        out[name] = part
    return summary, out


def _name_missing_words(words: dict[str, dict[str, int]], features: list[str]) -> None:
    """Words the file's feature columns hold that read as missing ('NA' for North America)."""
    for name in features:
        if found := words.get(name):
            log.info(
                "build-dataset: column %r: %s in the file read as missing",
                name,
                missing_words_text(found),
            )


def _column_types(schema: dict[str, Any]) -> str:
    """Each column and what it was read as, for the log ("when datetime (year, month)")."""
    described: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    for column in schema["numeric"]:
        if column["type"] == "datetime":
            parts.setdefault(column["source"], []).append(column["part"])
            described[column["source"]] = f"datetime ({', '.join(parts[column['source']])})"
        else:
            described[column["source"]] = column["type"]
    for column in schema["categorical"]:
        described[column["name"]] = f"categorical ({counted(len(column['categories']), 'level')})"
    return ", ".join(f"{name} {kind}" for name, kind in described.items())


def _name_extreme_targets(values: np.ndarray, lines: pd.Index, name: str) -> None:
    """A few train targets far from the rest set the standard deviation every target is scaled
    by, and a squared-error loss chases them: named when the farthest 1% of rows hold most of
    the variance (about a tenth for normally spread values)."""
    if len(values) < 50:  # one row of a few is often most of the variance, typo or not
        return
    squared = (values - values.mean()) ** 2
    farthest = np.argsort(squared)[::-1][: max(1, len(values) // 100)]
    share = squared[farthest].sum() / squared.sum() if squared.sum() > 0 else 0.0
    if share > 0.5:
        shown = listed([str(lines[i]) for i in sorted(farthest)], 3)
        log.warning(
            "build-dataset: %d of %d train targets (%r; line %s) hold %.0f%% of its variance: "
            "the target's scale and a squared-error loss follow them; check them, or train with "
            "train.loss: huber",
            len(farthest),
            len(values),
            name,
            shown,
            100 * share,
        )


def build_table(
    params: BuildDatasetParams, raw_dir: Path, splits_dir: Path, out_dir: Path
) -> dict[str, int]:
    summary, frames = load_table_rows(raw_dir, splits_dir)
    where = str(raw_dir / summary["file"])
    _name_missing_words(frames["train"].attrs.get("missing_words", {}), summary["features"])
    schema = fit_schema(frames["train"], summary["features"], params.table, where)
    log.info("build-dataset: columns read as: %s", _column_types(schema))
    meta: dict[str, Any] = {
        "kind": "table",
        "task": summary["task"],
        "target": summary["target"],
        "file": summary["file"],
        # what the build_dataset.table params decided lives in the schema: a param that changed
        # nothing for this table (datetime without a date column) leaves meta.json as it was,
        # so training is not rerun for it
        "schema": schema,
        "counts": {name: len(frames[name]) for name in SPLIT_NAMES},
    }
    target = {name: frames[name][summary["target"]] for name in SPLIT_NAMES}
    if summary["task"] == "classification":
        meta["classes"] = summary["classes"]
        label_of = {c: i for i, c in enumerate(summary["classes"])}
        labels = {n: np.array([label_of[v] for v in target[n]], dtype=np.int64) for n in target}
    else:
        labels = {n: target[n].astype(np.float64).to_numpy().astype(np.float32) for n in target}
        train_y = labels["train"].astype(np.float64)
        _name_extreme_targets(train_y, target["train"].index, summary["target"])
        std = float(train_y.std())
        meta["target_mean"] = nine_digits(train_y.mean())
        meta["target_std"] = nine_digits(std) if std > 1e-12 else 1.0
    with atomic_dir(out_dir) as staging:
        for name in SPLIT_NAMES:
            numeric, categorical, other = encode(
                frames[name], schema, params.table, where, report=True
            )
            write_npy(staging / f"{name}_numeric.npy", numeric)
            write_npy(staging / f"{name}_categorical.npy", categorical)
            write_npy(staging / f"{name}_labels.npy", labels[name])
            unseen = {c: n for c, n in other.items() if n}
            log.info(
                "build-dataset: %s %d rows, %d numeric + %d categorical inputs%s",
                name,
                len(numeric),
                numeric.shape[1],
                categorical.shape[1],
                f"; rare or unseen categories: {unseen}" if unseen else "",
            )
        write_json(staging / "meta.json", meta)
    log.info(
        "build-dataset: task %s, target %r; %d numeric columns (%d with missing-value indicator), "
        "%d categorical",
        summary["task"],
        summary["target"],
        len(schema["numeric"]),
        sum(c["indicator"] for c in schema["numeric"]),
        len(schema["categorical"]),
    )
    return meta["counts"]
