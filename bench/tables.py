"""Tables: our mlp and ft_transformer (default params) against scikit-learn on the same split.

For each table: our split and build-dataset (train-only statistics), then on the same train rows
our two models (the train stage's function, default params), LogisticRegression / Ridge on
standard-scaled numbers plus one-hot categories, and HistGradientBoosting. Scores on the test rows;
train time in seconds. Then a 50,000-row, 15-column table through a whole `dvc repro`, and a
no-op repro. Prints a markdown table and one JSON line.

    python bench/tables.py [--only NAME ...] [--skip-e2e]
    python bench/tables.py --seeds 42 1 2 3 4 5 6 7 8 9 [--models mlp] --skip-e2e

``--seeds`` repeats every table over those split seeds (42 is the project's default split): one
test split of 85 rows moves a score by 1.2 points a row, so a model comparison on the small
tables needs more than one draw. Each draw scores every arm on the same split; the summary gives
the mean per arm, how often ours is ahead of, level with or behind the linear model, and the mean
paired difference to each other arm with its 95% interval over the seeds.

The end-to-end run goes twice: at the project's params (a table's batch size and epochs follow
its train rows: 256 and 5 here) and with the single mlp (ensemble 1) instead of the default 8.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, make_project, sh  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"


def sklearn_table(name: str) -> pd.DataFrame:
    from sklearn import datasets

    if name == "diabetes":
        return datasets.load_diabetes(as_frame=True, scaled=False).frame
    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    frame["target"] = frame["target"].astype(str)
    return frame


def messy_table(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Missing values in every column and a 500-level categorical that carries signal."""
    rng = np.random.default_rng(seed)
    city = rng.integers(0, 500, rows)
    city_effect = rng.normal(0, 1, 500)[city]
    x = rng.normal(0, 1, (rows, 4))
    kind = rng.choice(["a", "b", "c"], rows)
    score = x[:, 0] - 0.5 * x[:, 1] ** 2 + city_effect + (kind == "a")
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)]).round(4)
    frame["city"] = [f"city{c:03d}" for c in city]
    frame["kind"] = kind
    for column in frame.columns:
        frame.loc[rng.random(rows) < 0.08, column] = np.nan
    frame["target"] = np.where(score + rng.normal(0, 0.5, rows) > np.median(score), "yes", "no")
    return frame


def tables() -> dict[str, tuple[pd.DataFrame, dict]]:
    out = {name: (sklearn_table(name), {}) for name in ("breast_cancer", "wine", "diabetes")}
    if (SHARED / "abalone.csv").exists():
        out["abalone"] = (
            pd.read_csv(SHARED / "abalone.csv"),
            {"target": "rings", "task": "regression"},
        )
    out["messy (missing + 500 cities)"] = (messy_table(), {})
    return out


def prepare(frame: pd.DataFrame, split: dict, work: Path, seed: int = 42) -> Path:
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.tables.build import build_table
    from torchstages.tables.split import split_table

    raw = work / "raw"
    raw.mkdir(parents=True)
    frame.to_csv(raw / "table.csv", index=False)
    split_table(raw, work / "splits", SplitParams.model_validate({"seed": seed, "table": split}))
    build_table(BuildDatasetParams(), raw, work / "splits", work / "processed")
    return work / "processed"


# ours: the default mlp (an ensemble of 8, TabM-mini), the single mlp it replaced, ft_transformer
OURS = {
    "mlp": {},
    "mlp ensemble 1": {"model": {"name": "mlp", "ensemble": 1}},
    "ft_transformer": {"model": {"name": "ft_transformer"}},
}


def ours(processed: Path, work: Path, model: str) -> tuple[dict, float]:
    import torch

    from torchstages.data.store import load_table_split
    from torchstages.evaluation.metrics import classification_metrics
    from torchstages.models.saved import load_model
    from torchstages.params.train import TrainParams
    from torchstages.tables.evaluate import regression_metrics, table_outputs
    from torchstages.training.loop import TrainOutputs, train

    out = work / model.replace(" ", "-")
    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    params = OURS[model]
    start = time.perf_counter()
    train(TrainParams.model_validate(params), processed, outputs)
    seconds = time.perf_counter() - start
    net, card = load_model(outputs.weights, outputs.card)
    numeric, categorical, y = load_table_split(processed, "test")
    raw = table_outputs(net, numeric, categorical, 4096, torch.device("cpu"))
    if card["task"] == "classification":
        m = classification_metrics(raw, np.asarray(y), card["classes"], resamples=0)
        # 4 digits, as the baselines: unrounded, the same count of right rows would not tie
        return {"accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4)}, seconds
    pred = raw[:, 0].double().numpy() * card["target_std"] + card["target_mean"]
    m = regression_metrics(
        pred, np.asarray(y, dtype=np.float64), card["target_mean"], card["target_std"]
    )
    return {"rmse": round(m["rmse"], 4), "r2": round(m["r2"], 4)}, seconds


def baselines(processed: Path, task: str) -> dict[str, tuple[dict, float]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from torchstages.data.store import load_table_split

    def xy(split):
        numeric, categorical, y = (np.asarray(a) for a in load_table_split(processed, split))
        return np.hstack([numeric, categorical.astype(np.float32)]), y, numeric.shape[1]

    x_train, y_train, n_num = xy("train")
    x_test, y_test, _ = xy("test")
    cat_cols = list(range(n_num, x_train.shape[1]))
    # HistGradientBoosting takes at most 255 categories per column: larger ones as ordinal codes
    hgb_cats = [c for c in cat_cols if np.nanmax(x_train[:, c]) < 255]
    linear_prep = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                list(range(n_num)),
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols),
        ]
    )
    classify = task == "classification"
    models = {
        "LogisticRegression" if classify else "Ridge": make_pipeline(
            linear_prep, LogisticRegression(max_iter=5000) if classify else Ridge()
        ),
        "HistGradientBoosting": (
            HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        )(categorical_features=hgb_cats or None, random_state=0),
    }
    results = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        pred = model.predict(x_test)
        if classify:
            score = {
                "accuracy": round(accuracy_score(y_test, pred), 4),
                "f1_macro": round(f1_score(y_test, pred, average="macro"), 4),
            }
        else:
            score = {
                "rmse": round(float(np.sqrt(mean_squared_error(y_test, pred))), 4),
                "r2": round(r2_score(y_test, pred), 4),
            }
        results[name] = (score, seconds)
    return results


