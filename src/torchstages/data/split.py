"""Stratified, seeded, leakage-free train/val/test split of a manifest of rows.

Works on rows (path, label, sha256), not on images: any modality that can produce such a
manifest gets the same split guarantees.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Protocol

from torchstages.data.discover import Discovery, Row
from torchstages.errors import UserError
from torchstages.io import write_csv, write_json
from torchstages.paths import SPLIT_NAMES
from torchstages.wording import counted

__all__ = [
    "assign_splits",
    "check_every_class_in_every_split",
    "check_no_leakage",
    "read_csv_rows",
    "read_split",
    "split_dataset",
    "summarize",
    "write_splits",
]

log = logging.getLogger(__name__)

HEADER = ["path", "label", "sha256"]


def assign_splits(
    rows: list[Row],
    fractions: dict[str, float],
    seed: int,
    together: list[list[Row]] | None = None,
) -> dict[str, list[Row]]:
    """Split ``rows`` per class in the given fractions (of all three splits, or of some: the others
    stay empty); files with equal bytes stay together, and so do the files of each group in
    ``together`` (near duplicates).

    Groups of identical files (same sha256) are ordered by a seeded hash of their content, so the
    result depends only on the files and the seed, never on listing order. Each group then goes to
    the split furthest below its target count for that class.
    """
    # a near-duplicate group is keyed by its first file's hash: all its copies join that group
    key = {r.sha256: group[0].sha256 for group in together or [] for r in group}
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[key.get(row.sha256, row.sha256)].append(row)
    by_class: dict[str, list[list[Row]]] = defaultdict(list)
    for members in groups.values():
        # a group whose copies carry different labels goes with its first label (reported as conflict)
        by_class[min(members).label].append(sorted(members))

    # the splits to fill: all three, or those a dataset split already lacks (given_splits)
    names = [name for name in SPLIT_NAMES if name in fractions]
    out: dict[str, list[Row]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(by_class):
        class_groups = sorted(by_class[label], key=lambda g: _seeded_key(g[0].sha256, seed))
        total = sum(len(g) for g in class_groups)
        targets = _largest_remainder(total, [fractions[name] for name in names])
        filled = [0] * len(names)
        for group in class_groups:
            # furthest below target, relative to the target's size; ties go to the earlier split
            i = max(range(len(names)), key=lambda k: (targets[k] - filled[k]) / max(targets[k], 1))
            filled[i] += len(group)
            out[names[i]].extend(group)
    return {name: sorted(split_rows) for name, split_rows in out.items()}


def _seeded_key(sha256: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def _largest_remainder(total: int, fractions: list[float]) -> list[int]:
    """Integer counts summing to ``total`` in the given proportions, each at least 1 when possible."""
    exact = [total * f for f in fractions]
    counts = [int(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    for i, c in enumerate(counts):  # never leave a split without this class when avoidable
        if c == 0 and total >= len(counts):
            donor = max(range(len(counts)), key=lambda k: counts[k])
            counts[donor] -= 1
            counts[i] = 1
    return counts


def check_no_leakage(splits: dict[str, list[Row]]) -> None:
    """Raise if any file content (sha256) appears in more than one split."""
    seen: dict[str, tuple[str, str]] = {}
    for name in SPLIT_NAMES:
        for row in splits.get(name, []):
            first = seen.setdefault(row.sha256, (name, row.path))
            if first[0] != name:
                raise UserError(
                    f"leakage: {row.path} ({name}) has the same bytes as {first[1]} ({first[0]})"
                )


def check_every_class_in_every_split(
    splits: dict[str, list[Row]], where: str, noun: str, copies: str
) -> None:
    """Raise if a class has no ``noun`` in some split: its score there would be undefined, and
    macro averages would count it as zero. Three of a class always spread over the three splits,
    unless ``copies`` (files or rows that stay together) make fewer than three groups of it."""
    present = {name: {row.label for row in splits[name]} for name in SPLIT_NAMES}
    for label in sorted(set().union(*present.values())):
        missing = [name for name in SPLIT_NAMES if label not in present[name]]
        if missing:
            total = sum(row.label == label for name in SPLIT_NAMES for row in splits[name])
            raise UserError(
                f"{where}: class {label!r} has no {noun} in the {' or '.join(missing)} split: "
                f"its {counted(total, noun)} include {copies}, which stay within one split "
                f"(add distinct {noun}s to the class, or remove it)"
            )


def summarize(splits: dict[str, list[Row]]) -> dict:
    """Counts per class and split, and what was found about duplicate files."""
    all_rows = [row for name in SPLIT_NAMES for row in splits[name]]
    by_sha: dict[str, list[Row]] = defaultdict(list)
    for row in all_rows:
        by_sha[row.sha256].append(row)
    dup_groups = [g for g in by_sha.values() if len(g) > 1]
    conflicts = sorted(
        sorted(r.path for r in g) for g in dup_groups if len({r.label for r in g}) > 1
    )
    classes = sorted({row.label for row in all_rows})
    return {
        "classes": classes,
        "counts": {
            name: {c: n for c, n in sorted(Counter(r.label for r in splits[name]).items())}
            for name in SPLIT_NAMES
        },
        "totals": {name: len(splits[name]) for name in SPLIT_NAMES},
        "duplicates": {
            "groups": len(dup_groups),
            "extra_copies": sum(len(g) - 1 for g in dup_groups),
            "label_conflicts": conflicts,
        },
    }


def write_splits(splits: dict[str, list[Row]], summary: dict, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    for name in SPLIT_NAMES:
        write_csv(
            out_dir / f"{name}.csv", HEADER, [[r.path, r.label, r.sha256] for r in splits[name]]
        )
    write_json(out_dir / "summary.json", summary)


def read_csv_rows(path: str | Path, header: list[str]) -> list[list[str]]:
    """The rows of a split CSV under its expected ``header``; one-line errors for a missing file
    or another header."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            found = next(reader, None)
            if found != header:
                raise UserError(f"{path}: expected header {','.join(header)}, got {found}")
            return list(reader)
    except FileNotFoundError:
        raise UserError(f"{path}: not found (run the split stage first)") from None


