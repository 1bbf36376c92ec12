"""The build-dataset stage for texts: vocabulary and ``max_len`` from the train split, token ids
for every split.

Writes ``{split}_tokens.npy`` (int64 (N, max_len), 0-padded), ``{split}_lengths.npy`` (int64
(N,): tokens kept, at most max_len), ``{split}_labels.npy`` (int64), ``vocab.json`` (the
tokenizer rule and the tokens in id order: 0 padding, 1 unknown), ``texts.json`` (the val and
test texts, for the evaluation's list of wrong texts) and ``meta.json`` (with the
unknown-token rate and the count of cut texts per split). Only the train rows decide the
vocabulary, so val and test words never leak into it: their unseen words are unknown, as they
will be for new texts.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.io import atomic_dir, six_decimals, write_json, write_npy
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.paths import SPLIT_NAMES
from torchstages.tables.build import load_table_rows
from torchstages.text.store import TEXTS_FILE, VOCAB_FILE
from torchstages.text.tokenize import RESERVED, encode_texts, tokenize, tokenizer_rule

__all__ = ["build_texts", "build_vocab"]

log = logging.getLogger(__name__)
AUTO_PERCENTILE = 95


def build_vocab(texts: list[list[str]], min_freq: int, max_size: int) -> list[str]:
    """Reserved tokens, then tokens seen at least ``min_freq`` times, most frequent first (ties
    in code point order), at most ``max_size`` of them."""
    counts = Counter(tok for tokens in texts for tok in tokens)
    kept = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
    return [*RESERVED, *kept[:max_size]]


# Chinese and Japanese: written without spaces between words, so a word token is a whole phrase
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def _name_unspaced_scripts(texts: list[str]) -> None:
    written = sum(bool(_UNSPACED.search(t)) for t in texts)
    if written > len(texts) / 2:
        log.warning(
            "build-dataset: %d of %d train texts are in a script written without spaces "
            "(Chinese, Japanese): word tokens would be whole phrases; set "
            "build_dataset.text.level: char",
            written,
            len(texts),
        )


def build_texts(
    params: BuildDatasetParams, raw_dir: Path, splits_dir: Path, out_dir: Path
) -> dict[str, int]:
    summary, frames = load_table_rows(raw_dir, splits_dir, words=False)
    column = summary["features"][0]
    texts = {name: frames[name][column].tolist() for name in SPLIT_NAMES}
    rule = tokenizer_rule(params.text.level, params.text.lowercase)
    train_tokens = [tokenize(t, rule) for t in texts["train"]]
    if params.text.level == "word":
        _name_unspaced_scripts(texts["train"])
    vocab = build_vocab(train_tokens, params.text.min_freq, params.text.max_size)
    max_len = params.text.max_len
    if max_len == "auto":
        lengths = [len(t) for t in train_tokens]
        max_len = max(1, int(np.ceil(np.percentile(lengths, AUTO_PERCENTILE))))
    index = {tok: i for i, tok in enumerate(vocab)}
    label_of = {c: i for i, c in enumerate(summary["classes"])}
    meta: dict[str, Any] = {
        "kind": "text",
        "task": "classification",
        "file": summary["file"],
        "text_column": column,
        # how the file was read (split.text): predict reads new files of texts the same way
        "encoding": summary["encoding"],
        "quoting": summary["quoting"],
        "target": summary["target"],
        "classes": summary["classes"],
        "tokenizer": rule,
        "vocab_size": len(vocab),
        # what the params made, not the params (min_freq, max_size): a setting that leaves
        # the vocabulary as it was leaves this file, and so train, as they were
        "max_len": max_len,
        "counts": {name: len(texts[name]) for name in SPLIT_NAMES},
        "unknown_rate": {},
        "truncated": {},
    }
    with atomic_dir(out_dir) as staging:
        for name in SPLIT_NAMES:
            ids, lengths, counts = encode_texts(texts[name], rule, index, max_len)
            labels = [label_of[v] for v in frames[name][summary["target"]]]
            write_npy(staging / f"{name}_tokens.npy", ids)
            write_npy(staging / f"{name}_lengths.npy", lengths)
            write_npy(staging / f"{name}_labels.npy", np.array(labels, dtype=np.int64))
            rate = counts["unknown"] / max(counts["tokens"], 1)
            meta["unknown_rate"][name] = six_decimals(rate)
            meta["truncated"][name] = counts["truncated"]
            log.info(
                "build-dataset: %s %d texts, %d tokens, %.2f%% unknown, %d cut at %d tokens",
                name,
                len(ids),
                counts["tokens"],
                100 * rate,
                counts["truncated"],
                max_len,
            )
        write_json(staging / VOCAB_FILE, {"tokenizer": rule, "tokens": vocab})
        write_json(staging / TEXTS_FILE, {name: texts[name] for name in ("val", "test")})
        write_json(staging / "meta.json", meta)
    log.info(
        "build-dataset: %s tokens, vocabulary %d (with padding and unknown) from the train split, "
        "max_len %d%s",
        params.text.level,
        len(vocab),
        max_len,
        f" (the {AUTO_PERCENTILE}th percentile of train lengths)"
        if params.text.max_len == "auto"
        else "",
    )
    return meta["counts"]
