"""The export stage: every format in ``export.formats`` written byte-stably, loaded back as a
user would, and checked against eager PyTorch on the whole test split.

Generic over data kinds: what is kind-specific (the wrapped module, the test split as its named
inputs, the reference outputs, parity semantics, the card's own lines) comes as a
:class:`~torchstages.deploy.exportable.KindExport` from the kind's module, picked in
:func:`kind_export`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchstages import paths
from torchstages.deploy.card import write_model_card
from torchstages.deploy.exportable import Exportable, KindExport
from torchstages.deploy.parity import FP32, check
from torchstages.deploy.runtime import load_runner, run_batched
from torchstages.errors import UserError
from torchstages.io import atomic_dir, write_bytes, write_json
from torchstages.kinds import kind_of
from torchstages.models.saved import check_trained_on, load_model
from torchstages.params.export import ExportParams

__all__ = ["export_and_verify", "export_formats", "kind_export", "onnx_proto"]

log = logging.getLogger(__name__)
PARITY_BATCH = 512
# static int8: activation ranges measured on this many train samples, evenly spaced over the
# split (deterministic, and not the first few classes of a sorted split)
CALIBRATION_SAMPLES = 512


def kind_export(model: nn.Module, card: dict[str, Any], processed: Path) -> KindExport:
    """The trained ``model`` as its data kind exports it (the one place that asks the kind)."""
    kind = kind_of(card)
    if kind == "table":
        from torchstages.tables.export import table_export as make
    elif kind == "text":
        from torchstages.text.export import text_export as make
    elif kind == "series":
        from torchstages.series.export import series_export as make
    else:
        from torchstages.deploy.exportable import image_export as make
    return make(model, card, processed)


def export_and_verify(
    params: ExportParams,
    weights: Path,
    card_path: Path,
    processed: Path,
    export_dir: Path,
    metrics_path: Path,
) -> dict[str, Any]:
    """Export every format, check each on the whole test split, write the model card and
    metrics; fail naming the format that disagrees. A failure leaves the old export folder."""
    model, card = load_model(weights, card_path)
    check_trained_on(card, card_path, processed)
    kind = kind_export(model, card, processed)
    if params.int8_quantization == "auto":  # the card and the int8 file name the one used
        params = params.model_copy(update={"int8_quantization": kind.int8})
    metrics: dict[str, Any] = {
        "samples": len(kind.truth),
        **kind.parity.summary(kind.reference, kind.truth),
        "formats": {},
    }
    calibration = None
    if "onnx-int8" in params.formats and params.int8_quantization == "static":
        calibration = _calibration_inputs(kind.train())
    with atomic_dir(export_dir) as staging:
        export_formats(kind.exportable, card, params, staging, calibration)
        for fmt in params.formats:
            path = staging / paths.EXPORT_FILES[fmt]
            out = run_batched(load_runner(path), kind.test, PARITY_BATCH)
            metrics["formats"][fmt] = kind.parity.measure(
                out, kind.reference, kind.truth, params, fmt in FP32
            ) | {"file": path.name, "bytes": path.stat().st_size}
        write_model_card(
            staging / paths.EXPORT_CARD.name,
            card,
            params,
            metrics,
            kind.exportable.inputs,
            kind.card,
        )
        for fmt, m in metrics["formats"].items():
            log.info(
                "export: %-9s %s",
                fmt,
                "  ".join(f"{k} {v}" for k, v in m.items() if k not in ("file", "bytes")),
            )
        check(kind.parity, params, metrics, export_dir)
    # after the check: a failed export keeps the old folder and the metrics that describe it
    write_json(metrics_path, metrics)
    return metrics


def export_formats(
    exp: Exportable,
    card: dict[str, Any],
    params: ExportParams,
    out: Path,
    calibration: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``params.formats`` into ``out`` under their names in ``paths.EXPORT_FILES``
    (static int8 needs ``calibration``: named inputs of train samples). A format this model
    cannot take (an op the exporter or the quantiser lacks) is a one-line ``UserError``."""
    fmt = "onnx"  # the int8 file starts as the fp32 graph
    metadata = _metadata(exp, card, "onnx")  # our own code: its errors keep their traceback
    try:
        proto = None
        if {"onnx", "onnx-int8"} & set(params.formats):
            proto = onnx_proto(exp, metadata, params.opset)
        for fmt in params.formats:
            target = out / paths.EXPORT_FILES[fmt]
            write_bytes(target, _format_bytes(fmt, exp, card, params, proto, calibration))
    except Exception as exc:  # the exporters and the quantiser raise many kinds, multi-line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{paths.EXPORT_FILES[fmt]}: {fmt} cannot be written for this model ({reason}); "
            f"remove {fmt} from export.formats"
        ) from None


def _format_bytes(
    fmt: str,
    exp: Exportable,
    card: dict[str, Any],
    params: ExportParams,
    proto: Any,
    calibration: dict[str, np.ndarray] | None,
) -> bytes:
    if fmt == "onnx":
        return proto.SerializeToString()
    if fmt == "onnx-int8":
        # what was done, not the param (which may say auto)
        how = "dynamic" if calibration is None else "static"
        return _quantize(
            proto, _metadata(exp, card, fmt) | {"quantization": how}, exp.inputs, calibration
        )
    if fmt == "pt2":
        return _pt2_bytes(exp, _metadata(exp, card, fmt))
    raise AssertionError(fmt)  # the params model allows only the formats above


