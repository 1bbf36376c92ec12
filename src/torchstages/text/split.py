"""The split stage for texts: stratified by label, seeded, and texts that are the same after the
tokenizer's normalisation (:func:`torchstages.text.tokenize.duplicate_key`) always in one split.

The split files have the table layout (row, group, sha256: the row number, the key of its
duplicate group, the hash of its text and label cells), so build-dataset reads them with the
table code and refuses a file that changed under them.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.discover import Row
from torchstages.data.split import (
    assign_splits,
    check_every_class_in_every_split,
    check_no_leakage,
)
from torchstages.errors import UserError
from torchstages.io import write_json
from torchstages.params.split import SplitParams
from torchstages.paths import SPLIT_NAMES
from torchstages.tables.read import find_table, row_hashes
from torchstages.tables.split import (
    MIN_PER_CLASS,
    class_order,
    similar_classes,
    too_few,
    write_table_splits,
)
from torchstages.text.read import read_texts
from torchstages.text.tokenize import duplicate_key
from torchstages.wording import counted

__all__ = ["split_texts"]

log = logging.getLogger(__name__)


def split_texts(raw_dir: Path, out_dir: Path, params: SplitParams) -> dict[str, Any]:
    """Read, drop rows without a label (and empty texts, or refuse them), split, write."""
    path = find_table(raw_dir)
    frame, text, label = read_texts(path, params.text)
    labelled = frame[label].notna().to_numpy()
    if not labelled.any():
        raise UserError(f"{path}: label column {label!r} is empty in every row")
    blank = ~frame[text].fillna("").str.strip().astype(bool).to_numpy()
    if params.text.empty == "error" and (blank & labelled).any():
        first = frame.index[np.flatnonzero(blank & labelled)[0]]
        raise UserError(
            f"{path}: line {first}: the text ({text!r}) is empty (split.text.empty: drop "
            "leaves such rows out)"
        )
    kept = np.flatnonzero(labelled & ~blank)
    frame = frame.iloc[kept]
    labels = frame[label].tolist()
    _check_classes(Counter(labels), path, label)
    keys = [
        hashlib.sha256(duplicate_key(t).encode("utf-8")).hexdigest() for t in frame[text].tolist()
    ]
    rows = [Row(f"{i:09d}", y, k) for i, y, k in zip(kept, labels, keys, strict=True)]
    fractions = {"train": params.train, "val": params.val, "test": params.test}
    splits = assign_splits(rows, fractions, params.seed)
    check_no_leakage(splits)
    check_every_class_in_every_split(
        splits, str(path), "text", "texts equal but for case and spacing"
    )
    write_table_splits(out_dir, splits, kept, row_hashes(frame, [text, label]), frame.index)
    summary = {
        "kind": "text",
        "file": path.name,
        "task": "classification",
        # the names the table code reads rows by (build-dataset checks their hashes)
        "features": [text],
        "target": label,
        "classes": class_order(labels),
        "totals": {name: len(splits[name]) for name in SPLIT_NAMES},
        "counts": {
            name: dict(sorted(Counter(r.label for r in splits[name]).items()))
            for name in SPLIT_NAMES
        },
        "rows_read": len(labelled),  # build-dataset refuses a file that since gained rows
        "rows_without_label_dropped": int((~labelled).sum()),
        "empty_texts_dropped": int((blank & labelled).sum()),
        "duplicates": _duplicates(keys, labels, frame.index.tolist()),
        "encoding": params.text.encoding,
        "quoting": params.text.quoting,
    }
    if similar := similar_classes(summary["classes"], label):
        summary["similar_classes"] = similar  # only then: other summaries hash as before
    write_json(out_dir / "summary.json", summary)
    dups = summary["duplicates"]
    log.info(
        "split: %d texts of %d classes in %s (text %r, label %r), train/val/test = %s; "
        "%s of duplicate texts (%s, %d with differing labels) kept within one split; "
        "dropped: %d without a label, %d empty -> %s",
        len(kept),
        len(summary["classes"]),
        path.name,
        text,
        label,
        "/".join(str(summary["totals"][s]) for s in SPLIT_NAMES),
        counted(dups["groups"], "group"),
        counted(dups["extra_rows"], "extra copy", "extra copies"),
        dups["label_conflicts"],
        summary["rows_without_label_dropped"],
        summary["empty_texts_dropped"],
        out_dir,
    )
    if conflicts := dups.get("label_conflict_lines"):
        log.warning(
            "split: %s of equal texts under different labels (all in %s/summary.json under "
            "duplicates.label_conflict_lines); the first, by line: %s",
            counted(len(conflicts), "group"),
            out_dir,
            "; ".join(", ".join(map(str, g)) for g in conflicts[:5]),
        )
    return summary


def _check_classes(counts: Counter, path: Path, label: str) -> None:
    if len(counts) < 2:
        raise UserError(f"{path}: label {label!r} has only one class {sorted(counts)}")
    small = {c: n for c, n in sorted(counts.items()) if n < MIN_PER_CLASS}
    if small:
        raise UserError(
            f"{path}: label {label!r}: classes with fewer than {MIN_PER_CLASS} texts (one per "
            f"split): {too_few(small, list(counts))}"
        )


def _duplicates(keys: list[str], labels: list[str], lines: list[int]) -> dict[str, Any]:
    """Groups of texts equal after normalisation: how many, their extra copies, and how many
    groups carry more than one label (such a group goes with its first label's split share),
    with the lines of each such group, so the wrong labels can be found and fixed."""
    members: dict[str, set[str]] = defaultdict(set)
    where: dict[str, list[int]] = defaultdict(list)
    for key, y, line in zip(keys, labels, lines, strict=True):
        members[key].add(y)
        where[key].append(line)
    groups = [k for k, found in where.items() if len(found) > 1]
    conflicts = sorted(where[k] for k in groups if len(members[k]) > 1)
    out: dict[str, Any] = {
        "groups": len(groups),
        "extra_rows": sum(len(where[k]) - 1 for k in groups),
        "label_conflicts": len(conflicts),
    }
    if conflicts:
        out["label_conflict_lines"] = conflicts
    return out
