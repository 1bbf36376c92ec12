"""Transfer learning: start a model from saved weights, and split it into head and backbone.

Convention: every model built by :func:`torchstages.models.build_model` has a ``head_name``
attribute, the dotted name of its final classification layer (``fc``, ``classifier.3``, ``head``,
``net.5``). That layer is the *head*: it is sized for our classes, always freshly initialised,
and the only part that trains under ``freeze: backbone``. Every other parameter is *backbone*.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from torchstages.errors import UserError
from torchstages.params.base import Section

__all__ = [
    "TransferSpec",
    "SpecWithTransfer",
    "PretrainedReport",
    "is_weights_name",
    "load_pretrained",
    "read_state_dict",
    "cached_weights_file",
    "adapt_in_channels",
    "split_head_backbone",
    "freeze_backbone",
]

log = logging.getLogger(__name__)

_KEY = "train.model.transfer.pretrained"  # the param every error here is about

_WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9_]+_Weights\.[A-Za-z0-9_]+$")
_SUFFIXES = (".pt", ".pth", ".safetensors")


def is_weights_name(source: str) -> bool:
    """True for a torchvision weights name such as ``ResNet18_Weights.IMAGENET1K_V1``."""
    return bool(_WEIGHTS_NAME.match(source))


class TransferSpec(Section):
    """Where the weights start from and which part trains; the same for every architecture."""

    pretrained: str = Field(
        "none",
        description="none; a state dict file (.pt, .pth, .safetensors, e.g. a copy of a previous "
        "run's model.safetensors); or a torchvision weights name such as "
        "ResNet18_Weights.IMAGENET1K_V1, read only from the local torch cache",
    )
    freeze: Literal["none", "backbone"] = Field(
        "none", description="backbone: train only the head (the final classifier layer)"
    )
    unfreeze_after: int = Field(
        0,
        ge=0,
        description="with freeze: backbone, train everything after this many epochs; 0 = never",
    )
    backbone_lr_scale: float = Field(
        0.1,
        gt=0,
        le=1,
        description="after unfreezing, the backbone trains at lr × this (the head at lr)",
    )

    @field_validator("pretrained", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        return "none" if value is None else value  # YAML `pretrained: null` / `~`

    @field_validator("pretrained")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value == "none" or is_weights_name(value) or value.lower().endswith(_SUFFIXES):
            return value
        raise ValueError(
            "expected none, a .pt/.pth/.safetensors file or a torchvision weights name "
            "like ResNet18_Weights.IMAGENET1K_V1"
        )

    @model_validator(mode="after")
    def _freeze_rules(self) -> TransferSpec:
        if self.unfreeze_after and self.freeze != "backbone":
            raise ValueError("unfreeze_after needs freeze: backbone")
        if self.freeze == "backbone" and self.pretrained == "none":
            # a frozen random backbone is almost always a forgotten `pretrained`
            raise ValueError("freeze: backbone needs pretrained weights (pretrained is none)")
        return self


class SpecWithTransfer(Section):
    """Base of every model spec: the ``transfer`` block and its check against the architecture."""

    transfer: TransferSpec = Field(
        default_factory=TransferSpec, description="pretrained weights and freezing"
    )

    def weights_arch(self) -> str | None:
        """The torchvision architecture whose weights names this spec accepts (None: no names)."""
        return None

    @model_validator(mode="after")
    def _weights_fit_arch(self) -> SpecWithTransfer:
        source = self.transfer.pretrained
        if not is_weights_name(source):
            return self
        # ResNet18_Weights -> resnet18, MobileNet_V3_Small_Weights -> mobilenet_v3_small
        for_arch = source.split(".")[0].removesuffix("_Weights").lower()
        arch = self.weights_arch()
        if arch is None:
            raise ValueError(f"{source} is a torchvision weights name: it needs name: torchvision")
        if for_arch != arch:
            raise ValueError(f"{source} are weights for {for_arch}, not for arch {arch}")
        return self


@dataclass(frozen=True)
class PretrainedReport:
    """Which tensors of the model came from the file: the one line a user needs to trust it."""

    source: str
    loaded: list[str]  # copied as they are
    adapted: list[str]  # stem kernels converted to our number of input channels
    head: list[str]  # the head's tensors: freshly initialised by design
    from_data: list[str]  # statistics of the training data (a table's scaling): never copied
    fresh: list[str]  # backbone tensors the file had no match for (name or shape)
    unused: list[str]  # tensors in the file that fit nothing in the model

    def summary(self) -> str:
        total = len(self.loaded) + len(self.adapted) + len(self.fresh)
        line = (
            f"{self.source}: {len(self.loaded) + len(self.adapted)} of {total} "
            f"backbone tensors loaded"
        )
        if self.adapted:
            line += f" ({', '.join(self.adapted)} summed to our input channels)"
        line += f"; head {', '.join(self.head)} fresh"
        if self.from_data:
            line += f"; from this data, not the file: {_first(self.from_data)}"
        if self.fresh:
            line += f"; NO match by name and shape (random init): {_first(self.fresh)}"
        if self.unused:
            line += f"; unused from the file: {_first(self.unused)}"
        return line


def _first(names: list[str], n: int = 4) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def cached_weights_file(name: str) -> Path:
    """The local torch-cache file of a torchvision weights name; never downloads it."""
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"{_KEY}: {name!r} is not a torchvision weights name") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not path.is_file():
        raise UserError(
            f"{_KEY}: {name} is not in the local torch cache ({path} missing); nothing is "
            f"downloaded here: copy {weights.url} there, or point TORCH_HOME at a cache that has it"
        )
    return path


def read_state_dict(source: str) -> tuple[dict[str, torch.Tensor], Path]:
    """Tensors of a weights file (or cached torchvision weights), without unpickling objects.

    Accepts a bare state dict, or a dict holding one under ``model`` or ``state_dict`` (our
    ``models/checkpoint.pt``, most training scripts); a ``module.`` prefix from DDP is dropped.
    """
    path = cached_weights_file(source) if is_weights_name(source) else Path(source)
    if path.is_dir():
        raise UserError(f"{_KEY}: {path}: is a folder; give the weights file in it")
    if not path.is_file():
        raise UserError(f"{_KEY}: {path}: file not found")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, which would run the file's code: only its
        # own finding is kept, "Unsupported global" (a pickled object) or why the bytes broke
        found = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        reason = found[1].split(". ")[0] if found else "not a torch.save file"
        advice = (
            "it holds Python objects besides tensors, which are never unpickled here: save the "
            "model's state_dict() alone, or use safetensors"
            if reason.startswith("Unsupported global")
            else f"{reason}: not written by torch.save (a plain pickle.dump?), or a broken file; "
            "save it with torch.save(model.state_dict()) or as safetensors"
        )
        raise UserError(f"{_KEY}: {path}: not a readable state dict ({advice})") from None
    except Exception as exc:  # corrupt files: the user's file, not our bug
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(
            f"{_KEY}: {path}: not a readable state dict ({type(exc).__name__}: {first})"
        ) from None
    state = _unwrap(raw)
    if state is None:
        raise UserError(f"{_KEY}: {path}: no state dict (mapping of names to tensors) inside")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, path


def _unwrap(raw: Any) -> dict[str, torch.Tensor] | None:
    def is_state(obj: Any) -> bool:
        return isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())

    if is_state(raw):
        return raw
    if isinstance(raw, dict):
        for key in ("model", "state_dict"):
            if is_state(raw.get(key)):
                return raw[key]
    return None


def adapt_in_channels(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """A conv kernel (O, C_in, kH, kW) for ``channels`` inputs: each gets sum over C_in / channels.

    An image whose channels are all equal (grayscale, or grayscale repeated to RGB) then gives
    exactly the activations the original kernel gave: 3 -> 1 channel is the sum of the RGB kernels.
    """
    summed = kernel.sum(dim=1, keepdim=True)  # (O, 1, kH, kW)
    return (summed / channels).repeat(1, channels, 1, 1)


def load_pretrained(model: nn.Module, source: str) -> PretrainedReport:
    """Copy every backbone tensor whose name and shape match from ``source`` into ``model``.

    The head is always skipped (its size is our number of classes), and so is what the model
    computes from its own training data (``model.fitted_to_data``: name prefixes); the stem conv
    is adapted when only its input channels differ (see :func:`adapt_in_channels`). A file that
    matches no backbone tensor is a :class:`UserError`: it is weights for another architecture.
    """
    state, path = read_state_dict(source)
    head_prefix = model.head_name + "."  # type: ignore[operator]
    # a table's medians, means, stds and category offsets: another dataset's would silently
    # mis-scale every input
    from_data_prefixes = tuple(getattr(model, "fitted_to_data", ()))
    stem = _stem_weight(model)
    target = model.state_dict()
    merged, loaded, adapted, head, fresh, from_data = dict(target), [], [], [], [], []
    for name, tensor in target.items():
        src = state.get(name)
        if name.startswith(head_prefix):
            head.append(name)
        elif name.startswith(from_data_prefixes):
            from_data.append(name)
        elif src is not None and src.shape == tensor.shape:
            merged[name] = src
            loaded.append(name)
        elif src is not None and name == stem and _only_in_channels_differ(src, tensor):
            merged[name] = adapt_in_channels(src.float(), tensor.shape[1])
            adapted.append(name)
        else:
            fresh.append(name)
    if not loaded and not adapted:
        raise UserError(
            f"{_KEY}: {path}: no tensor matches this architecture by name and shape "
            f"(file has e.g. {_first(sorted(state), 3)}; model has e.g. {_first(fresh, 3)})"
        )
    model.load_state_dict(merged)
    used = set(loaded) | set(adapted)
    unused = [
        k for k in state if k not in used and not k.startswith((head_prefix, *from_data_prefixes))
    ]
    report = PretrainedReport(str(source), loaded, adapted, head, from_data, fresh, unused)
    (log.warning if fresh else log.info)("pretrained weights %s", report.summary())
    return report


def _stem_weight(model: nn.Module) -> str | None:
    """State-dict name of the first conv's kernel: the one layer that sees the input channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return f"{name}.weight"
    return None


def _only_in_channels_differ(src: torch.Tensor, dst: torch.Tensor) -> bool:
    return (
        src.ndim == dst.ndim == 4
        and src.shape[0] == dst.shape[0]
        and src.shape[2:] == dst.shape[2:]
        and src.shape[1] != dst.shape[1]
    )


def split_head_backbone(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(head parameters, backbone parameters), e.g. for separate optimizer param groups."""
    head_prefix = model.head_name + "."  # type: ignore[operator]
    head, backbone = [], []
    for name, param in model.named_parameters():
        (head if name.startswith(head_prefix) else backbone).append(param)
    if not head:
        raise ValueError(f"{type(model).__name__}: head_name {model.head_name!r} has no parameters")
    return head, backbone


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Stop (or restart) gradients for every backbone parameter; the head always trains.

    Only ``requires_grad`` changes, as in PyTorch's fine-tuning tutorial: BatchNorm layers in
    the backbone still update their running statistics in train mode.
    """
    for param in split_head_backbone(model)[1]:
        param.requires_grad_(not frozen)
