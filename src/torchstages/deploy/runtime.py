"""An exported model file, loaded for inference: ONNX (fp32 or int8) on ONNX Runtime, ``.pt2``
through ``torch.export.load``. Works on named inputs only, whatever the data kind.

Importing this module does not import torch: the ONNX path (predict's and serve's default)
starts in a fraction of a second and needs no training code.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchstages.errors import UserError
from torchstages.io import sha256_file, six_decimals

__all__ = [
    "REQUIRED_METADATA",
    "Runner",
    "load_runner",
    "run_batched",
    "softmax",
    "top_k",
    "top_k_cells",
    "top_k_header",
    "top_k_rows",
]

# every exported file carries these (ONNX metadata_props, .pt2 extra files), all JSON or text;
# classifiers add "classes", and each kind what its reader needs (preprocessing, schema, ...)
REQUIRED_METADATA = ("kind", "inputs", "output", "format")
_PT2_EXTRA = "archive/extra/"  # where torch.export.save puts extra files in its zip


@dataclass
class Runner:
    """One loaded model: ``run`` maps a batch of named arrays to (N, classes) float32 logits."""

    path: Path
    metadata: dict[str, str]
    _session: Any = field(repr=False)

    @property
    def format(self) -> str:
        return self.metadata["format"]

    @property
    def classes(self) -> list[str]:
        """Output names of a classifier, in logit order; empty for a regressor or forecaster."""
        return json.loads(self.metadata.get("classes", "[]"))

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """Per input, in call order: name, dtype, shape (None for the batch axis), doc."""
        return json.loads(self.metadata["inputs"])

    def version(self) -> str:
        """sha256 of the served file: which model answered, in logs and /metadata."""
        return sha256_file(self.path)

    def run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        # each input is cast to the dtype the model declares (stored uint8 pixels -> float32)
        arrays = [np.ascontiguousarray(batch[i["name"]], dtype=i["dtype"]) for i in self.inputs]
        if self.format == "pt2":
            import torch

            # torch wants writable memory: a memory-mapped split already in the right dtype is
            # read-only (copied here, batch by batch)
            tensors = [torch.from_numpy(np.require(a, requirements="W")) for a in arrays]
            with torch.inference_mode():
                out = self._session(*tensors)
            return out.float().numpy()
        names = [i["name"] for i in self.inputs]
        return self._session.run(None, dict(zip(names, arrays, strict=True)))[0]


def load_runner(path: Path, threads: int = 0) -> Runner:
    """Open an exported file; a missing or foreign file is a one-line ``UserError``."""
    path = Path(path)
    exported = "an exported model: model.onnx, model.int8.onnx or model.pt2 in models/export"
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give {exported}")
    if not path.is_file():
        raise UserError(f"{path}: model not found (run dvc repro to export it)")
    if path.suffix in (".safetensors", ".pt", ".pth"):
        raise UserError(f"{path}: training weights; predict and serve take {exported}")
    if path.suffix == ".pt2":
        session, metadata = _load_pt2(path, threads)
    else:
        session, metadata = _load_onnx(path, threads)
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise UserError(
            f"{path}: no torchstages metadata {missing} (export it with the export stage)"
        )
    return Runner(path, metadata, session)


def _load_onnx(path: Path, threads: int) -> tuple[Any, dict[str, str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # idle ONNX Runtime threads spin by default, taking the cores that predict's and serve's
    # decode threads need: sleeping instead gave 1.2-1.3x images/s on MNIST (2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise UserError(f"{path}: not a loadable ONNX model ({exc})") from None
    return session, dict(session.get_modelmeta().custom_metadata_map)


def _load_pt2(path: Path, threads: int) -> tuple[Any, dict[str, str]]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        # every extra file is metadata: each kind stores its own keys
        with zipfile.ZipFile(path) as archive:
            names = [n[len(_PT2_EXTRA) :] for n in archive.namelist() if n.startswith(_PT2_EXTRA)]
        extra = dict.fromkeys(names, "")
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:  # a zip that is not an exported program raises many kinds
        raise UserError(f"{path}: not a loadable torch.export program ({exc})") from None
    # an empty value is metadata too (a single series' "id"), as ONNX keeps it
    return program.module(), extra


def run_batched(runner: Runner, inputs: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    """Logits for every row of ``inputs`` (named arrays of equal length), in order."""
    n = len(next(iter(inputs.values())))
    return np.concatenate(
        [
            runner.run({k: v[start : start + batch_size] for k, v in inputs.items()})
            for start in range(0, n, batch_size)
        ]
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities per row; the network outputs logits and softmax is applied after it."""
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, best first; ties keep the class order."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def top_k_rows(logits: np.ndarray, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    """:func:`top_k` of every row of ``logits``: softmax after the model, never inside it."""
    return [top_k(p, classes, k) for p in softmax(logits)]


def top_k_header(column: str, k: int) -> list[str]:
    """The class columns of a CSV: the top class and its probability, then class_2 ... class_k."""
    rest = [name for i in range(2, k + 1) for name in (f"class_{i}", f"probability_{i}")]
    return [column, "probability", *rest]


def top_k_cells(top: list[tuple[str, float]]) -> list:
    """One input's cells under :func:`top_k_header`: each class and its probability."""
    return [cell for label, p in top for cell in (label, six_decimals(p))]
