"""Files that look like images but do not decode: ``build_dataset.on_bad_image`` (error | skip)."""

from __future__ import annotations

from pathlib import Path

from torchstages.data.discover import Row
from torchstages.errors import UserError

__all__ = ["bad_image_entries", "bad_images_message", "check_classes_left"]


def bad_image_entries(rows: list[Row], bad: list[tuple[int, str]], split: str) -> list[dict]:
    """What meta.json and the report list for each bad image of one split."""
    return [
        {"path": rows[i].path, "label": rows[i].label, "split": split, "reason": reason}
        for i, reason in bad
    ]


# bad files a message names; beyond them it counts (max_pixels: 1 makes every image one)
NAMED = 10


def bad_images_message(entries: list[dict]) -> str:
    """The bad files with their reasons, on one line: the user fixes them all in one go."""
    listed = "; ".join(f"{e['path']}: {e['reason']}" for e in entries[:NAMED])
    if len(entries) > NAMED:
        listed += f"; … and {len(entries) - NAMED} more"
    return (
        f"{len(entries)} bad image{'s' if len(entries) > 1 else ''} under data/raw (fix or remove "
        f"them, or set build_dataset.on_bad_image: skip): {listed}"
    )


def check_classes_left(splits: dict[str, list[Row]], skipped: list[dict], splits_dir: Path) -> None:
    """Skipping must leave every class some training images: a class the model never sees
    would still be an output it is scored on."""
    dropped = {e["path"] for e in skipped if e["split"] == "train"}
    left = {r.label for r in splits["train"] if r.path not in dropped}
    gone = sorted({r.label for r in splits["train"]} - left)
    if gone:
        raise UserError(
            f"{splits_dir}/train.csv: every training image of classes {gone} is a bad image "
            "(build_dataset.on_bad_image: skip left none)"
        )