def end_to_end(work: Path, train: dict | None = None) -> dict[str, float]:
    """A 50,000-row table with 15 columns (12 numeric, 3 categorical) through a whole dvc repro;
    ``train`` overrides train params (the default run changes only the model name)."""
    rng = np.random.default_rng(1)
    rows = 50_000
    x = rng.normal(0, 1, (rows, 12)).round(5)
    frame = pd.DataFrame(x, columns=[f"n{i}" for i in range(12)])
    for j, levels in enumerate((5, 40, 300)):
        frame[f"c{j}"] = [f"v{v}" for v in rng.integers(0, levels, rows)]
    signal = x[:, 0] + x[:, 1] * x[:, 2] + (frame["c0"] == "v1")
    frame["target"] = np.where(signal > 0, "pos", "neg")
    raw = work / "raw50k"
    raw.mkdir(exist_ok=True)
    frame.to_csv(raw / "table.csv", index=False)
    # the project's own params.yaml, with the one image-only setting a table cannot use changed
    overrides = {"model": {"name": "mlp"}, **(train or {})}
    name = "e2e-" + re.sub(r"\W+", "-", json.dumps(train or {}, sort_keys=True)).strip("-")
    project = make_project(work / name, raw, {"train": overrides})
    first = sh(["dvc", "repro"], project)
    noop = sh(["dvc", "repro"], project)
    return {"repro_s": round(first, 1), "noop_repro_s": round(noop, 2)}


def seed_summary(rows: list[dict]) -> dict:
    """Mean score of each arm over the split seeds; ours (default mlp) against the linear model
    seed by seed: ahead / level / behind (higher accuracy, or lower RMSE, is ahead); and against
    every other arm, the mean paired difference (positive: ours ahead, in accuracy points or %
    of the other's RMSE) with a 95% t-interval over the seeds. Each seed is a fresh split, so the
    interval covers what another draw of rows would do, the noise one small test split hides."""
    from scipy import stats

    metric = "accuracy" if rows[0]["task"] == "classification" else "rmse"
    arms = [k for k in rows[0] if isinstance(rows[0][k], (list, tuple))]
    summary = {arm: round(float(np.mean([row[arm][0][metric] for row in rows])), 4) for arm in arms}
    linear = "LogisticRegression" if metric == "accuracy" else "Ridge"

    def ahead(row: dict, arm: str) -> float:
        ours, other = row["ours mlp"][0][metric], row[arm][0][metric]
        return 100 * (ours - other) if metric == "accuracy" else 100 * (other - ours) / other

    diffs = [ahead(row, linear) for row in rows]
    summary["ours mlp vs linear: ahead/level/behind"] = [
        sum(d > 1e-9 for d in diffs),
        sum(abs(d) <= 1e-9 for d in diffs),
        sum(d < -1e-9 for d in diffs),
    ]
    unit = "points" if metric == "accuracy" else "% of its RMSE"
    for arm in arms:
        if arm == "ours mlp" or len(rows) < 2:
            continue
        d = np.array([ahead(row, arm) for row in rows])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        summary[f"ours mlp ahead of {arm}, {unit} (95% CI)"] = [
            round(float(d.mean()), 2),
            round(float(d.mean() - half), 2),
            round(float(d.mean() + half), 2),
        ]
    return {"metric": metric, "seeds": len(rows), **summary}


def main() -> None:
    from torchstages.data.store import load_meta

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--seeds", nargs="*", type=int, default=[42])
    parser.add_argument("--models", nargs="*", choices=list(OURS), default=list(OURS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frame, split) in tables().items():
            if args.only and name.split()[0] not in args.only:
                continue
            rows = []
            for seed in args.seeds:
                work = Path(tmp) / f"{name.split()[0]}-{seed}"
                processed = prepare(frame, split, work, seed)
                task = load_meta(processed)["task"]
                row = {"task": task, "rows": len(frame), "seed": seed}
                for model in args.models:
                    row[f"ours {model}"] = ours(processed, work, model)
                row.update(baselines(processed, task))
                rows.append(row)
                print(name, json.dumps(row), flush=True)
            results[name] = rows[0] if len(rows) == 1 else {"seeds": rows, **seed_summary(rows)}
            if len(rows) > 1:
                print(name, "over seeds", json.dumps(seed_summary(rows)), flush=True)
        if not args.skip_e2e:
            for train in (None, {"model": {"name": "mlp", "ensemble": 1}}):
                key = f"50k x 15 end to end, train {train or 'defaults'}"
                results[key] = end_to_end(Path(tmp), train)
                print(key, json.dumps(results[key]), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
