"""Texts: our lstm, textcnn and transformer (default params) against TF-IDF + LogisticRegression
on the same split of SMS spam (../shared/datasets/sms_spam.tsv, 5,574 messages, 13% spam).

Our split and build-dataset (vocabulary from the train split), then on the same train texts each
model through the train stage's function with default params (the model block only names the
model), and scikit-learn's TfidfVectorizer (words, 1-2 grams) + LogisticRegression on the raw
train texts (C = 1, 10 or 100, whichever scores best on val). Macro F1 and accuracy on val (what
the defaults were chosen on) and on test (what is reported), train seconds, inference texts/s on
the test split (PyTorch eager, batches of 512; scikit-learn's predict). Then the whole
`dvc repro` of this table at the project's params.yaml (split.kind: text, the model block
replaced by the text default) and a no-op repro. Prints one JSON line per arm, then all of them
as one JSON line (also saved to bench/results/text.json).

    python bench/text.py [--models lstm textcnn transformer] [--skip-e2e] [--threads N]
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
from common import ROOT, load_average, machine, make_project, save, sh  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "sms_spam.tsv"
if not DATA.exists():
    DATA = Path("/work/shared/datasets/sms_spam.tsv")
# the file's messages hold unbalanced quotes: they are text, not CSV quoting
SPLIT = {"kind": "text", "text": {"quoting": "none"}}


def prepare(work: Path) -> Path:
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.text.build import build_texts
    from torchstages.text.split import split_texts

    raw = work / "raw"
    raw.mkdir(parents=True)
    (raw / DATA.name).write_bytes(DATA.read_bytes())
    split_texts(raw, work / "splits", SplitParams.model_validate(SPLIT))
    build_texts(BuildDatasetParams(), raw, work / "splits", work / "processed")
    return work / "processed"


def scores(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "f1_macro": round(float(f1_score(y, predicted, average="macro")), 4),
        "accuracy": round(float(accuracy_score(y, predicted)), 4),
    }


def ours(processed: Path, work: Path, model: str, threads: int) -> dict:
    import torch

    from torchstages.models.saved import load_model
    from torchstages.params.train import TrainParams
    from torchstages.text.evaluate import text_outputs
    from torchstages.text.store import load_text_split
    from torchstages.training.loop import TrainOutputs, train

    out = work / model
    outputs = TrainOutputs(out / "m.safetensors", out / "m.json", out / "c.pt", out / "live")
    params = TrainParams.model_validate({"model": {"name": model}, "threads": threads})
    start = time.perf_counter()
    train(params, processed, outputs)
    seconds = time.perf_counter() - start
    net, card = load_model(outputs.weights, outputs.card)
    row: dict = {"train_s": round(seconds, 1), "epochs": card["epochs_run"]}
    for split in ("val", "test"):
        tokens, lengths, y = (np.asarray(a) for a in load_text_split(processed, split))
        start = time.perf_counter()
        logits = text_outputs(net, tokens, lengths, 512, torch.device("cpu"))
        elapsed = time.perf_counter() - start
        row[split] = scores(y, logits.argmax(1).numpy())
    row["texts_per_s"] = round(len(tokens) / elapsed)
    row["parameters"] = card["parameters"]
    return row


def tfidf_baseline(work: Path) -> dict:
    """TF-IDF (words, 1-2 grams, sublinear tf) + LogisticRegression, its C chosen on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from torchstages.tables.build import load_table_rows

    summary, frames = load_table_rows(work / "raw", work / "splits")
    text, label = summary["features"][0], summary["target"]
    best: dict = {}
    for c in (1.0, 10.0, 100.0):
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=c, max_iter=2000),
        )
        start = time.perf_counter()
        model.fit(frames["train"][text], frames["train"][label])
        row: dict = {"C": c, "train_s": round(time.perf_counter() - start, 2)}
        for split in ("val", "test"):
            start = time.perf_counter()
            predicted = model.predict(frames[split][text])
            elapsed = time.perf_counter() - start
            row[split] = scores(frames[split][label].to_numpy(), predicted)
        row["texts_per_s"] = round(len(predicted) / elapsed)
        print("tfidf", json.dumps(row), flush=True)
        if not best or row["val"]["f1_macro"] > best["val"]["f1_macro"]:
            best = row
    return best


def end_to_end(work: Path, train: dict) -> dict:
    """The project's params.yaml with the text split settings and ``train`` (the model block is
    replaced, as for a table), through a whole `dvc repro`, then a no-op repro."""
    raw = work / "raw-e2e"
    raw.mkdir()
    (raw / DATA.name).write_bytes(DATA.read_bytes())
    project = make_project(work / "e2e", raw, {"split": SPLIT, "train": train})
    first = sh(["dvc", "repro"], project)
    noop = sh(["dvc", "repro"], project)
    test = json.loads((project / "metrics/test.json").read_text())
    card = json.loads((project / "models/model.json").read_text())
    return {
        "train": train,
        "model": card["architecture"]["name"],
        "repro_s": round(first, 1),
        "noop_repro_s": round(noop, 2),
        "test": {"f1_macro": test["f1_macro"], "accuracy": test["accuracy"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=["textcnn", "lstm", "transformer"])
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="train.threads (0, the default: one for texts)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict = {"machine": machine(), "load_before": round(load_average(), 2)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        processed = prepare(work)
        meta = json.loads((processed / "meta.json").read_text())
        results["data"] = {k: meta[k] for k in ("counts", "vocab_size", "max_len", "unknown_rate")}
        results["tfidf + LogisticRegression"] = tfidf_baseline(work)
        for model in args.models:
            results[f"ours {model}"] = ours(processed, work, model, args.threads)
            print(model, json.dumps(results[f"ours {model}"]), flush=True)
        if not args.skip_e2e:
            # the model block as a text project writes it: params.yaml ships the image cnn's
            train = {"model": {"name": "textcnn"}, "threads": args.threads}
            results["dvc repro"] = end_to_end(work, train)
            print("e2e", json.dumps(results["dvc repro"]), flush=True)
    results["load_after"] = round(load_average(), 2)
    save("text", results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
