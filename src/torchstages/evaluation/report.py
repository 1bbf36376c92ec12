"""A short markdown report of one evaluation: what a CI job posts on a pull request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages.data.discover import Row
from torchstages.io import write_text

__all__ = ["write_report"]


def write_report(
    path: Path,
    split: str,
    metrics: dict[str, Any],
    card: dict[str, Any],
    rows: list[Row],
    labels: np.ndarray,
    logits: torch.Tensor,
    worst: int = 10,
) -> None:
    """Headline metrics, the per-class table and the most confidently wrong files."""
    arch = card["architecture"]
    lines = [
        f"# Model report ({split} split)",
        "",
        f"Model `{arch['name']}` ({card['parameters']:,} parameters), "
        f"best epoch {card['best']['epoch'] + 1} by {card['best']['monitor']}.",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {metrics[k]:.4f} |" for k in ("accuracy", "f1_macro", "loss")),
        f"| samples | {metrics['samples']} |",
        "",
        "| class | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
            for name, m in metrics["per_class"].items()
        ),
        "",
    ]
    probs = torch.softmax(logits, 1)
    confidence, predicted = probs.max(1)
    wrong = np.flatnonzero(predicted.numpy() != labels)
    wrong = wrong[np.argsort(-confidence.numpy()[wrong], kind="stable")][:worst]
    classes = card["classes"]
    lines += [f"## Most confidently wrong ({len(wrong)} shown)", ""]
    if len(wrong):
        lines += ["| file | true | predicted | probability |", "|---|---|---|---|"]
        lines += [
            f"| {rows[i].path} | {classes[labels[i]]} | {classes[predicted[i]]} | "
            f"{confidence[i]:.3f} |"
            for i in wrong
        ]
    else:
        lines.append("None: every sample was classified correctly.")
    write_text(path, "\n".join(lines) + "\n")
