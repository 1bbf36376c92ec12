"""The split stage for a table: stratified (classes, or target quantile bins for regression),
seeded, with identical rows and rows of one group always in the same split.

Rows become the manifest rows of :mod:`torchstages.data.split` (path = row number, label =
stratum, sha256 = group key), so tables get the very split rule and leakage check images have.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from torchstages.data.discover import Row
from torchstages.data.split import (
    assign_splits,
    check_every_class_in_every_split,
    check_no_leakage,
    read_csv_rows,
)
from torchstages.errors import UserError
from torchstages.io import write_csv, write_json
from torchstages.params.split import SplitParams, TableSplitParams
from torchstages.paths import SPLIT_NAMES
from torchstages.tables.read import (
    decorated_numbers,
    find_table,
    first_non_number,
    missing_words_text,
    read_table,
    rounded_row_hashes,
    row_hashes,
    similar_spellings,
)
from torchstages.wording import counted

__all__ = [
    "HEADER",
    "class_order",
    "decide_task",
    "first_of",
    "read_table_split",
    "resolve_columns",
    "split_table",
    "write_table_splits",
    "MIN_PER_CLASS",
    "similar_classes",
    "too_few",
]

log = logging.getLogger(__name__)

HEADER = ["row", "group", "sha256", "line"]  # row: 0-based; line: where it starts in the file
_TARGET_NAMES = ("target", "label", "class", "y")
MIN_PER_CLASS = 3  # one row for each of train, val and test
_STRAY_SHARE = 0.1  # at most this share of words among a target's numbers: they are mistakes


def resolve_columns(frame: pd.DataFrame, params: TableSplitParams, path: Path) -> dict[str, Any]:
    """Target, group and feature columns, checked against the file's header."""
    columns = list(frame.columns)
    target = params.target
    if target is None:
        named = [c for c in columns if c.lower() in _TARGET_NAMES]
        if not named:
            raise UserError(
                f"{path}: no column named {'/'.join(_TARGET_NAMES)}; set split.table.target "
                f"to one of {columns}"
            )
        target = named[0]
    wanted = [("split.table.target", target)]
    wanted += [("split.table.group", params.group)] if params.group else []
    wanted += [("split.table.drop", c) for c in params.drop]
    wanted += [("split.table.features", c) for c in params.features or []]
    for key, column in wanted:
        if column not in columns:
            raise UserError(f"{path}: {key}: no column {column!r} (columns: {columns})")
    excluded = {target, params.group, *params.drop}
    features = [c for c in (params.features or columns) if c not in excluded]
    if not features:
        raise UserError(f"{path}: no feature columns left after removing target, group and drop")
    return {"target": target, "group": params.group, "features": features}


def decide_task(target: pd.Series, params: TableSplitParams, path: Path) -> str:
    """``classification`` for text targets or few distinct integers, else ``regression``; many
    numbers with a few words among them are refused, naming the first word."""
    if params.task != "auto":
        return params.task
    numbers = pd.to_numeric(target, errors="coerce")
    words = numbers.isna().to_numpy()
    fractional = bool(np.any(np.mod(numbers.dropna().to_numpy(dtype=np.float64), 1) != 0))
    if words.any() and words.mean() <= _STRAY_SHARE and fractional:
        # measurements (4012.5) with a stray word ('unknown') are not hundreds of classes; whole
        # numbers with a few words (codes such as 250 and V45) may well be classes
        first = int(np.flatnonzero(words)[0])
        more = f" and {counted(int(words.sum()) - 1, 'more cell')}" if words.sum() > 1 else ""
        # classes only when the values are few: hundreds of one-row classes cannot be split
        classes = target.nunique() <= params.max_classes
        raise UserError(
            f"{path}: target {target.name!r} holds measurements but line "
            f"{target.index[first]} holds {target.iloc[first]!r}{more}: empty such cells (rows "
            "without a target are dropped)"
            + (", or set split.table.task: classification" if classes else "")
        )
    if words.any():
        return "classification"
    if fractional or numbers.nunique() > params.max_classes:
        span = numbers.max() - numbers.min() + 1
        if not fractional and len(numbers) > 20 and numbers.is_unique and span <= 2 * len(numbers):
            log.warning(
                "split: target %r holds a different whole number in every row, nearly "
                "consecutive: an id? "
                "(split.table.target names the column to predict)",
                target.name,
            )
        return "regression"
    return "classification"


def first_of(counts: dict[str, int], shown: int = 10) -> str:
    """``counts`` for a message: the first ``shown`` entries, and how many there are in all."""
    if len(counts) <= shown:
        return str(counts)
    head = ", ".join(f"{c!r}: {n}" for c, n in list(counts.items())[:shown])
    return f"{{{head}, ...}} ({len(counts)} classes)"


