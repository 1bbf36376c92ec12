"""A text model as the generic export (deploy/export.py) takes it: token ids (N, max_len) int64
and lengths (N,) int64 in, logits out; the vocabulary and the tokenizer rule in the metadata, so
``torchstages predict`` (or any runtime with a few lines of tokenizing) turns raw strings into
the inputs exactly as build-dataset did. Checked against PyTorch on the whole test split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages import paths
from torchstages.deploy.card import CardText, classifier_uses
from torchstages.deploy.exportable import Exportable, KindExport
from torchstages.deploy.parity import ClassParity
from torchstages.errors import UserError
from torchstages.text.evaluate import text_outputs
from torchstages.text.store import load_text_split, load_vocab

__all__ = ["text_export", "text_exportable"]

CONVOLUTIONAL = ("textcnn",)  # int8 convolutions are fast only with calibrated (static) scales
_PARITY_BATCH = 1024  # texts per PyTorch batch in the parity check


def text_exportable(model: nn.Module, card: dict[str, Any], vocab: list[str]) -> Exportable:
    """The deploy side's view of a text model (see deploy/exportable.py)."""
    if hasattr(model, "packed"):
        model.packed = False  # ONNX has no packed sequences: the padded path, masked
    max_len = card["max_len"]
    return Exportable(
        module=model.eval(),
        example={
            "tokens": torch.ones(2, max_len, dtype=torch.long),
            "lengths": torch.tensor([max_len, 1], dtype=torch.long),
        },
        inputs=[
            {
                "name": "tokens",
                "dtype": "int64",
                "shape": [None, max_len],
                "doc": "token ids from the vocabulary (0 padding after the text, 1 unknown)",
            },
            {
                "name": "lengths",
                "dtype": "int64",
                "shape": [None],
                "doc": "tokens of each text in tokens (at most max_len)",
            },
        ],
        metadata={
            "tokenizer": json.dumps(card["tokenizer"], sort_keys=True),
            "vocab": json.dumps(vocab, ensure_ascii=False),
            "max_len": str(max_len),
            "task": card["task"],
            "target": card["target"],
            "text_column": card["text_column"],
            "encoding": card["encoding"],
            "quoting": card["quoting"],
        },
        classes=list(card["classes"]),
    )


def text_export(model: nn.Module, card: dict[str, Any], processed: Path) -> KindExport:
    """A text classifier for the generic export. int8: static for textcnn (ONNX Runtime's
    dynamic ConvInteger ran 5x slower than static QDQ convolutions on SMS spam), dynamic for
    the recurrent and transformer models (linear layers; no calibration needed)."""
    vocab = load_vocab(processed)
    if len(vocab) != card["vocab_size"]:
        raise UserError(f"{processed}: vocabulary differs from the model's (rerun train)")
    tokens, lengths, labels = (np.asarray(a) for a in load_text_split(processed, "test"))
    # before text_exportable switches a recurrent model to its padded path: the reference is
    # the packed run evaluation uses, so parity also proves the two paths agree
    reference = text_outputs(model, tokens, lengths, _PARITY_BATCH, torch.device("cpu")).numpy()
    exp = text_exportable(model, card, vocab)
    tokenizer = card["tokenizer"]
    return KindExport(
        exportable=exp,
        test=_named(tokens, lengths),
        reference=reference,
        truth=labels,
        parity=ClassParity(),
        card=CardText(
            title=f"{card['architecture'].get('name', 'model')} classifier (text)",
            data=[
                f"- kind: text; task: classification of `{card['text_column']}` by "
                f"`{card['target']}` into {len(card['classes'])} classes",
                f"- classes, in output order: {', '.join(f'`{c}`' for c in card['classes'])}",
                f"- tokenizer: {tokenizer['level']} level, lowercase {tokenizer['lowercase']}, "
                f"{tokenizer['normalization']} normalisation; vocabulary {len(vocab)} tokens "
                f"(from the train split); at most {card['max_len']} tokens per text",
            ],
            details=[
                f"Output `logits`: {exp.output.split(': ', 1)[1]}. The tokenizer rule and the "
                "vocabulary are in every file's metadata (`tokenizer`, `vocab`, `max_len`): "
                "`torchstages predict` and `serve` turn raw strings into `tokens` and `lengths` "
                "exactly as build-dataset did; a longer text is cut after its first "
                f"{card['max_len']} tokens.",
            ],
            uses=classifier_uses("texts like the training texts (language, length, style)")
            + [
                "- Words outside the vocabulary count as one unknown token: new vocabulary "
                "(names, slang, another language) is invisible to it."
            ],
            cli=[
                f'torchstages predict --model {paths.ONNX_MODEL} --text "some text to classify"',
                f"torchstages predict texts.csv --model {paths.ONNX_MODEL} --output out.csv",
            ],
            keys=["classes", "tokenizer", "vocab", "max_len"],
            unit="texts",
        ),
        train=lambda: _named(*load_text_split(processed, "train")[:2]),
        int8="static" if card["architecture"]["name"] in CONVOLUTIONAL else "dynamic",
    )


def _named(tokens: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    return {"tokens": np.asarray(tokens), "lengths": np.asarray(lengths)}
