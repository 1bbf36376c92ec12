"""The table, text and series models of the export latency benchmark, on ../shared/datasets:
abalone (regression of `rings`), the SMS spam collection (texts) and monthly sunspots (a
series), each at the kind's default params trained for a few epochs and exported in every
format by the export stage's own function, so its parity check runs on real data too. Cached in
bench/results/deploy-<kind>/ (remove it to rebuild); the benchmarks measure speed, not accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from common import RESULTS, ROOT, no_arguments

__all__ = ["KINDS", "prepare_kind"]

KINDS = ("table", "text", "series")
SHARED = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
        Path("/work/shared"),
    )
    / "datasets"
)
EPOCHS = {"table": 10, "text": 2, "series": 10}


def _split_and_build(kind: str, work: Path) -> Path:
    from torchstages.params.build_dataset import BuildDatasetParams, SeriesBuildParams
    from torchstages.params.split import SplitParams

    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    splits, processed = work / "splits", work / "processed"
    if kind == "table":
        from torchstages.tables.build import build_table
        from torchstages.tables.split import split_table

        pd.read_csv(SHARED / "abalone.csv").to_csv(raw / "table.csv", index=False)
        table = {"target": "rings", "task": "regression"}
        split_table(raw, splits, SplitParams.model_validate({"table": table}))
        build_table(BuildDatasetParams(), raw, splits, processed)
    elif kind == "text":
        from torchstages.text.build import build_texts
        from torchstages.text.split import split_texts

        (raw / "sms_spam.tsv").write_bytes((SHARED / "sms_spam.tsv").read_bytes())
        # the messages hold unbalanced quotes: they are text, not CSV quoting
        split = {"kind": "text", "text": {"quoting": "none"}}
        split_texts(raw, splits, SplitParams.model_validate(split))
        build_texts(BuildDatasetParams(), raw, splits, processed)
    else:
        from torchstages.series.build import build_series
        from torchstages.series.split import split_series

        (raw / "series.csv").write_bytes((SHARED / "monthly_sunspots.csv").read_bytes())
        split_series(raw, splits, SplitParams.model_validate({"kind": "series"}))
        build_series(SeriesBuildParams(), splits, processed)
    return processed


def prepare_kind(kind: str) -> Path:
    """bench/results/deploy-<kind>/, holding processed/, model.safetensors, model.json and
    export/ (every format, checked against PyTorch on the test split)."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.export import ExportParams
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    work = RESULTS / f"deploy-{kind}"
    if (work / "export" / "MODEL_CARD.md").exists():
        return work
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    outputs = TrainOutputs(
        work / "model.safetensors", work / "model.json", work / "ckpt.pt", work / "live"
    )
    if not outputs.weights.exists():  # else only the export changed: keep the trained model
        processed = _split_and_build(kind, work)
        train(TrainParams.model_validate({"epochs": EPOCHS[kind]}), processed, outputs)
    export_and_verify(
        ExportParams(),
        outputs.weights,
        outputs.card,
        work / "processed",
        work / "export",
        work / "export.json",
    )
    return work


if __name__ == "__main__":
    no_arguments(__doc__)
    for name in KINDS:
        print(prepare_kind(name))