def read_split(path: str | Path) -> list[Row]:
    """Read one split CSV written by :func:`write_splits`, with a clear error if it is malformed."""
    try:
        return [Row(*fields) for fields in read_csv_rows(path, HEADER)]
    except TypeError:
        raise UserError(f"{path}: every row needs exactly path,label,sha256") from None


class NearDuplicateFinder(Protocol):
    """Finds groups of near copies for one data kind (images: ``near_duplicates.NearDuplicates``).

    Passed in by the split stage, so the stages that only read splits do not depend on it."""

    mode: str  # group: keep each group in one split; report: only count them

    def find(self, raw_dir: Path, rows: list[Row]) -> list[list[Row]]: ...

    def summary(self, groups: list[list[Row]], splits: dict[str, list[Row]]) -> dict: ...

    def draw(self, raw_dir: Path, groups: list[list[Row]], out_dir: Path) -> None: ...


class GivenSplitsKeeper(Protocol):
    """Splits images that came split already (``data/raw/train/``, ``test/``) by their folders
    (``given_splits.KeepGiven``). Passed in by the split stage, like a near-duplicate finder;
    without one such data is pooled by class and split anew."""

    def split(
        self,
        found: Discovery,
        fractions: dict[str, float],
        seed: int,
        together: list[list[Row]] | None,
    ) -> tuple[dict[str, list[Row]], list[dict[str, str]]]: ...

    def summary(self, given: dict[str, str], dropped: list[dict[str, str]]) -> dict: ...

    def log(self, summary: dict) -> None: ...


