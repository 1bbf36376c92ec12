"""``torchstages summary``: the train section's model, built for the data it will see, described.

Automates "check the output shape" before a long run: parameter counts, trainable count under
the configured freezing, and the output shape for one input of the configured size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.io import read_json
from torchstages.kinds import kind_of
from torchstages.models import (
    build_model,
    build_network,
    check_output_shape,
    describe_model,
    describe_network,
    freeze_backbone,
)
from torchstages.models.transfer import TransferSpec, load_pretrained
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
    if meta_path.exists() and kind_of(read_json(meta_path)) != "images":
        return _summarize_rows(params_path, meta_path)
    spec = load_section(TrainParams, "train", params_path).model
    data = load_section(BuildDatasetParams, "build_dataset", params_path)
    channels = 1 if data.color == "grayscale" else 3
    size = (data.image_size,) * 2 if isinstance(data.image_size, int) else tuple(data.image_size)
    found, input_from = None, f"{params_path} (build_dataset; {meta_path} not found)"
    if meta_path.exists():
        meta = read_json(meta_path)
        prep = Preprocessing.from_dict(meta["preprocessing"])
        found = len(meta["classes"])
        if (prep.channels, prep.image_size) == (channels, size):
            input_from = str(meta_path)
        else:  # params edited since build-dataset ran: check what the next run will build
            input_from = (
                f"{params_path} (build_dataset; {meta_path} holds "
                f"{(prep.channels, *prep.image_size)} until build-dataset runs again)"
            )
    num_classes = classes if classes is not None else found
    if num_classes is None:
        raise UserError(f"{meta_path}: not found: run build-dataset first, or pass --classes N")
    if num_classes < 2:
        raise UserError(f"--classes: a classifier needs at least 2 classes, got {num_classes}")
    model = build_model(spec, channels, size, num_classes, pretrained=False)
    report = _transfer(model, spec.transfer)
    check_output_shape(model, channels, size, num_classes)
    return {
        **describe_model(model, channels, size),
        "model": spec.model_dump(mode="json", exclude={"transfer"}),
        "transfer": spec.transfer.model_dump(mode="json"),
        "pretrained": report,
        "output": f"logits for {num_classes} classes"
        + (" (--classes)" if classes is not None and meta_path.exists() else ""),
        "input_from": input_from,
    }


def _summarize_rows(params_path: Path, meta_path: Path) -> dict[str, Any]:
    """A table, text or series model: built from the processed dataset's ``meta.json`` with the
    kind's defaults filled in, its pretrained weights loaded and frozen, as train builds it."""
    from torchstages.training.data import params_for_kind

    meta = read_json(meta_path)
    params = params_for_kind(load_section(TrainParams, "train", params_path), meta)
    task = meta.get("task", "classification")
    if task == "classification":
        outputs, output = len(meta["classes"]), f"logits for {len(meta['classes'])} classes"
    elif task == "forecast":
        outputs, output = meta["horizon"], f"the next {meta['horizon']} values of {meta['target']}"
    else:
        outputs, output = 1, f"{meta['target']}, standardised with the train split's mean and std"
    model = build_network(meta, params.model, outputs, pretrained=False)
    report = _transfer(model, params.model.transfer)
    return {
        **describe_network(meta, model),
        "model": params.model.model_dump(mode="json", exclude={"transfer"}),
        "transfer": params.model.transfer.model_dump(mode="json"),
        "pretrained": report,
        "output": output,
        "input_from": f"{meta_path} ({kind_of(meta)})",
    }


def _transfer(model: nn.Module, transfer: TransferSpec) -> str:
    """Load the pretrained weights and freeze the backbone as train does; what was loaded."""
    source = transfer.pretrained
    report = load_pretrained(model, source).summary() if source != "none" else "none"
    if transfer.freeze == "backbone":
        freeze_backbone(model, True)
    return report


def format_summary(info: dict[str, Any]) -> str:
    """The summary as aligned ``key: value`` lines."""
    model = " ".join(f"{k}={v}" for k, v in info["model"].items())
    rows = [
        ("model", model),
        ("input", f"{tuple(info['input_shape'])} from {info['input_from']}"),
        ("output", f"{tuple(info['output_shape'])} {info['output']}"),
        ("parameters", f"{info['parameters']:,}"),
        ("trainable", f"{info['trainable']:,}"),
    ]
    if info["transfer"]:
        rows.append(("transfer", " ".join(f"{k}={v}" for k, v in info["transfer"].items())))
    if info["pretrained"] != "none":
        rows.append(("pretrained", info["pretrained"]))
    return "".join(f"{key + ':':<12}{value}\n" for key, value in rows)
