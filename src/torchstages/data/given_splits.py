"""Images that come split already (``data/raw/train/<class>/``, ``test/<class>/``, maybe
``val/<class>/``): ``split.given_splits: keep`` keeps each given folder as its split and carves
the splits without a folder out of ``train/``; a file of a split that scores the model is never
trained on. Only the split stage imports this (it passes a :class:`KeepGiven` to
``split_dataset``), so editing it reruns no other stage."""

from __future__ import annotations

import logging

from torchstages.data.discover import Discovery, Row
from torchstages.data.split import assign_splits
from torchstages.paths import SPLIT_NAMES
from torchstages.wording import counted

__all__ = ["KeepGiven"]

log = logging.getLogger(__name__)

# which copy stays when a file is in two given folders: the test split's, then val's; the
# split that scores the model never loses a file to the one that trains it
_KEPT_FIRST = ("test", "val", "train")
# a left-out file's ``how``, as a sentence says it: "<file>, the same bytes as <file>"
_HOW = {"same bytes": "the same bytes as", "near duplicate": "a near duplicate of"}


class KeepGiven:
    """The given folders as splits; the missing ones carved out of ``train/``."""

    def split(
        self,
        found: Discovery,
        fractions: dict[str, float],
        seed: int,
        together: list[list[Row]] | None,
    ) -> tuple[dict[str, list[Row]], list[dict[str, str]]]:
        """The splits, carved ones stratified and seeded in the proportions of ``fractions``
        among them, and the files left out because their bytes (or, with ``together``, their
        near-duplicate group) are in a split kept first, each with the file it copies."""
        given: dict[str, list[Row]] = {name: [] for name in SPLIT_NAMES}
        for row in found.rows:
            given[found.given_split(row)].append(row)
        dropped = _copies_of_kept(given, together or [])
        left_out = {entry["path"] for entry in dropped}
        pool = [row for row in given["train"] if row.path not in left_out]
        carved = _carved(found.given)
        shares = {name: fractions[name] for name in ("train", *carved)}
        total = sum(shares.values())
        splits = assign_splits(pool, {n: f / total for n, f in shares.items()}, seed, together)
        for name in SPLIT_NAMES:
            if name != "train" and name not in carved:
                splits[name] = sorted(r for r in given[name] if r.path not in left_out)
        return splits, dropped

    def summary(self, given: dict[str, str], dropped: list[dict[str, str]]) -> dict:
        """What summary.json says of the data: its folders, the splits carved, the files left out."""
        carved = _carved(given)
        return {"mode": "keep", "folders": given, "carved_from_train": carved, "dropped": dropped}

    def log(self, summary: dict) -> None:
        carved = summary["carved_from_train"]
        log.info(
            "split: the data came split already (%s): kept as given%s",
            ", ".join(f"{folder}/" for folder in sorted(summary["folders"])),
            f"; {' and '.join(carved)} carved from train (seeded, stratified)" if carved else "",
        )
        if dropped := summary["dropped"]:
            log.warning(
                "split: %s left out of the split it came in, as a copy of a file of a split that "
                "scores the model (summary.json, given_splits.dropped); the first: %s, %s %s",
                counted(len(dropped), "file"),
                dropped[0]["path"],
                _HOW[dropped[0]["how"]],
                dropped[0]["copy_of"],
            )


def _carved(folders: dict[str, str]) -> list[str]:
    """The splits no given folder holds: carved out of train/."""
    return [name for name in SPLIT_NAMES if name not in folders.values()]


def _copies_of_kept(given: dict[str, list[Row]], together: list[list[Row]]) -> list[dict[str, str]]:
    """The files of a split whose bytes, or near-duplicate group, a split kept first also holds,
    each with the file it copies."""
    group_of = {row.path: n for n, group in enumerate(together) for row in group}
    # (bytes or group) -> the split and file that hold it first
    first: dict[tuple[str, object], tuple[str, Row]] = {}
    dropped = []
    for name in _KEPT_FIRST:
        for row in sorted(given[name]):
            keys: list[tuple[str, object]] = [("bytes", row.sha256)]
            if row.path in group_of:
                keys.append(("group", group_of[row.path]))
            earlier = [first[k][1] for k in keys if k in first and first[k][0] != name]
            if earlier:
                how = "same bytes" if earlier[0].sha256 == row.sha256 else "near duplicate"
                dropped.append({"path": row.path, "copy_of": earlier[0].path, "how": how})
                continue
            for key in keys:
                first.setdefault(key, (name, row))
    return sorted(dropped, key=lambda entry: entry["path"])
