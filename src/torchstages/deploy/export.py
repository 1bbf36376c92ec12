"""The export stage: every format in ``export.formats`` written byte-stably, loaded back as a
user would, and checked against eager PyTorch on the whole test split.

Generic over data kinds: what is kind-specific (the wrapped module, its inputs, the test split
as inputs) comes from ``deploy/exportable.py``.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchstages import paths
from torchstages.deploy.card import write_model_card
from torchstages.deploy.exportable import Exportable, exportable, reference_logits, split_inputs
from torchstages.deploy.runtime import load_runner, run_batched
from torchstages.errors import UserError
from torchstages.io import atomic_dir, write_bytes, write_json
from torchstages.models.saved import load_model
from torchstages.params.export import ExportParams

__all__ = ["export_and_verify", "onnx_proto", "export_formats"]

log = logging.getLogger(__name__)
FP32 = ("onnx", "pt2")
PARITY_BATCH = 512
# static int8: activation ranges measured on this many train samples, evenly spaced over the
# split (deterministic, and not the first few classes of a sorted split)
CALIBRATION_SAMPLES = 512


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
    exp = exportable(model, card)
    inputs, labels = split_inputs(processed, card, "test")
    reference = reference_logits(model, card, inputs)
    metrics: dict[str, Any] = {
        "samples": len(labels),
        "pytorch_accuracy": _accuracy(reference, labels),
        "formats": {},
    }
    calibration = None
    if "onnx-int8" in params.formats and params.int8_quantization == "static":
        calibration = _calibration_inputs(split_inputs(processed, card, "train")[0])
    with atomic_dir(export_dir) as staging:
        export_formats(exp, card, params, staging, calibration)
        for fmt in params.formats:
            path = staging / paths.EXPORT_FILES[fmt]
            logits = run_batched(load_runner(path), inputs, PARITY_BATCH)
            metrics["formats"][fmt] = _parity(logits, reference, labels) | {
                "file": path.name,
                "bytes": path.stat().st_size,
            }
        write_model_card(staging / paths.EXPORT_CARD.name, card, params, metrics, exp.inputs)
        write_json(metrics_path, metrics)
        for fmt, m in metrics["formats"].items():
            log.info(
                "export: %-9s max |logit diff| %.1e  agreement %.4f  accuracy %+.4f",
                fmt,
                m["max_abs_logit_diff"],
                m["prediction_agreement"],
                m["accuracy_change"],
            )
        _check(params, metrics, export_dir)
    return metrics


def onnx_only(params: ExportParams, what: str) -> None:
    """Check ``export.formats`` for a model exported as ONNX alone (``what``: "a table model")."""
    if "onnx" not in params.formats:
        raise UserError(f"export.formats: {what} is exported as onnx; add it to the list")
    others = [f for f in params.formats if f != "onnx"]
    if others:
        log.info("export: %s is exported as ONNX only (not yet %s)", what, ", ".join(others))


def record_onnx_parity(
    parity: dict[str, float],
    params: ExportParams,
    export_dir: Path,
    metrics_path: Path,
    samples: int,
    unit: str,
) -> None:
    """Write the ONNX parity as the export metrics (the layout images use: ``formats.onnx``),
    log it, and stop as :func:`_check` does when ONNX Runtime disagrees with PyTorch on the
    ``samples`` test ``unit``."""
    metrics = {"formats": {"onnx": parity}, "samples": samples}
    write_json(metrics_path, metrics)
    log.info(
        "export: %s  max |diff| %.1e  agreement %.4f on %d test %s",
        export_dir / paths.EXPORT_FILES["onnx"],
        parity["max_abs_logit_diff"],
        parity["prediction_agreement"],
        samples,
        unit,
    )
    _check(params, metrics, export_dir)


def export_formats(
    exp: Exportable,
    card: dict[str, Any],
    params: ExportParams,
    out: Path,
    calibration: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``params.formats`` into ``out`` under their names in ``paths.EXPORT_FILES``
    (static int8 needs ``calibration``: named inputs of train samples)."""
    proto = None
    if {"onnx", "onnx-int8"} & set(params.formats):
        proto = onnx_proto(exp, _metadata(exp, card, "onnx"), params.opset)
    for fmt in params.formats:
        target = out / paths.EXPORT_FILES[fmt]
        if fmt == "onnx":
            write_bytes(target, proto.SerializeToString())
        elif fmt == "onnx-int8":
            metadata = _metadata(exp, card, fmt) | {"quantization": params.int8_quantization}
            write_bytes(target, _quantize(proto, metadata, exp.inputs, calibration))
        elif fmt == "pt2":
            write_bytes(target, _pt2_bytes(exp, _metadata(exp, card, fmt)))
        else:  # the params model allows only the formats above
            raise AssertionError(fmt)


def _metadata(exp: Exportable, card: dict[str, Any], fmt: str) -> dict[str, str]:
    """What every exported file carries: enough to use it without this project's code."""
    return {
        **exp.metadata,
        "kind": card.get("kind", "images"),
        "classes": json.dumps(card["classes"]),
        "inputs": json.dumps(exp.inputs, sort_keys=True),
        "output": "logits: float32 (N, classes); softmax gives probabilities",
        "format": fmt,
    }


def onnx_proto(exp: Exportable, metadata: dict[str, str], opset: int) -> Any:
    """The fp32 ONNX model with a dynamic batch axis on every input, metadata set, and no
    per-node debug records (stack traces with absolute paths, FX node text: they would make the
    file differ between checkouts and comment edits)."""
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        exp.module,
        tuple(exp.example.values()),
        dynamo=True,
        opset_version=opset,
        input_names=list(exp.example),
        output_names=["logits"],
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


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return round(float((logits.argmax(1) == labels).mean()), 6)


def _parity(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    diff = float(np.abs(logits - reference).max())
    return {
        # the exact difference varies in the last bits between kernels; round so the file is stable
        "max_abs_logit_diff": float(f"{diff:.1e}"),
        "prediction_agreement": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 6),
        "accuracy": _accuracy(logits, labels),
        "accuracy_change": round(_accuracy(logits, labels) - _accuracy(reference, labels), 6),
    }


def _check(params: ExportParams, metrics: dict[str, Any], export_dir: Path) -> None:
    for fmt, m in metrics["formats"].items():
        where = f"{export_dir / paths.EXPORT_FILES[fmt]}: {fmt}"
        if fmt in FP32 and (
            m["max_abs_logit_diff"] > params.max_abs_diff
            or m["prediction_agreement"] < params.min_agreement
        ):
            raise UserError(
                f"{where} disagrees with PyTorch (max |logit diff| {m['max_abs_logit_diff']:.1e}, "
                f"export.max_abs_diff {params.max_abs_diff}; agreement "
                f"{m['prediction_agreement']:.4f}, export.min_agreement {params.min_agreement})"
            )
        if fmt not in FP32 and -m["accuracy_change"] > params.max_int8_accuracy_drop:
            raise UserError(
                f"{where} loses {-m['accuracy_change']:.4f} test accuracy against PyTorch "
                f"(export.max_int8_accuracy_drop {params.max_int8_accuracy_drop})"
            )