def similar_classes(classes: list[str], column: str) -> list[list[str]]:
    """Classes equal but for letter case, surrounding spaces or a final '.' ('Yes', 'yes ';
    '>50K' and '>50K.', as adult.test writes it) or written as the same number ('1', '1.0'),
    each group sorted; a warning names them: they train as different classes, which is rarely
    what the table means."""
    similar = similar_spellings(classes)
    if similar:
        log.warning(
            "split: %r: classes %s differ only by letter case, spaces, a final '.' or how a "
            "number is written: they are trained as different classes; write each one way if "
            "they are one",
            column,
            " and ".join(str(g) for g in similar[:5]) + (" ..." if len(similar) > 5 else ""),
        )
    return similar


def too_few(small: dict[str, int], classes: list[str]) -> str:
    """``small`` (classes with too few rows) for a message, with the classes each is perhaps
    the same as (``'spam '`` beside ``'spam'``): merged, they may have enough."""
    alike = [g for g in similar_spellings(classes) if any(c in small for c in g)]
    same = "; ".join(" and ".join(repr(c) for c in g) for g in alike[:3])
    return first_of(small) + (f" ({same}: the same class, written two ways?)" if same else "")


def class_order(values: list[str]) -> list[str]:
    """Distinct class names, in numeric order when they are all numbers ("2" before "10")."""
    distinct = set(values)
    try:
        return sorted(distinct, key=lambda v: (float(v), v))
    except ValueError:
        return sorted(distinct)


def split_table(raw_dir: Path, out_dir: Path, params: SplitParams) -> dict[str, Any]:
    """Read the table, drop rows without a target, split, prove no group straddles, write."""
    path = find_table(raw_dir)
    frame = read_table(path)
    cols = resolve_columns(frame, params.table, path)
    target = frame[cols["target"]]
    missing_target = int(target.isna().sum())
    if missing_target == len(frame):
        raise UserError(f"{path}: target column {cols['target']!r} is empty in every row")
    if words := frame.attrs.get("missing_words", {}).get(cols["target"]):
        # 'None' or 'NA' may be a class; its rows go with those of an empty target
        log.warning(
            "split: target %r: %s read as missing, so those rows are dropped (rename a class "
            "that is written so)",
            cols["target"],
            missing_words_text(words),
        )
    kept = np.flatnonzero(target.notna().to_numpy())
    frame = frame.iloc[kept]
    task = decide_task(frame[cols["target"]], params.table, path)
    strata = _strata(frame[cols["target"]], task, params.table.bins, path, cols["target"])
    columns = [*cols["features"], cols["target"]]
    content = row_hashes(frame, columns)
    near = None
    if params.near_duplicates != "off":
        near = rounded_row_hashes(frame, columns, params.table.near_duplicate_digits)
    together = near if params.near_duplicates == "group" else None
    groups = _group_keys(content, frame[cols["group"]] if cols["group"] else None, together)
    rows = [
        Row(f"{i:09d}", stratum, group)
        for i, stratum, group in zip(kept, strata, groups, strict=True)
    ]
    fractions = {"train": params.train, "val": params.val, "test": params.test}
    splits = assign_splits(rows, fractions, params.seed)
    check_no_leakage(splits)
    if task == "classification":
        copies = "identical rows" + (" or near duplicates" if together else "")
        if cols["group"]:
            copies += f" or rows of one {cols['group']!r} value"
        check_every_class_in_every_split(splits, str(path), "row", copies)
    write_table_splits(out_dir, splits, kept, content, frame.index)
    summary = _summary(path, cols, task, splits, content, groups, missing_target, strata)
    summary["rows_read"] = len(target)  # build-dataset refuses a file that since gained rows
    if near is not None:
        summary["near_duplicates"] = _near_summary(near, content, kept, splits, params, frame.index)
    write_json(out_dir / "summary.json", summary)
    # the group column's values that hold several rows (groups_kept_together also counts
    # the groups that identical rows and near duplicates make)
    shared = int((frame[cols["group"]].value_counts() > 1).sum()) if cols["group"] else 0
    log.info(
        "split: %s table %s, target %r (%s), train/val/test = %s rows; %s without a target "
        "dropped; %s of identical rows%s kept within one split -> %s",
        task,
        path.name,
        cols["target"],
        f"{len(summary['classes'])} classes" if "classes" in summary else "numeric",
        "/".join(str(summary["totals"][s]) for s in SPLIT_NAMES),
        counted(missing_target, "row"),
        counted(summary["duplicates"]["groups"], "group"),
        f", {counted(shared, 'value')} of {cols['group']!r} with several rows"
        if cols["group"]
        else "",
        out_dir,
    )
    return summary


