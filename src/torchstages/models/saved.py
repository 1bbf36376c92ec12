"""The trained model on disk: weights in safetensors, everything else in a plain-JSON model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.io import atomic_path, read_json, write_json
from torchstages.kinds import kind_of
from torchstages.models import (
    build_model,
    build_series_model,
    build_table_model,
    build_text_model,
    parse_spec,
)

__all__ = ["save_model", "load_model", "load_card"]


def save_model(model: nn.Module, card: dict[str, Any], weights: Path, card_path: Path) -> None:
    """Write weights (byte-stable: safetensors, no metadata) and the card (sorted JSON)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    write_json(card_path, card)


def load_card(card_path: Path) -> dict[str, Any]:
    if not card_path.exists():
        raise UserError(f"{card_path}: not found (run the train stage first)")
    return read_json(card_path)


def load_model(weights: Path, card_path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from its card, load the weights, and return it in eval mode."""
    card = load_card(card_path)
    spec = parse_spec(card["architecture"])
    # pretrained=False: the trained weights below replace everything, and the pretrained
    # file named in the card need not exist where the model is evaluated or exported
    if kind_of(card) == "table":
        outputs = len(card["classes"]) if card["task"] == "classification" else 1
        model = build_table_model(spec, card["schema"], outputs, pretrained=False)
    elif kind_of(card) == "series":
        shape = (len(card["features"]), card["lookback"], card["horizon"])
        relative = card["level"] == "relative"
        model = build_series_model(spec, *shape, relative, pretrained=False)
    elif kind_of(card) == "text":
        model = build_text_model(spec, card, len(card["classes"]), pretrained=False)
    else:
        prep = Preprocessing.from_dict(card["preprocessing"])
        model = build_model(
            spec, prep.channels, prep.image_size, len(card["classes"]), pretrained=False
        )
    if not weights.exists():
        raise UserError(f"{weights}: not found (run the train stage first)")
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise UserError(
            f"{weights}: does not match the architecture in {card_path} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    # eval mode: dropout off, BatchNorm uses its running statistics
    return model.eval(), card
