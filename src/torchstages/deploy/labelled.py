"""``torchstages evaluate``: an exported image classifier scored on a labelled folder outside the
pipeline's splits (images from production, another site's, a published test set), with the test
stage's metrics and 95% intervals, through the exported model a deployment runs.

The folder holds one folder per class, named as the model's classes; each file is decoded as
``predict`` decodes it (the model's own preprocessing, from its metadata).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.data.discover import is_skipped_name
from torchstages.deploy.predict import decoded_batches, expand_inputs
from torchstages.deploy.readers import Reader
from torchstages.deploy.runtime import Runner, softmax
from torchstages.errors import UserError
from torchstages.io import atomic_path, six_decimals

__all__ = [
    "Scored",
    "draw_pictures",
    "labelled_files",
    "score",
    "seen_in_splits",
    "write_predictions",
]


def labelled_files(
    folder: Path, classes: list[str], reader: Reader, left_out: list[str]
) -> tuple[list[str], np.ndarray]:
    """Every input under each class folder of ``folder`` (recursively, in sorted order) and
    its class id in ``classes``; files that are no input for ``reader`` go to ``left_out``."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (evaluate reads a folder of class folders)")
    entries = sorted(
        (e for e in os.scandir(folder) if not is_skipped_name(e.name)), key=lambda e: e.name
    )
    loose = [e for e in entries if not e.is_dir()]
    if loose:
        first = loose[0].name + (", a broken link" if not os.path.exists(loose[0].path) else "")
        raise UserError(
            f"{folder}: holds files directly ({first}{', …' if len(loose) > 1 else ''}); "
            "evaluate reads one folder per class, named as the model's classes"
        )
    unknown = [e.name for e in entries if e.name not in classes]
    if unknown:
        shown = ", ".join(classes[:20]) + (", …" if len(classes) > 20 else "")
        raise UserError(
            f"{folder}: folder(s) {', '.join(unknown)} name no class of this model ({shown})"
        )
    sources: list[str] = []
    labels: list[int] = []
    for entry in entries:
        found = expand_inputs([entry.path], reader, left_out=left_out)
        sources += found
        labels += [classes.index(entry.name)] * len(found)
    if not sources:
        raise UserError(f"{folder}: no inputs in its class folders")
    return sources, np.asarray(labels, dtype=np.int64)


def seen_in_splits(sources: list[str], splits_dir: Path) -> dict[str, int]:
    """How many of ``sources`` have the same bytes as a file of each split the split stage
    wrote in ``splits_dir`` (its CSVs name every file with its sha256); empty when there are
    none. A model scored on files it trained or was selected on scores too well."""
    hashes: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        path = splits_dir / f"{split}.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                hashes[split] = {row["sha256"] for row in csv.DictReader(f) if row.get("sha256")}
    if not any(hashes.values()):
        return {}
    seen = dict.fromkeys(hashes, 0)
    for source in sources:
        try:
            digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError:
            continue  # scoring names it
        for split, known in hashes.items():
            seen[split] += digest in known
    return seen


@dataclass
class Scored:
    """What the model said of each file that could be decoded, and why the others could not."""

    sources: list[str]  # decoded, in input order
    labels: np.ndarray
    logits: np.ndarray
    failed: list[tuple[str, str]]  # (path, reason)

    @cached_property
    def probs(self) -> np.ndarray:
        """Softmax of the logits, once for the predictions file and the pictures."""
        return softmax(self.logits)


def score(
    runner: Runner,
    reader: Reader,
    sources: list[str],
    labels: np.ndarray,
    batch_size: int = 64,
    workers: int = 0,
) -> Scored:
    kept: list[int] = []
    logits: list[np.ndarray] = []
    failed: list[tuple[str, str]] = []
    start = 0
    for chunk, decoded, out in decoded_batches(runner, reader, sources, batch_size, workers):
        for i, d in enumerate(decoded):
            if isinstance(d, str):
                failed.append((chunk[i], d))
            else:
                kept.append(start + i)
        if out is not None:
            logits.append(out)
        start += len(chunk)
    if not kept:
        raise UserError(f"none of the {len(sources)} files could be decoded ({failed[0][1]})")
    return Scored([sources[i] for i in kept], labels[kept], np.concatenate(logits), failed)


