"""Export a text model to ONNX: token ids (N, max_len) int64 and lengths (N,) int64 in, logits
out; the vocabulary and the tokenizer rule in the metadata, so ``torchstages predict`` (or any
ONNX runtime with a few lines of tokenizing) turns raw strings into the inputs exactly as
build-dataset did. Checked against PyTorch on the whole test split.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages.deploy.export import onnx_only, record_onnx_parity
from torchstages.deploy.exportable import Exportable
from torchstages.errors import UserError
from torchstages.io import atomic_dir, atomic_path
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams
from torchstages.text.evaluate import text_outputs
from torchstages.text.predict import onnx_logits
from torchstages.text.store import load_text_split, load_vocab

__all__ = ["export_and_verify_text", "export_text_onnx", "text_exportable"]

log = logging.getLogger(__name__)
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
        },
    )


def export_text_onnx(
    model: nn.Module, card: dict[str, Any], vocab: list[str], target: Path, opset: int
) -> None:
    import onnx

    from torchstages.deploy.export import onnx_proto

    exp = text_exportable(model, card, vocab)
    metadata = {
        **exp.metadata,
        "kind": "text",
        "format": "onnx",
        "inputs": json.dumps(exp.inputs, sort_keys=True),
        "output": "float32 (N, classes) logits; softmax gives probabilities",
        "classes": json.dumps(card["classes"]),
    }
    with atomic_path(target) as tmp:
        onnx.save_model(onnx_proto(exp, metadata, opset), str(tmp))


def export_and_verify_text(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    export_dir: Path,
    metrics_path: Path,
) -> dict[str, Any]:
    """Export ONNX into ``export_dir``, run ONNX Runtime and PyTorch (packed sequences, as
    evaluation runs it) on the whole test split, compare, write metrics. A model that disagrees
    leaves the previous export folder as it was."""
    import onnxruntime as ort

    onnx_only(params, "a text model")
    model, card = load_model(weights, card_path)
    vocab = load_vocab(processed)
    if len(vocab) != card["vocab_size"]:
        raise UserError(f"{processed}: vocabulary differs from the model's (rerun train)")
    tokens, lengths, _ = (np.asarray(a) for a in load_text_split(processed, "test"))
    reference = text_outputs(model, tokens, lengths, _PARITY_BATCH, torch.device("cpu")).numpy()
    with atomic_dir(export_dir) as staging:
        export_text_onnx(model, card, vocab, staging / "model.onnx", params.opset)
        session = ort.InferenceSession(
            str(staging / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        ours = onnx_logits(session, tokens, lengths)
        diff = float(np.abs(ours - reference).max())
        agreement = float((ours.argmax(1) == reference.argmax(1)).mean())
        parity = {"max_abs_logit_diff": float(f"{diff:.1e}"), "prediction_agreement": agreement}
        record_onnx_parity(parity, params, export_dir, metrics_path, len(tokens), "texts")
    return parity
