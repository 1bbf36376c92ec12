"""The trained model on disk: weights in safetensors, everything else in a plain-JSON model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from torchstages.errors import UserError
from torchstages.io import atomic_path, read_json, write_json
from torchstages.models import build_network, parse_spec

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
    outputs = len(card["classes"]) if "classes" in card else 1
    model = build_network(card, spec, outputs, pretrained=False)
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
