"""The val-only search behind the table defaults: train variants of the train params on the five
tables of bench/tables.py and score each on the **val** split (test is never read here).

    python bench/tables_val.py VARIANT_JSON ... [--only NAME ...]

Each VARIANT_JSON is a train-params override, e.g. '{"model": {"name": "mlp", "ensemble": 8}}'.
Prints one JSON line per (table, variant): val accuracy and cross-entropy, or val RMSE.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import prepare, tables  # noqa: E402


def val_scores(processed: Path, work: Path, override: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from torchstages.data.store import load_table_split
    from torchstages.models.saved import load_model
    from torchstages.params.train import TrainParams
    from torchstages.tables.evaluate import table_outputs
    from torchstages.training.loop import TrainOutputs, train

    out = work / "run"
    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    start = time.perf_counter()
    train(TrainParams.model_validate(override), processed, outputs)
    seconds = round(time.perf_counter() - start, 1)
    net, card = load_model(outputs.weights, outputs.card)
    numeric, categorical, y = load_table_split(processed, "val")
    raw = table_outputs(net, numeric, categorical, 4096, torch.device("cpu")).float()
    if card["task"] == "classification":
        target = torch.as_tensor(np.asarray(y))
        return {
            "val_accuracy": round((raw.argmax(1) == target).float().mean().item(), 4),
            "val_ce": round(F.cross_entropy(raw, target).item(), 4),
            "s": seconds,
        }
    pred = raw[:, 0].double().numpy() * card["target_std"] + card["target_mean"]
    rmse = float(np.sqrt(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2)))
    return {"val_rmse": round(rmse, 4), "s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, split) in tables().items():
            if args.only and name.split()[0] not in args.only:
                continue
            processed = prepare(frame, split, Path(tmp) / name.split()[0])
            for i, variant in enumerate(args.variants):
                work = Path(tmp) / f"{name.split()[0]}-{i}"
                scores = val_scores(processed, work, json.loads(variant))
                print(
                    json.dumps({"table": name.split()[0], "variant": variant, **scores}), flush=True
                )


if __name__ == "__main__":
    main()