def _strata(target: pd.Series, task: str, bins: int, path: Path, name: str) -> list[str]:
    if task == "classification":
        counts = Counter(target)
        small = {c: n for c, n in sorted(counts.items()) if n < MIN_PER_CLASS}
        if small:
            numbers = len(decorated_numbers(target)) > 0
            raise UserError(
                f"{path}: target {name!r}: classes with fewer than {MIN_PER_CLASS} rows (one per "
                f"split): {too_few(small, list(counts))}"
                + (
                    " (numbers written with a unit, a currency sign, % or thousands separators "
                    "are classes to this reader: write plain numbers for a regression)"
                    if numbers
                    else ""
                )
            )
        if len(counts) < 2:
            raise UserError(f"{path}: target {name!r} has only one class {sorted(counts)}")
        return target.tolist()
    # rows without a target are dropped before: every cell here is written
    if found := first_non_number(target):
        first, what = found
        raise UserError(
            f"{path}: regression target {name!r}, line {target.index[first]}: "
            f"{target.iloc[first]!r} is not a {what}"
        )
    values = pd.to_numeric(target, errors="coerce")
    # quantile bins on the rank, so heavy ties cannot collapse the bins
    ranks = values.rank(method="first").to_numpy()
    which = np.minimum((ranks - 1) * bins // len(values), bins - 1).astype(int)
    return [f"bin{b:03d}" for b in which]


def _near_summary(
    near: list[str],
    content: list[str],
    kept: np.ndarray,
    splits: dict[str, list[Row]],
    params: SplitParams,
    lines: pd.Index,
) -> dict[str, Any]:
    """Groups of rows equal after rounding but not all identical, and how many span splits."""
    split_of = {int(r.path): name for name in SPLIT_NAMES for r in splits[name]}
    line_of = dict(zip(kept.tolist(), lines.tolist(), strict=True))
    members: dict[str, list[int]] = {}
    for row, key in zip(kept.tolist(), near, strict=True):
        members.setdefault(key, []).append(row)
    exact = dict(zip(kept.tolist(), content, strict=True))
    groups = [rows for rows in members.values() if len({exact[r] for r in rows}) > 1]
    return {
        "mode": params.near_duplicates,
        "digits": params.table.near_duplicate_digits,
        "groups": len(groups),
        "rows": sum(len(g) for g in groups),
        "groups_across_splits": sum(1 for g in groups if len({split_of[r] for r in g}) > 1),
        "examples": [sorted(line_of[r] for r in g)[:5] for g in sorted(groups)[:5]],  # file lines
    }


def _group_keys(
    content: list[str], group: pd.Series | None, near: list[str] | None = None
) -> list[str]:
    """One key per row: rows with equal content, an equal group value or (when given) an equal
    rounded content share a key (union-find)."""
    parent = list(range(len(content)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def link(by: list[str]) -> None:
        first: dict[str, int] = {}
        for i, key in enumerate(by):
            j = first.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)

    link(content)
    if near is not None:
        link(near)
    if group is not None:
        link(["\x00missing" if pd.isna(v) else str(v) for v in group])
    root_key: dict[int, str] = {}
    for i in range(len(content)):  # the key of a group: the smallest content hash in it
        r = find(i)
        root_key[r] = min(root_key.get(r, content[i]), content[i])
    return [root_key[find(i)] for i in range(len(content))]


def _summary(
    path: Path,
    cols: dict[str, Any],
    task: str,
    splits: dict[str, list[Row]],
    content: list[str],
    groups: list[str],
    missing_target: int,
    strata: list[str],
) -> dict[str, Any]:
    dup_sizes = [n for n in Counter(content).values() if n > 1]
    group_sizes = Counter(groups)
    summary: dict[str, Any] = {
        "kind": "table",
        "file": path.name,
        "task": task,
        "target": cols["target"],
        "group": cols["group"],
        "features": cols["features"],
        "totals": {name: len(splits[name]) for name in SPLIT_NAMES},
        "rows_without_target_dropped": missing_target,
        "duplicates": {"groups": len(dup_sizes), "extra_rows": sum(n - 1 for n in dup_sizes)},
        "groups_kept_together": sum(1 for n in group_sizes.values() if n > 1),
    }
    if task == "classification":
        summary["classes"] = class_order(strata)
        if similar := similar_classes(summary["classes"], cols["target"]):
            summary["similar_classes"] = similar  # only then: other summaries hash as before
        summary["counts"] = {
            name: dict(sorted(Counter(r.label for r in splits[name]).items()))
            for name in SPLIT_NAMES
        }
    return summary


def write_table_splits(
    out_dir: Path,
    splits: dict[str, list[Row]],
    kept: np.ndarray,
    content: list[str],
    lines: pd.Index,
) -> None:
    """One CSV per split: each row's 0-based index among the file's rows, its group key, the hash
    of its cells (build-dataset checks it) and the line it starts on (what reports name it by)."""
    hash_of = dict(zip(kept.tolist(), content, strict=True))
    line_of = dict(zip(kept.tolist(), lines.tolist(), strict=True))
    for name in SPLIT_NAMES:
        rows = [
            [int(r.path), r.sha256, hash_of[int(r.path)], line_of[int(r.path)]]
            for r in splits[name]
        ]
        write_csv(out_dir / f"{name}.csv", HEADER, rows)


def read_table_split(path: Path) -> list[tuple[int, str, str, int]]:
    """(row, group, sha256, line) of one table split CSV written by :func:`write_table_splits`."""
    try:
        return [(int(r), g, h, int(n)) for r, g, h, n in read_csv_rows(path, HEADER)]
    except ValueError:
        raise UserError(
            f"{path}: every row needs row,group,sha256,line with an integer row and line"
        ) from None