def metrics_of(scored: Scored, classes: list[str], resamples: int, seed: int) -> dict[str, Any]:
    """The test stage's metrics of the scored files; the baseline always answers the folder's
    most frequent class (the model's train split is not at hand)."""
    import torch

    from torchstages.evaluation.metrics import classification_metrics

    majority = int(np.bincount(scored.labels, minlength=len(classes)).argmax())
    metrics = classification_metrics(
        torch.from_numpy(scored.logits),
        scored.labels,
        classes,
        resamples=resamples,
        seed=seed,
        majority=majority,
    )
    metrics["failed"] = len(scored.failed)
    return metrics


def summary_lines(metrics: dict[str, Any], classes: list[str]) -> Iterator[str]:
    """A few lines for the terminal: headline numbers, then recall per class present."""

    def with_ci(key: str) -> str:
        value = f"{metrics[key]:.4f}"
        if f"{key}_ci_low" in metrics:
            value += f" [{metrics[f'{key}_ci_low']:.4f}, {metrics[f'{key}_ci_high']:.4f}]"
        return value

    yield (
        f"accuracy {with_ci('accuracy')}, always the most frequent class "
        f"{metrics['baseline_accuracy']:.4f}"
    )
    yield f"balanced accuracy {with_ci('balanced_accuracy')}, macro F1 {with_ci('f1_macro')}"
    yield f"log loss {with_ci('loss')}, ECE {with_ci('ece')}"
    width = max(len("class"), *(len(c) for c in classes))
    yield f"{'class':<{width}}  {'files':>6}  {'recall':>6}  {'precision':>9}"
    for name in classes:
        row = metrics["per_class"][name]
        if row["support"]:
            yield (
                f"{name:<{width}}  {row['support']:>6}  {row['recall']:>6.3f}  "
                f"{row['precision']:>9.3f}"
            )


def write_predictions(path: Path, scored: Scored, classes: list[str]) -> None:
    """One CSV row per file: its path, true class, predicted class and that class's
    probability, and whether they agree (failed files with their reason, at the end)."""
    probs = scored.probs
    predicted = probs.argmax(1)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class", "predicted", "probability", "correct", "error"])
        for i, source in enumerate(scored.sources):
            writer.writerow(
                [
                    source,
                    classes[scored.labels[i]],
                    classes[predicted[i]],
                    six_decimals(float(probs[i, predicted[i]])),
                    int(predicted[i] == scored.labels[i]),
                    "",
                ]
            )
        for source, reason in scored.failed:
            writer.writerow([source, "", "", "", "", reason])


def draw_pictures(
    out_dir: Path, scored: Scored, classes: list[str], reader: Reader, name: str
) -> None:
    """The test stage's pictures of the scored files: ``out_dir/confusion.png`` and
    ``out_dir/wrong.png`` (as many most confidently wrong as the test stage's default
    ``gallery_size``, decoded again for the picture)."""
    from torchstages.evaluation.evaluate import draw_class_pictures
    from torchstages.params.evaluate import EvaluateParams

    def images_at(indices: np.ndarray) -> np.ndarray:
        sources = [scored.sources[i] for i in indices]
        decoded = [reader.decode(Path(s).read_bytes(), s)["pixels"] for s in sources]
        return np.stack(decoded) if decoded else np.zeros((0, 1, 1, 1), dtype=np.uint8)

    shown = EvaluateParams.model_fields["gallery_size"].default
    draw_class_pictures(out_dir, name, images_at, scored.probs, scored.labels, classes, shown)
