"""MODEL_CARD.md beside the exported files: what the model is, how well each format does, how
to call it. Written from the model card, params and parity metrics only: byte-stable.

The sections are generic; what only a data kind can say (its data, output, intended use, how to
call it) comes as a :class:`CardText` from the kind (see deploy/exportable.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchstages import paths
from torchstages.io import write_text
from torchstages.params.export import ExportParams

__all__ = ["CardText", "classifier_uses", "model_card_text", "write_model_card"]


@dataclass(frozen=True)
class CardText:
    """The kind's own lines of the card."""

    title: str  # "cnn classifier (images)"
    data: list[str]  # bullets under Data, before the test split's size
    details: list[str]  # after the inputs table: the output, what the files' metadata holds
    uses: list[str]  # bullets under Intended use and limits
    cli: list[str]  # shell lines that call the model
    keys: list[str]  # the metadata keys a user reads, named in the python snippets
    unit: str = "samples"  # what one test row is: samples, rows, texts, windows


def write_model_card(
    target: Path,
    card: dict[str, Any],
    params: ExportParams,
    metrics: dict[str, Any],
    inputs: list[dict[str, Any]],
    text: CardText,
) -> None:
    write_text(target, model_card_text(card, params, metrics, inputs, text))


def model_card_text(
    card: dict[str, Any],
    params: ExportParams,
    metrics: dict[str, Any],
    inputs: list[dict[str, Any]],
    text: CardText,
) -> str:
    """The card as markdown (``params.int8_quantization``: the one used, never ``auto``)."""
    arch = card["architecture"]
    lines = [
        f"# Model card: {text.title}",
        "",
        "Written by the export stage (`dvc repro export`) from `models/model.json`, params and",
        "`metrics/export.json`; do not edit by hand.",
        "",
        "## Data",
        "",
        *text.data,
        f"- test split: {metrics['samples']} {text.unit}",
        "",
        "## Inputs and preprocessing",
        "",
        "| input | dtype | shape | meaning |",
        "|---|---|---|---|",
        *(f"| `{i['name']}` | {i['dtype']} | {_shape(i['shape'])} | {i['doc']} |" for i in inputs),
        "",
        *text.details,
        "",
        "## Training",
        "",
        f"- architecture: `{json.dumps(arch, sort_keys=True)}`",
        f"- parameters: {card.get('parameters', '?')}; epochs run: {card.get('epochs_run', '?')};"
        f" precision: {card.get('precision', '?')}; seed: {card.get('seed', '?')}",
        f"- kept the epoch with the best {card['best']['monitor']}: epoch {card['best']['epoch']}"
        f" ({card['best']['value']})"
        if "best" in card
        else "- best epoch: not recorded",
        "",
        "## Test metrics and parity per format",
        "",
        *(
            _class_parity(metrics, params, text.unit)
            if "pytorch_accuracy" in metrics
            else _value_parity(metrics, params, text.unit)
        ),
        "",
        "## Intended use and limits",
        "",
        *text.uses,
        "",
        "## How to call it",
        "",
        "```bash",
        *text.cli,
        f"torchstages serve --model {paths.ONNX_MODEL} --port 8000",
        "```",
        "",
        *_snippets(
            metrics, inputs, text.keys, "logits" if "pytorch_accuracy" in metrics else "out"
        ),
    ]
    return "\n".join(lines)


def classifier_uses(what: str) -> list[str]:
    """Intended use and limits of a classifier of ``what`` ("texts like the training texts")."""
    return [
        f"- Classifies {what} into exactly these classes. There "
        "is no 'none of these' class: anything else still gets one of them, often with a high "
        "probability.",
        "- Probabilities are the softmax of the logits, not calibrated beyond what the test "
        "stage's calibration numbers (`metrics/test.json`) show.",
        "- Accuracy holds for data like the test split, drawn from the same source; measure it "
        "again on your own data before relying on it.",
        "- int8 trades a little accuracy (above) for a smaller file and faster CPU inference.",
    ]


