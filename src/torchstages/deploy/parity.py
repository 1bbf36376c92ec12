"""How closely an exported file matches eager PyTorch on the test split, and when that is a
failure: one semantics per kind of output, chosen by the data kind (see deploy/exportable.py).

- :class:`ClassParity` (images, table classification, texts): logits; agreement is the same
  argmax, and int8 may lose at most ``export.max_int8_accuracy_drop`` test accuracy, or one test
  row where that is more.
- :class:`ValueParity` (table regression, forecasts): values in the target's units; differences
  are measured in units of the target's scale (a price in thousands differs in more absolute
  digits than a rate), agreement is the share of rows within ``export.max_abs_diff`` of PyTorch,
  and int8 may raise the test RMSE by at most ``export.max_int8_error_increase`` of PyTorch's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from torchstages import paths
from torchstages.errors import UserError
from torchstages.io import six_decimals
from torchstages.params.export import ExportParams

__all__ = ["FP32", "ClassParity", "ValueParity", "check"]

FP32 = ("onnx", "pt2")


@dataclass(frozen=True)
class ClassParity:
    """Logits (N, classes) against labels (N,)."""

    diff_key = "max_abs_logit_diff"
    diff_name = "logit diff"  # what the message calls it

    def summary(self, reference: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"pytorch_accuracy": _accuracy(reference, truth)}

    def measure(
        self,
        out: np.ndarray,
        reference: np.ndarray,
        truth: np.ndarray,
        params: ExportParams,
        fp32: bool,
    ) -> dict[str, float]:
        # the same argmax is what any format must keep, int8 included: agreement for all
        diff = float(np.abs(out - reference).max())
        return {
            # the exact difference varies in the last bits between kernels; round so the file
            # is stable
            "max_abs_logit_diff": float(f"{diff:.1e}"),
            "prediction_agreement": six_decimals(
                float((out.argmax(1) == reference.argmax(1)).mean())
            ),
            "accuracy": _accuracy(out, truth),
            "accuracy_change": six_decimals(_accuracy(out, truth) - _accuracy(reference, truth)),
        }

    def int8_failure(self, m: dict[str, Any], params: ExportParams, samples: int) -> str | None:
        # one row is the least a test split can lose: on 44 rows a single row whose fp32
        # probabilities are 0.5002 / 0.4998 would otherwise fail the export
        allowed = max(params.max_int8_accuracy_drop, 1 / samples)
        if -m["accuracy_change"] <= allowed + 1e-5:  # both sides are rounded to 6 digits
            return None
        return (
            f"loses {-m['accuracy_change']:.4f} test accuracy against PyTorch "
            f"(export.max_int8_accuracy_drop {params.max_int8_accuracy_drop})"
        )


@dataclass(frozen=True)
class ValueParity:
    """Values (N, H) in the target's units against true values (N, H); ``scale`` (N,): each
    row's target scale (the train standard deviation of its series or column). ``log``: the
    model was trained on the target's logarithm (series ``transform: log``), so values are
    compared as logarithms and ``scale`` is that of the logarithm."""

    scale: np.ndarray
    log: bool = False
    diff_key = "max_abs_diff"
    diff_name = "diff / scale"

    def summary(self, reference: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {"pytorch_scaled_rmse": self._rmse(self._space(reference), self._space(truth))}

    def measure(
        self,
        out: np.ndarray,
        reference: np.ndarray,
        truth: np.ndarray,
        params: ExportParams,
        fp32: bool,
    ) -> dict[str, float]:
        out, reference, truth = (self._space(v) for v in (out, reference, truth))
        relative = np.abs(out - reference) / self.scale[:, None]
        rmse, before = self._rmse(out, truth), self._rmse(reference, truth)
        measured = {
            "max_abs_diff": float(f"{float(relative.max()):.1e}"),
            "scaled_rmse": rmse,
            "error_increase": six_decimals(rmse / before - 1 if before > 0 else 0.0),
        }
        if fp32:
            # the share of rows within fp32's limit; int8 values are never that close, by
            # design, and are held to their RMSE instead: a 0.0 there would only alarm
            within = (relative <= params.max_abs_diff).all(1).mean()
            measured["prediction_agreement"] = six_decimals(float(within))
        return measured

    def int8_failure(self, m: dict[str, Any], params: ExportParams, samples: int) -> str | None:
        if m["error_increase"] <= params.max_int8_error_increase:
            return None
        return (
            f"raises the test RMSE by {m['error_increase']:.1%} of PyTorch's "
            f"(export.max_int8_error_increase {params.max_int8_error_increase})"
        )

    def _space(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, np.float64)
        return np.log(values) if self.log else values

    def _rmse(self, values: np.ndarray, truth: np.ndarray) -> float:
        # in units of each row's target scale, so every series of a panel counts alike; the
        # values are already in the compared space when measure calls it
        error = (values - truth) / self.scale[:, None]
        return six_decimals(float(np.sqrt((error**2).mean())))


def check(
    parity: ClassParity | ValueParity,
    params: ExportParams,
    metrics: dict[str, Any],
    export_dir: Path,
) -> None:
    """Stop at the first format beyond its limit, naming its file and format."""
    for fmt, m in metrics["formats"].items():
        where = f"{export_dir / paths.EXPORT_FILES[fmt]}: {fmt}"
        diff = m[parity.diff_key]
        if fmt in FP32 and (
            diff > params.max_abs_diff or m["prediction_agreement"] < params.min_agreement
        ):
            raise UserError(
                f"{where} disagrees with PyTorch (max |{parity.diff_name}| {diff:.1e}, "
                f"export.max_abs_diff {params.max_abs_diff}; agreement "
                f"{m['prediction_agreement']:.4f}, export.min_agreement {params.min_agreement})"
            )
        failure = None if fmt in FP32 else parity.int8_failure(m, params, metrics["samples"])
        if failure:
            raise UserError(f"{where} {failure}")


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return six_decimals(float((logits.argmax(1) == labels).mean()))
