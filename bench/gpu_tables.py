"""GPU check for tables: the table models trained on CUDA (precision auto: bf16) and on the CPU,
same data and params; test metrics of both and ONNX parity of the CUDA-trained model.

    python bench/gpu_tables.py [OUT_DIR]

Runs where the package set has no DVC (a bare GPU machine): dvclive is replaced by a stand-in
that keeps the logged numbers in memory. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


class _Live:  # the part of dvclive.Live that training uses
    def __init__(self, *args, **kwargs) -> None:
        self.summary: dict = {}
        self.step = 0

    def log_metric(self, name: str, value: float) -> None:
        pass

    def next_step(self) -> None:
        self.step += 1

    def end(self) -> None:
        pass


sys.modules.setdefault("dvclive", types.SimpleNamespace(Live=_Live))


def run(task: str, model: str, device: str, work: Path) -> dict:
    import numpy as np
    import torch

    from torchstages.data.store import load_table_split
    from torchstages.evaluation.metrics import classification_metrics
    from torchstages.models.saved import load_model
    from torchstages.params.export import ExportParams
    from torchstages.params.train import TrainParams
    from torchstages.tables.evaluate import regression_metrics, table_outputs
    from torchstages.tables.export import export_and_verify_table
    from torchstages.training.loop import TrainOutputs, train

    processed = work / task / "processed"
    out = work / task / f"{model}-{device}"
    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    params = TrainParams.model_validate(
        {"device": device, "epochs": 10, "batch_size": 256, "model": {"name": model}}
    )
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    card = train(params, processed, outputs)
    seconds = time.perf_counter() - start
    net, card = load_model(outputs.weights, outputs.card)
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
    parity = export_and_verify_table(
        ExportParams(), outputs.weights, outputs.card, processed, out / "export", out / "e.json"
    )
    return {
        "train_s": round(seconds, 2),
        "precision": card["precision"],
        **score,
        "onnx_agreement": parity["prediction_agreement"],
        "onnx_max_diff": parity["max_abs_logit_diff"],
    }


def main() -> None:
    import torch

    from tables_data import make_table, write_table
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.tables.build import build_table
    from torchstages.tables.split import split_table

    results: dict = {"cuda": torch.cuda.is_available(), "torch": torch.__version__}
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
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
    line = json.dumps(results)
    print(line)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
        (Path(sys.argv[1]) / "gpu_tables.json").write_text(line + "\n")


if __name__ == "__main__":
    main()
