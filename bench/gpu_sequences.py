"""GPU check for texts and time series: each model trained on CUDA (precision auto: bf16 for
texts, fp32 for series) and on the CPU, same data and params; the test score of both and the
ONNX parity of the CUDA-trained model.

    python bench/gpu_sequences.py [OUT_DIR]

Runs where the package set has no DVC (a bare GPU machine): dvclive is replaced by the stand-in
in bench/stubs (put first on the path by bench/gpu_tables.py). Prints one JSON line (and writes
it to OUT_DIR/gpu_sequences.json).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

# gpu_tables puts src/ and tests/ on the path and stands in for dvclive
from gpu_tables import out_dir, save_results, start_results, train_timed, with_parity

EPOCHS = {"text": 5, "series": 10}
MODELS = {"text": ("textcnn", "lstm", "transformer"), "series": ("mlp", "lstm", "tcn")}


def prepare(kind: str, work: Path) -> None:
    from series_data import make_series, write_series
    from text_data import make_texts, write_texts
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.series.build import build_series
    from torchstages.series.split import split_series
    from torchstages.text.build import build_texts
    from torchstages.text.split import split_texts

    raw, splits, processed = work / kind / "raw", work / kind / "splits", work / kind / "processed"
    split = SplitParams.model_validate({"kind": kind})
    if kind == "text":
        write_texts(make_texts(6000), raw)
        split_texts(raw, splits, split)
        build_texts(BuildDatasetParams(), raw, splits, processed)
    else:
        write_series(make_series(1200, noise=0.5), raw)
        split_series(raw, splits, split)
        build_series(BuildDatasetParams().series, splits, processed)


def run(kind: str, model: str, device: str, work: Path) -> dict:
    import numpy as np
    import torch

    processed = work / kind / "processed"
    out = work / kind / f"{model}-{device}"
    params = {"device": device, "epochs": EPOCHS[kind], "model": {"name": model}}
    seconds, net, card, outputs = train_timed(params, processed, out)
    cpu = torch.device("cpu")
    if kind == "text":
        from torchstages.text.evaluate import text_outputs
        from torchstages.text.store import load_text_split

        tokens, lengths, labels = load_text_split(processed, "test")
        logits = text_outputs(net, tokens, lengths, 512, cpu)
        score = {"accuracy": float((logits.argmax(1).numpy() == np.asarray(labels)).mean())}
    else:
        from torchstages.series.evaluate import evaluate_series

        metrics, _ = evaluate_series(
            "test", net, card, processed, work / kind / "splits", out / "plots", 512, cpu
        )
        score = {
            "mase": metrics["mase"],
            "naive_mase": metrics["baselines"]["naive"]["mase"],
            "seasonal_naive_mase": metrics["baselines"]["seasonal_naive"]["mase"],
        }
    row = {"train_s": round(seconds, 2), "precision": card["precision"], **score}
    return with_parity(row, outputs, processed, out)


def main() -> None:
    out_dir()  # --help, before any work
    results, devices = start_results()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, models in MODELS.items():
            prepare(kind, work)
            for model in models:
                for device in devices:
                    key = f"{kind} {model} {device}"
                    try:
                        results[key] = run(kind, model, device, work)
                    except Exception as exc:  # a failure on one arm is a finding, not the end
                        results[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    print(key, results[key], flush=True)
    save_results(results, "gpu_sequences.json")


if __name__ == "__main__":
    main()
