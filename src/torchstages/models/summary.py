"""``torchstages summary``: the train section's model, built for the data it will see, described.

Automates "check the output shape" before a long run: parameter counts, trainable count under
the configured freezing, and the output shape for one input of the configured size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.io import read_json
from torchstages.models import build_model, check_output_shape, describe_model, freeze_backbone
from torchstages.models.transfer import load_pretrained
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.params.train import TrainParams
from torchstages.paths import META, PARAMS

__all__ = ["summarize", "format_summary"]


def summarize(
    params_path: Path = PARAMS, meta_path: Path = META, classes: int | None = None
) -> dict[str, Any]:
    """Build ``train.model`` for the processed dataset (or the build_dataset params) and describe it.

    Channels, size and classes come from ``meta_path`` when it exists; otherwise channels and size
    come from the ``build_dataset`` section and ``classes`` must be given. ``classes`` overrides.
    """
    spec = load_section(TrainParams, "train", params_path).model
    if meta_path.exists():
        meta = read_json(meta_path)
        prep = Preprocessing.from_dict(meta["preprocessing"])
        channels, size, found = prep.channels, prep.image_size, len(meta["classes"])
        input_from = str(meta_path)
    else:
        data = load_section(BuildDatasetParams, "build_dataset", params_path)
        channels = 1 if data.color == "grayscale" else 3
        raw_size = data.image_size
        size = (raw_size, raw_size) if isinstance(raw_size, int) else tuple(raw_size)
        found, input_from = None, f"{params_path} (build_dataset; {meta_path} not found)"
    num_classes = classes if classes is not None else found
    if num_classes is None:
        raise UserError(f"{meta_path}: not found: run build-dataset first, or pass --classes N")
    if num_classes < 2:
        raise UserError(f"--classes: a classifier needs at least 2 classes, got {num_classes}")
    model = build_model(spec, channels, size, num_classes, pretrained=False)
    source = spec.transfer.pretrained
    report = load_pretrained(model, source).summary() if source != "none" else "none"
    if spec.transfer.freeze == "backbone":
        freeze_backbone(model, True)
    check_output_shape(model, channels, size, num_classes)
    return {
        **describe_model(model, channels, size),
        "model": spec.model_dump(mode="json", exclude={"transfer"}),
        "transfer": spec.transfer.model_dump(mode="json"),
        "pretrained": report,
        "classes": num_classes,
        "input_from": input_from,
    }


def format_summary(info: dict[str, Any]) -> str:
    """The summary as aligned ``key: value`` lines."""
    model = " ".join(f"{k}={v}" for k, v in info["model"].items())
    rows = [
        ("model", model),
        ("input", f"{tuple(info['input_shape'])} from {info['input_from']}"),
        ("output", f"{tuple(info['output_shape'])} logits for {info['classes']} classes"),
        ("parameters", f"{info['parameters']:,}"),
        ("trainable", f"{info['trainable']:,}"),
        ("transfer", " ".join(f"{k}={v}" for k, v in info["transfer"].items())),
    ]
    if info["pretrained"] != "none":
        rows.append(("pretrained", info["pretrained"]))
    return "".join(f"{key + ':':<12}{value}\n" for key, value in rows)