def _class_parity(metrics: dict[str, Any], params: ExportParams, unit: str) -> list[str]:
    return [
        f"Eager PyTorch (fp32) test accuracy: {metrics['pytorch_accuracy']:.4f} on "
        f"{metrics['samples']} {unit}. Each format was loaded back from its file and run on "
        "the whole test split:",
        "",
        "| format | file | size | max abs logit diff | agreement | accuracy | vs PyTorch |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {fmt} | `{m['file']}` | {m['bytes'] / 1024:,.0f} KiB | "
            f"{m['max_abs_logit_diff']:.1e} | {m['prediction_agreement']:.4f} | "
            f"{m['accuracy']:.4f} | {m['accuracy_change']:+.4f} |"
            for fmt, m in metrics["formats"].items()
        ),
        "",
        f"Limits checked (params `export`): fp32 formats max abs logit diff ≤ "
        f"{params.max_abs_diff} and agreement ≥ {params.min_agreement}; int8 accuracy drop ≤ "
        f"{params.max_int8_accuracy_drop} ({params.int8_quantization} quantisation). ONNX "
        f"opset {params.opset}.",
    ]


def _value_parity(metrics: dict[str, Any], params: ExportParams, unit: str) -> list[str]:
    return [
        f"Eager PyTorch (fp32) test RMSE: {metrics['pytorch_scaled_rmse']:.4f} target scales "
        f"(train standard deviations) on {metrics['samples']} {unit}. Each format was loaded "
        "back from its file and run on the whole test split; differences are in target scales:",
        "",
        "| format | file | size | max abs diff | within limit | RMSE | vs PyTorch |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {fmt} | `{m['file']}` | {m['bytes'] / 1024:,.0f} KiB | "
            f"{m['max_abs_diff']:.1e} | {_within(m)} | "
            f"{m['scaled_rmse']:.4f} | {m['error_increase']:+.1%} |"
            for fmt, m in metrics["formats"].items()
        ),
        "",
        f"Limits checked (params `export`): fp32 formats max abs diff ≤ {params.max_abs_diff} "
        f"target scales on a share ≥ {params.min_agreement} of the {unit}; int8 RMSE at most "
        f"{params.max_int8_error_increase:.0%} above PyTorch's ({params.int8_quantization} "
        f"quantisation). ONNX opset {params.opset}.",
    ]


def _within(m: dict[str, Any]) -> str:
    # int8 is held to its RMSE, not to fp32's limit: no share is measured for it
    return f"{m['prediction_agreement']:.4f}" if "prediction_agreement" in m else "n/a"


def _snippets(
    metrics: dict[str, Any], inputs: list[dict[str, Any]], keys: list[str], out: str
) -> list[str]:
    lines: list[str] = []
    if "onnx" in metrics["formats"]:
        lines += [
            "```python",
            "import onnxruntime as ort",
            f'session = ort.InferenceSession("{paths.ONNX_MODEL}")',
            "meta = session.get_modelmeta().custom_metadata_map  # "
            + ", ".join(sorted([*keys, "inputs"])),
            f"{out} = session.run(None, {{{', '.join(_feed(i) for i in inputs)}}})[0]",
            "```",
            "",
        ]
    if "pt2" in metrics["formats"]:
        lines += [
            "```python",
            "import torch",
            "extra = {" + ", ".join(f'"{k}": ""' for k in keys) + "}  # filled in by load",
            f'program = torch.export.load("{paths.EXPORT_DIR}/{paths.EXPORT_FILES["pt2"]}", '
            "extra_files=extra)",
            f"{out} = program.module()({', '.join(i['name'] for i in inputs)})",
            "```",
            "",
        ]
    return lines


def _shape(shape: list[int | None]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _feed(spec: dict[str, Any]) -> str:
    return f'"{spec["name"]}": {spec["name"]}'
