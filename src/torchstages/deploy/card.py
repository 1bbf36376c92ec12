"""MODEL_CARD.md beside the exported files: what the model is, how well each format does, how
to call it. Written from the model card, params and parity metrics only: byte-stable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torchstages import paths
from torchstages.io import write_text
from torchstages.params.export import ExportParams

__all__ = ["write_model_card", "model_card_text"]


def write_model_card(
    target: Path,
    card: dict[str, Any],
    params: ExportParams,
    metrics: dict[str, Any],
    inputs: list[dict[str, Any]],
) -> None:
    write_text(target, model_card_text(card, params, metrics, inputs))


def model_card_text(
    card: dict[str, Any],
    params: ExportParams,
    metrics: dict[str, Any],
    inputs: list[dict[str, Any]],
) -> str:
    """The card as markdown; every section is generic over the data kind and named inputs."""
    classes = card["classes"]
    arch = card["architecture"]
    lines = [
        f"# Model card: {arch.get('name', 'model')} classifier ({card.get('kind', 'images')})",
        "",
        "Written by the export stage (`dvc repro export`) from `models/model.json`, params and",
        "`metrics/export.json`; do not edit by hand.",
        "",
        "## Data",
        "",
        f"- kind: {card.get('kind', 'images')}; task: classification into {len(classes)} classes",
        f"- classes, in output order: {', '.join(f'`{c}`' for c in classes)}",
        f"- test split: {metrics['samples']} samples",
        "",
        "## Inputs and preprocessing",
        "",
        "| input | dtype | shape | meaning |",
        "|---|---|---|---|",
        *(f"| `{i['name']}` | {i['dtype']} | {_shape(i['shape'])} | {i['doc']} |" for i in inputs),
        "",
        "Output `logits`: float32 (N, classes); softmax gives probabilities. Preprocessing "
        "(stored in every file's metadata and applied by `torchstages predict` and `serve`):",
        "",
        *_key_values(card.get("preprocessing", {})),
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
        f"Eager PyTorch (fp32) test accuracy: {metrics['pytorch_accuracy']:.4f} on "
        f"{metrics['samples']} samples. Each format was loaded back from its file and run on "
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
        "",
        "## Intended use and limits",
        "",
        "- Classifies inputs that look like the training data into exactly these classes. There "
        "is no 'none of these' class: anything else still gets one of them, often with a high "
        "probability.",
        "- Probabilities are the softmax of the logits, not calibrated beyond what the test "
        "stage's calibration numbers (`metrics/test.json`) show.",
        "- Accuracy holds for data like the test split, drawn from the same source; measure it "
        "again on your own data before relying on it.",
        "- int8 trades a little accuracy (above) for a smaller file and faster CPU inference.",
        "",
        "## How to call it",
        "",
        "```bash",
        f"torchstages predict path/to/inputs --model {paths.ONNX_MODEL} --top-k 3",
        f"torchstages serve --model {paths.ONNX_MODEL} --port 8000",
        "```",
        "",
    ]
    if "onnx" in metrics["formats"]:
        lines += [
            "```python",
            "import onnxruntime as ort",
            f'session = ort.InferenceSession("{paths.ONNX_MODEL}")',
            "meta = session.get_modelmeta().custom_metadata_map  # classes, inputs, preprocessing",
            f"logits = session.run(None, {{{', '.join(_feed(i) for i in inputs)}}})[0]",
            "```",
            "",
        ]
    if "pt2" in metrics["formats"]:
        lines += [
            "```python",
            "import torch",
            'extra = {"classes": "", "preprocessing": ""}  # filled in by load',
            f'program = torch.export.load("{paths.EXPORT_DIR}/{paths.EXPORT_FILES["pt2"]}", '
            "extra_files=extra)",
            f"logits = program.module()({', '.join(i['name'] for i in inputs)})",
            "```",
            "",
        ]
    return "\n".join(lines)


def _shape(shape: list[int | None]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _feed(spec: dict[str, Any]) -> str:
    return f'"{spec["name"]}": {spec["name"]}'


def _key_values(values: dict[str, Any]) -> list[str]:
    return [f"- {key}: {json.dumps(value)}" for key, value in sorted(values.items())]
