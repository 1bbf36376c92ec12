"""The trained model on disk: weights in safetensors, everything else in a plain-JSON model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from torchstages.errors import UserError
from torchstages.io import atomic_path, read_json, write_json
from torchstages.models import build_network, parse_spec

__all__ = ["save_model", "load_model", "load_card", "check_trained_on"]


def save_model(model: nn.Module, card: dict[str, Any], weights: Path, card_path: Path) -> None:
    """Write weights (byte-stable: safetensors, no metadata) and the card (sorted JSON)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    write_json(card_path, card)


def load_card(card_path: Path) -> dict[str, Any]:
    if not card_path.exists():
        raise UserError(f"{card_path}: not found (run the train stage first)")
    card = read_json(card_path)
    if not isinstance(card, dict) or "architecture" not in card:
        raise UserError(f"{card_path}: not a model card (no architecture): rerun the train stage")
    return card


def check_trained_on(card: dict[str, Any], card_path: Path, processed: Path) -> dict[str, Any]:
    """``processed``'s meta.json, after checking that the model was trained on data built this
    way: the card holds train's copy of what build-dataset fitted and decided (preprocessing,
    schema, vocabulary size, windows, classes). Without the check, data rebuilt with other
    params after training is scored with a shape error, or silently wrong."""
    from torchstages.data.store import load_meta
    from torchstages.kinds import kind_of

    meta = load_meta(processed)
    if kind_of(meta) != kind_of(card):
        raise UserError(
            f"{card_path}: the model's kind is {kind_of(card)!r}, {processed / 'meta.json'}'s "
            f"is {kind_of(meta)!r} (rerun train)"
        )
    differ = sorted(key for key in card if key in meta and card[key] != meta[key])
    if differ:
        raise UserError(
            f"{card_path}: the model was trained on data built otherwise ({', '.join(differ)} "
            f"differ from {processed / 'meta.json'}): rerun train (dvc repro)"
        )
    return meta


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
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{weights}: cannot read the weights ({exc}): rerun train") from None
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    missing = [name for name in shapes if name not in state]
    unexpected = [name for name in state if name not in shapes]
    # another shape: an edited card, or the weights of another run
    resized = [
        name for name in state if name in shapes and tuple(state[name].shape) != shapes[name]
    ]
    if missing or unexpected or resized:
        raise UserError(
            f"{weights}: does not match the architecture in {card_path} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shape {resized[:3]})"
        )
    model.load_state_dict(state)
    # eval mode: dropout off, BatchNorm uses its running statistics
    return model.eval(), card
