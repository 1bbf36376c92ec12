"""Model registry: a spec (name + arguments from params) becomes an ``nn.Module``.

Every built model returns logits and has a ``head_name`` (its final classifier layer); see
:mod:`torchstages.models.transfer` for pretrained weights, head/backbone split and freezing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import torch
from pydantic import Field, TypeAdapter, ValidationError
from torch import nn

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.kinds import kind_of
from torchstages.models.cnn import CNN, CNNSpec
from torchstages.models.mlp import MLP, TABLE_ONLY, MLPSpec
from torchstages.models.recurrent import TEXT_ONLY, RecurrentSpec
from torchstages.models.series import TCN, Recurrent, TCNSpec, WindowMLP
from torchstages.models.tabular import FTTransformer, FTTransformerSpec, TableMLP
from torchstages.models.text import TEXT_BUILDERS, TextCNNSpec, TextTransformerSpec
from torchstages.models.torchvision import TorchvisionSpec, build_torchvision
from torchstages.models.transfer import freeze_backbone, load_pretrained, split_head_backbone

__all__ = [
    "ModelSpec",
    "AnySpec",
    "build_model",
    "build_network",
    "describe_network",
    "build_table_model",
    "build_series_model",
    "build_text_model",
    "parse_spec",
    "recorded_spec",
    "check_output_shape",
    "describe_model",
    "describe_table_model",
    "describe_series_model",
    "describe_text_model",
    "split_head_backbone",
    "freeze_backbone",
]

log = logging.getLogger(__name__)

AnySpec = (
    MLPSpec
    | CNNSpec
    | TorchvisionSpec
    | FTTransformerSpec
    | RecurrentSpec
    | TCNSpec
    | TextCNNSpec
    | TextTransformerSpec
)
ModelSpec = Annotated[AnySpec, Field(discriminator="name")]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": CNN,
    "torchvision": build_torchvision,
}
_TABLE_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": TableMLP,
    "ft_transformer": FTTransformer,
}
_SERIES_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lstm": Recurrent,
    "gru": Recurrent,
    "mlp": WindowMLP,
    "tcn": TCN,
}


def recorded_spec(spec: AnySpec, kind: str) -> dict[str, Any]:
    """``spec`` as the model card records it: without the keys that only another kind reads
    (a forecaster's LSTM has no pooling, a series' MLP no ensemble); :func:`parse_spec` gives
    them their defaults back."""
    if isinstance(spec, MLPSpec) and kind != "table":
        others = TABLE_ONLY
    elif isinstance(spec, RecurrentSpec) and kind == "series":
        others = TEXT_ONLY
    else:
        others = ()
    return {k: v for k, v in spec.model_dump(mode="json").items() if k not in others}


def parse_spec(raw: dict[str, Any]) -> AnySpec:
    """Validate a plain-dict spec, e.g. the ``architecture`` block of ``models/model.json``."""
    try:
        return TypeAdapter(ModelSpec).validate_python(raw)
    except ValidationError as exc:
        raise UserError(f"model spec {raw!r}: {exc.errors()[0]['msg']}") from None


def build_network(
    record: dict[str, Any],
    spec: AnySpec,
    outputs: int,
    *,
    pretrained: bool = True,
    vocab: list[str] | None = None,
) -> nn.Module:
    """``spec`` built for the data ``record`` describes: a processed dataset's ``meta.json`` (train,
    ``summary``) or a model card (``load_model``: evaluation and export), which both carry what
    each kind's input shapes come from. ``outputs``: logits, or 1 for a regression (a
    forecaster's come from its horizon); ``vocab``: texts with pretrained vectors. An image
    network's output shape is checked on a dummy batch."""
    kind = kind_of(record)
    if kind == "table":
        return build_table_model(spec, record["schema"], outputs, pretrained=pretrained)
    if kind == "series":
        shape = (len(record["features"]), record["lookback"], record["horizon"])
        relative = record["level"] == "relative"
        return build_series_model(spec, *shape, relative, pretrained=pretrained)
    if kind == "text":
        return build_text_model(spec, record, outputs, vocab=vocab, pretrained=pretrained)
    prep = Preprocessing.from_dict(record["preprocessing"])
    model = build_model(spec, prep.channels, prep.image_size, outputs, pretrained=pretrained)
    check_output_shape(model, prep.channels, prep.image_size, outputs)
    return model