def _metadata(exp: Exportable, card: dict[str, Any], fmt: str) -> dict[str, str]:
    """What every exported file carries: enough to use it without this project's code."""
    metadata = {**exp.metadata, "kind": kind_of(card)}
    if exp.classes is not None:
        metadata["classes"] = json.dumps(exp.classes)
    # the key order is the .pt2's file order: kept as it was when only images were exported
    return metadata | {
        "inputs": json.dumps(exp.inputs, sort_keys=True),
        "output": exp.output,
        "format": fmt,
    }


# What torch's exporters warn about their own workings: nothing a user can act on, and the
# parity check on the whole test split measures what matters. (category, start of the message)
_EXPORTER_NOTES = (
    # several inputs (a table's numeric and categorical) share the one batch axis, as intended;
    # every input's axis 0 is still named "batch"
    (UserWarning, r"# The axis name: .* will not be used"),
    # nn.LSTM re-flattens its weights while it is traced
    (UserWarning, r"The tensor attributes .*_flat_weights.* were assigned during export"),
    # raised inside torch's own tracing (torch._dynamo), not by this project's code
    (FutureWarning, r"_check_is_size will be removed"),
)


@contextlib.contextmanager
def _exporter_notes_hidden() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in _EXPORTER_NOTES:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def onnx_proto(exp: Exportable, metadata: dict[str, str], opset: int) -> Any:
    """The fp32 ONNX model with a dynamic batch axis on every input, metadata set, and no
    per-node debug records (stack traces with absolute paths, FX node text: they would make the
    file differ between checkouts and comment edits)."""
    batch = torch.export.Dim("batch", min=1)
    with _exporter_notes_hidden():
        program = torch.onnx.export(
            exp.module,
            tuple(exp.example.values()),
            dynamo=True,
            opset_version=opset,
            input_names=list(exp.example),
            output_names=[exp.output_name],
            dynamic_shapes=tuple({0: batch} for _ in exp.example),
            verbose=False,
        )
    proto = program.model_proto
    for graph_nodes in [proto.graph.node, *(f.node for f in proto.functions)]:
        for node in graph_nodes:
            del node.metadata_props[:]
            node.doc_string = ""
    _set_metadata(proto, metadata)
    return proto


def _set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)


def _calibration_inputs(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(next(iter(inputs.values())))
    rows = np.unique(np.linspace(0, n - 1, min(n, CALIBRATION_SAMPLES)).astype(np.int64))
    return {name: np.asarray(array[rows]) for name, array in inputs.items()}


def _quantize(
    proto: Any,
    metadata: dict[str, str],
    inputs: list[dict[str, Any]],
    calibration: dict[str, np.ndarray] | None,
) -> bytes:
    """int8 weights. Static (``calibration`` given): activation scales fixed from train
    samples, QDQ format, weights per channel; ONNX Runtime then runs convolutions in int8
    kernels (2-4x faster than fp32 on a 2-core Zen 4). Dynamic: activations
    quantised per batch at run time, no data needed; its int8 convolutions ran 6x slower than
    fp32 there, so it suits models made of linear layers."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    # the quantiser works on files; the temp folder's name never reaches the output
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save_model(proto, str(source))
        # it warns on the root logger to run its shape pre-processing first, which these
        # exported graphs (static shapes but the batch axis) do not need
        logging.disable(logging.WARNING)
        try:
            with warnings.catch_warnings():
                # numpy's "invalid value encountered in divide / cast" inside the quantiser, for
                # a tensor whose calibrated range is infinite (a textcnn's -inf that masks the
                # padding before max pooling): the int8 model still passes the parity check
                # against the trained model, or the export fails
                warnings.filterwarnings("ignore", category=RuntimeWarning, module="onnxruntime")
                if calibration is None:
                    quantize_dynamic(source, target, weight_type=QuantType.QInt8)
                else:
                    quantize_static(
                        source,
                        target,
                        _Calibration(calibration, inputs),
                        quant_format=QuantFormat.QDQ,
                        per_channel=True,
                        activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: x86 VNNI
                        weight_type=QuantType.QInt8,
                    )
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(str(target))
    _set_metadata(quantized, metadata)
    return quantized.SerializeToString()


class _Calibration:
    """onnxruntime's CalibrationDataReader over named arrays: batches of 64, each input cast
    to the dtype the model declares."""

    def __init__(self, arrays: dict[str, np.ndarray], inputs: list[dict[str, Any]]) -> None:
        n = len(next(iter(arrays.values())))
        dtypes = {i["name"]: i["dtype"] for i in inputs}
        self._batches = iter(
            [
                {k: v[s : s + 64].astype(dtypes[k]) for k, v in arrays.items()}
                for s in range(0, n, 64)
            ]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _pt2_bytes(exp: Exportable, metadata: dict[str, str]) -> bytes:
    """A ``torch.export`` program, loadable with ``torch.export.load`` alone; the metadata is in
    its extra files. Saved to a buffer and without per-node stack traces (absolute source
    paths), so an unchanged model gives the same bytes anywhere."""
    batch = torch.export.Dim("batch", min=1)
    with _exporter_notes_hidden():
        program = torch.export.export(
            exp.module,
            tuple(exp.example.values()),
            dynamic_shapes=tuple({0: batch} for _ in exp.example),
        )
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files=metadata)
    return buffer.getvalue()
