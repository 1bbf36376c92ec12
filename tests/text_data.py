"""Small generated text tables for the text tests: learnable from their words, with duplicates
that differ only in case and spacing, and an empty text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TOPICS = {
    "sport": ["goal", "match", "team", "score", "coach", "league", "referee"],
    "food": ["recipe", "oven", "garlic", "bake", "flour", "dinner", "spicy"],
    "weather": ["rain", "sunny", "storm", "cloud", "forecast", "wind", "snow"],
}
FILLER = ["the", "a", "today", "really", "we", "it", "was", "and", "so", "very", "I", "think"]


def make_texts(rows: int = 150, classes: int = 3, seed: int = 0) -> pd.DataFrame:
    """``rows`` texts of 4-12 words: filler words and two or three words of the label's topic."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)[:classes]
    labels = [names[i % classes] for i in range(rows)]
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, rng.integers(2, 9)))
        words += list(rng.choice(TOPICS[label], rng.integers(2, 4)))
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
    frame = pd.DataFrame({"id": [f"t{i:04d}" for i in range(rows)], "text": texts, "label": labels})
    # duplicates after normalisation: the same text shouted, and with extra spaces
    frame.loc[rows - 1, ["text", "label"]] = [texts[0].upper(), labels[0]]
    frame.loc[rows - 2, ["text", "label"]] = [texts[0].replace(" ", "  "), labels[0]]
    return frame


def write_texts(frame: pd.DataFrame, folder: Path, name: str = "texts.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