def describe_network(record: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Parameter counts and input/output shapes of one sample of the data ``record`` describes
    (for the train log and ``summary``)."""
    kind = kind_of(record)
    if kind == "table":
        return describe_table_model(model, record["schema"])
    if kind == "series":
        return describe_series_model(model, record["lookback"], len(record["features"]))
    if kind == "text":
        return describe_text_model(model, record["max_len"])
    prep = Preprocessing.from_dict(record["preprocessing"])
    return describe_model(model, prep.channels, prep.image_size)


def build_model(
    spec: AnySpec,
    in_channels: int,
    image_size: tuple[int, int],
    num_classes: int,
    *,
    pretrained: bool = True,
) -> nn.Module:
    """Build the network for inputs of shape (N, in_channels, *image_size) and ``num_classes`` logits.

    The network returns raw logits: CrossEntropyLoss applies log-softmax itself, and a softmax
    here would silently train on squashed gradients. ``spec.transfer.pretrained`` is loaded into
    the backbone unless ``pretrained`` is False (rebuilding a trained model from
    its card, whose own weights replace everything anyway). Freezing is the training loop's job.
    """
    if spec.name not in _BUILDERS:
        raise UserError(
            f"train.model.name: {spec.name} does not take images; for images use "
            f"{', '.join(_BUILDERS)}"
        )
    model = _BUILDERS[spec.name](spec, in_channels, image_size, num_classes)
    if pretrained and spec.transfer.pretrained != "none":
        load_pretrained(model, spec.transfer.pretrained)
    return model


def build_table_model(
    spec: AnySpec, schema: dict[str, Any], outputs: int, *, pretrained: bool = True
) -> nn.Module:
    """Build the network for a table's fitted ``schema`` (see :mod:`torchstages.tables.schema`),
    returning ``outputs`` values per row: logits, or one standardised regression value."""
    model = _build(_TABLE_BUILDERS, "tables", spec, schema, outputs)
    if pretrained and spec.transfer.pretrained != "none":
        load_pretrained(model, spec.transfer.pretrained)
    return model


def build_series_model(
    spec: AnySpec,
    features: int,
    lookback: int,
    horizon: int,
    relative: bool,
    *,
    pretrained: bool = True,
) -> nn.Module:
    """Build the forecaster for windows (N, ``lookback``, ``features``) -> (N, ``horizon``),
    seeing the target relative to its last value when ``relative`` (see
    :mod:`torchstages.models.series`)."""
    model = _build(_SERIES_BUILDERS, "series", spec, features, lookback, horizon)
    model.relative = relative
    if pretrained and spec.transfer.pretrained != "none":
        load_pretrained(model, spec.transfer.pretrained)
    return model


def build_text_model(
    spec: AnySpec,
    info: dict[str, Any],
    outputs: int,
    *,
    vocab: list[str] | None = None,
    pretrained: bool = True,
) -> nn.Module:
    """Build the network for texts tokenised as ``info`` says (``vocab_size``, ``max_len``),
    returning ``outputs`` logits; ``vocab`` (id order) is needed only for ``spec.vectors``."""
    model = _build(TEXT_BUILDERS, "texts", spec, info, outputs)
    if pretrained and spec.vectors is not None and vocab is not None:
        from torchstages.models.text import load_vectors

        model.vectors_found = load_vectors(model, spec, vocab)
    if pretrained and spec.transfer.pretrained != "none":
        load_pretrained(model, spec.transfer.pretrained)
    return model


def _build(
    builders: dict[str, Callable[..., nn.Module]], what: str, spec: AnySpec, *args: Any
) -> nn.Module:
    """``builders[spec.name](spec, *args)``; a name of another kind's model, or arguments the
    architecture rejects, are one-line errors."""
    if spec.name not in builders:
        raise UserError(
            f"train.model.name: {spec.name} does not take {what}; for {what} use "
            f"{', '.join(builders)}"
        )
    try:
        return builders[spec.name](spec, *args)
    except ValueError as exc:
        raise UserError(f"train.model: {exc}") from None


def check_output_shape(
    model: nn.Module, in_channels: int, image_size: tuple[int, int], num_classes: int
) -> None:
    """Run one dummy input through the model; a wrong output shape is a clear error, not a crash."""
    out = _dummy_output(model, in_channels, image_size, batch=2)
    if tuple(out.shape) != (2, num_classes):
        raise UserError(
            f"model output shape {tuple(out.shape)[1:]} does not match {num_classes} classes "
            f"for input (C={in_channels}, H={image_size[0]}, W={image_size[1]})"
        )


def describe_model(
    model: nn.Module, in_channels: int, image_size: tuple[int, int]
) -> dict[str, Any]:
    """Parameter counts and the output shape for one input: for the train log and ``summary``.

    Returns ``parameters``, ``trainable`` (after any freezing), ``input_shape``, ``output_shape``.
    """
    out = _dummy_output(model, in_channels, image_size, batch=1)
    return {
        **_counts(model),
        "input_shape": [1, in_channels, *image_size],
        "output_shape": list(out.shape),
    }


def _dummy_output(
    model: nn.Module, in_channels: int, image_size: tuple[int, int], batch: int
) -> torch.Tensor:
    """Zeros through the model in eval mode (BatchNorm takes any batch), training mode restored."""
    try:
        return _run_zeros(model, [(batch, in_channels, *image_size)], [torch.float32])
    except RuntimeError as exc:  # e.g. an input too small for the architecture's strides
        raise UserError(
            f"model {type(model).__name__} cannot take input (C={in_channels}, "
            f"H={image_size[0]}, W={image_size[1]}): {str(exc).splitlines()[0]}"
        ) from None


def _run_zeros(
    model: nn.Module, shapes: list[tuple[int, ...]], dtypes: list[torch.dtype]
) -> torch.Tensor:
    """One batch of zero inputs (one tensor per shape) through ``model`` on its own device, in
    eval mode and without gradients; the training mode is restored."""
    device = next(model.parameters(), torch.empty(0)).device
    inputs = [torch.zeros(s, dtype=d, device=device) for s, d in zip(shapes, dtypes, strict=True)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*inputs)
    finally:
        model.train(was_training)


def _counts(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters())
    return {
        "parameters": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def describe_table_model(model: nn.Module, schema: dict[str, Any]) -> dict[str, Any]:
    """:func:`describe_model` for a table network: one row of zeros through it."""
    widths = (len(schema["numeric"]), len(schema["categorical"]))
    out = _run_zeros(model, [(1, widths[0]), (1, widths[1])], [torch.float32, torch.long])
    return {**_counts(model), "input_shape": [1, sum(widths)], "output_shape": list(out.shape)}


def describe_series_model(model: nn.Module, lookback: int, features: int) -> dict[str, Any]:
    """:func:`describe_model` for a forecaster: one window of zeros through it."""
    out = _run_zeros(model, [(1, lookback, features)], [torch.float32])
    return {
        **_counts(model),
        "input_shape": [1, lookback, features],
        "output_shape": list(out.shape),
    }


def describe_text_model(model: nn.Module, max_len: int) -> dict[str, Any]:
    """:func:`describe_model` for a text network: one text of one token through it."""
    out = _run_zeros(model, [(1, max_len), (1,)], [torch.long, torch.long])
    return {**_counts(model), "input_shape": [1, max_len], "output_shape": list(out.shape)}
