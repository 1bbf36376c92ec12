"""The val-only search behind the table defaults: train variants of the train params on the five
tables of bench/tables.py and score each on the **val** split (test is never read here).

    python bench/tables_val.py VARIANT_JSON ... [--only NAME ...] [--seeds 42 1 2 ...]

Each VARIANT_JSON is a train-params override, e.g. '{"model": {"name": "mlp", "ensemble": 8}}'.
Prints one JSON line per (table, variant, split seed): val accuracy and cross-entropy, or val
RMSE; with several ``--seeds``, then one line per (table, variant) with the means over the seeds
(a small table's val split moves by a whole row per variant: one draw cannot rank them).

``--holdout`` scores on rows that picked nothing: the val split chooses each run's best epoch, so
a variant's val score is biased upwards, by more for a noisier selection; with ``--holdout`` the
test rows of each split are set aside unread, the remaining train + val rows are split again with
the same seed, each variant trains on that inner train split (best epoch by the inner val split)
and is scored on the inner test split, a holdout carved from the outer train + val rows. The
scikit-learn models of bench/tables.py are scored on the same inner split, as the bar to reach.

``--linear-weights 0 0.25 0.5 ...`` scores each trained model once per weight of its linear
member (the weight only mixes two fitted outputs at evaluation, so one training serves them all):
the keys gain ``@weight``. The variant must have a member (a table ``mlp`` with a non-zero
``linear_weight``, the default).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import baselines, prepare, tables  # noqa: E402


def val_scores(
    processed: Path, work: Path, override: dict, split: str = "val", weights: Sequence[float] = ()
) -> dict:
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
    numeric, categorical, y = load_table_split(processed, split)

    def score(suffix: str = "") -> dict:
        raw = table_outputs(net, numeric, categorical, 4096, torch.device("cpu")).float()
        if card["task"] == "classification":
            target = torch.as_tensor(np.asarray(y))
            return {
                f"val_accuracy{suffix}": round((raw.argmax(1) == target).float().mean().item(), 4),
                f"val_ce{suffix}": round(F.cross_entropy(raw, target).item(), 4),
            }
        pred = raw[:, 0].double().numpy() * card["target_std"] + card["target_mean"]
        rmse = float(np.sqrt(np.mean((pred - np.asarray(y, dtype=np.float64)) ** 2)))
        return {f"val_rmse{suffix}": round(rmse, 4)}

    scores = score()
    for weight in weights:
        # the member's weight only mixes at evaluation; 0 is the network alone
        net.linear_weight, net.linear.active = weight, weight > 0
        scores |= score(f"@{weight:g}")
    return scores | {"s": seconds}


def main() -> None:
    from torchstages.data.store import load_meta

    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--seeds", nargs="*", type=int, default=[42])
    parser.add_argument("--holdout", action="store_true")
    parser.add_argument("--linear-weights", nargs="*", type=float, default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, split) in tables().items():
            table = name.split()[0]
            if args.only and table not in args.only:
                continue
            scores: dict[str, list[dict]] = {variant: [] for variant in args.variants}
            for seed in args.seeds:
                processed = prepare(frame, split, Path(tmp) / f"{table}-{seed}", seed)
                scored = "val"
                if args.holdout:
                    test_rows = pd.read_csv(processed.parent / "splits" / "test.csv")["row"]
                    outer = frame.drop(index=test_rows).reset_index(drop=True)
                    processed = prepare(outer, split, Path(tmp) / f"{table}-{seed}-dev", seed)
                    scored = "test"
                    task = load_meta(processed)["task"]
                    for arm, (score, seconds) in baselines(processed, task).items():
                        named = {f"val_{k}": v for k, v in score.items()} | {"s": round(seconds, 1)}
                        scores.setdefault(arm, []).append(named)
                        line = {"table": table, "seed": seed, "variant": arm}
                        print(json.dumps({**line, **named}), flush=True)
                for i, variant in enumerate(args.variants):
                    work = Path(tmp) / f"{table}-{seed}-{i}"
                    override = json.loads(variant)
                    scores[variant].append(
                        val_scores(processed, work, override, scored, args.linear_weights)
                    )
                    line = {"table": table, "seed": seed, "variant": variant}
                    print(json.dumps({**line, **scores[variant][-1]}), flush=True)
            if len(args.seeds) < 2:
                continue
            for variant, rows in scores.items():
                means = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}
                line = {"table": table, "seeds": len(rows), "variant": variant, "mean": means}
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
