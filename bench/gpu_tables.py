"""GPU check for tables: the table models trained on CUDA (precision auto: bf16) and on the CPU,
same data and params; test metrics of both and ONNX parity of the CUDA-trained model.

    python bench/gpu_tables.py [OUT_DIR]

Runs where the package set has no DVC (a bare GPU machine): dvclive is replaced by the
bench-only stand-in in bench/stubs (it writes the logged numbers as metrics.json). Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/stubs first: its dvclive stands in for the real one, installed or not
sys.path[:0] = [str(ROOT / "bench" / "stubs"), str(ROOT / "src"), str(ROOT / "tests")]


def train_timed(params: dict, processed: Path, out: Path) -> tuple[float, Any, dict, Any]:
    """Train with ``params`` (a train section) on ``processed`` into ``out``: the seconds it took
    (queued CUDA work included), the trained model reloaded from its files, its card, the
    outputs."""
    import torch

    from torchstages.models.saved import load_model
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    start = time.perf_counter()
    train(TrainParams.model_validate(params), processed, outputs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    net, card = load_model(outputs.weights, outputs.card)
    return seconds, net, card, outputs


def with_parity(row: dict, outputs: Any, processed: Path, out: Path) -> dict:
    """``row`` plus the ONNX parity of the trained model (the export stage's check, any kind)."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.export import ExportParams

    metrics = export_and_verify(
        ExportParams(formats=("onnx",)),
        outputs.weights,
        outputs.card,
        processed,
        out / "export",
        out / "e.json",
    )
    parity = metrics["formats"]["onnx"]
    return {
        **row,
        "onnx_agreement": parity["prediction_agreement"],
        # logits for classifiers, target scales for values
        "onnx_max_diff": parity.get("max_abs_logit_diff", parity.get("max_abs_diff")),
    }


def run(task: str, model: str, device: str, work: Path) -> dict:
    import numpy as np
    import torch

    from torchstages.data.store import load_table_split
    from torchstages.evaluation.metrics import classification_metrics
    from torchstages.tables.evaluate import regression_metrics, table_outputs

    processed = work / task / "processed"
    out = work / task / f"{model}-{device}"
    params = {"device": device, "epochs": 10, "batch_size": 256, "model": {"name": model}}
    seconds, net, card, outputs = train_timed(params, processed, out)
    numeric, categorical, y = load_table_split(processed, "test")
    raw = table_outputs(net, numeric, categorical, 4096, torch.device("cpu"))
    if task == "classification":
        score = classification_metrics(raw, np.asarray(y), card["classes"], resamples=0)
        score = {"accuracy": score["accuracy"]}
    else:
        pred = raw[:, 0].double().numpy() * card["target_std"] + card["target_mean"]
        y = np.asarray(y, dtype=np.float64)
        score = {
            "rmse": regression_metrics(pred, y, card["target_mean"], card["target_std"])["rmse"]
        }
    row = {"train_s": round(seconds, 2), "precision": card["precision"], **score}
    member = getattr(net, "linear", None)
    if member is not None:  # the mlp's linear member: fitted before training, on the CPU
        row["linear_member"] = {"fitted": member.active, "weight": net.linear_weight}
    return with_parity(row, outputs, processed, out)


def main() -> None:
    out_dir()  # --help, before any work
    from tables_data import make_table, write_table
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.tables.build import build_table
    from torchstages.tables.split import split_table

    results, devices = start_results()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for task in ("classification", "regression"):
            raw = work / task / "raw"
            write_table(make_table(int(os.environ.get("GPU_TABLES_ROWS", 20_000)), task), raw)
            split = SplitParams.model_validate({"table": {"drop": ["id"]}})
            split_table(raw, work / task / "splits", split)
            build_table(
                BuildDatasetParams(), raw, work / task / "splits", work / task / "processed"
            )
            for model in ("mlp", "ft_transformer"):
                for device in devices:
                    key = f"{task} {model} {device}"
                    results[key] = run(task, model, device, work)
                    print(key, results[key], flush=True)
    save_results(results, "gpu_tables.json")


def start_results() -> tuple[dict, list[str]]:
    """The result header (CUDA present, torch version) and the devices to train on."""
    import torch

    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "torch": torch.__version__}, ["cuda", "cpu"] if cuda else ["cpu"]


def out_dir() -> Path | None:
    """OUT_DIR, the GPU checks' one optional argument; --help prints the script's docstring."""
    parser = argparse.ArgumentParser(
        description=sys.modules["__main__"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", nargs="?", type=Path, help="keep the results here too (JSON)")
    return parser.parse_args().out_dir


def save_results(results: dict, name: str) -> None:
    """Print ``results`` as one JSON line, and keep it as OUT_DIR/``name`` when given."""
    line = json.dumps(results)
    print(line)
    if (folder := out_dir()) is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(line + "\n")


if __name__ == "__main__":
    main()