def split_dataset(
    raw_dir: Path,
    out_dir: Path,
    fractions: dict[str, float],
    seed: int,
    near: NearDuplicateFinder | None = None,
    keeper: GivenSplitsKeeper | None = None,
) -> dict:
    """The split stage: discover, split, verify no leakage, write CSVs and summary (with what
    ``near`` found under ``near_duplicates``), and log what it found. Images that came split
    already (train/, test/ folders) keep their folders' splits with a ``keeper``, else are
    pooled by class and split anew."""
    from torchstages.data.discover import discover

    found = discover(raw_dir)
    rows = found.rows
    groups = near.find(raw_dir, rows) if near else []
    together = groups if near and near.mode == "group" else None
    dropped: list[dict[str, str]] = []
    if found.given and keeper:
        splits, dropped = keeper.split(found, fractions, seed, together)
        left_out = {entry["path"] for entry in dropped}
        groups = [kept for g in groups if len(kept := [r for r in g if r.path not in left_out]) > 1]
    else:
        splits = assign_splits(rows, fractions, seed, together)
    check_no_leakage(splits)
    copies = "identical or near-duplicate files" if together else "identical files"
    check_every_class_in_every_split(splits, str(raw_dir), "image", copies)
    summary = summarize(splits)
    if found.skipped:  # only then: a clean folder's summary hashes as before the key existed
        summary["skipped"] = [{"path": path, "reason": why} for path, why in found.skipped]
    if found.given:  # likewise
        pooled = {"mode": "pool", "folders": found.given}
        summary["given_splits"] = keeper.summary(found.given, dropped) if keeper else pooled
    if near:
        summary["near_duplicates"] = near.summary(groups, splits)
    write_splits(splits, summary, out_dir)
    if near:
        near.draw(raw_dir, groups, out_dir)
    if keeper and found.given:
        keeper.log(summary["given_splits"])
    elif found.given:
        folders = ", ".join(f"{folder}/" for folder in sorted(found.given))
        log.info("split: the data came split already (%s): pooled by class and split anew", folders)
    _log_summary(summary, out_dir)
    return summary


def _log_summary(summary: dict, out_dir: Path) -> None:
    """What the split found, and a warning for what needs a look."""
    dups = summary["duplicates"]
    log.info(
        "split: %d classes, train/val/test = %s; %s (%s) kept within one split -> %s",
        len(summary["classes"]),
        "/".join(str(summary["totals"][s]) for s in SPLIT_NAMES),
        counted(dups["groups"], "duplicate group"),
        counted(dups["extra_copies"], "extra copy", "extra copies"),
        out_dir,
    )
    near = summary.get("near_duplicates")
    if near:
        log.info(
            "split: %s (%s, pHash within %d bits) %s",
            counted(near["groups"], "near-duplicate group"),
            counted(near["files"], "file"),
            near["threshold"],
            "kept within one split"
            if near["mode"] == "group"
            else f"only reported: {counted(near['groups_across_splits'], 'group')} across splits",
        )
    if near and near["largest_group"] > max(10, sum(summary["totals"].values()) // 100):
        log.warning(
            "split: one near-duplicate group holds %d files: look at %s/near_duplicates.png and "
            "lower split.near_duplicate_threshold if they are not copies",
            near["largest_group"],
            out_dir,
        )
    for key, what, advice in (
        ("duplicates", "identical files", "one image has two labels: remove the wrong copies"),
        (
            "near_duplicates",
            "near-duplicate pictures",
            "one picture may have two labels: look at them",
        ),
    ):
        if conflicts := (summary.get(key) or {}).get("label_conflicts"):
            log.warning(
                "split: %s of %s under different classes, so %s (all in %s/summary.json under "
                "%s.label_conflicts); the first %d: %s",
                counted(len(conflicts), "group"),
                what,
                advice,
                out_dir,
                key,
                min(5, len(conflicts)),
                conflicts[:5],
            )
