"""GPU check for images (the default pipeline kind): the default CNN trained on CUDA and on the
CPU, at the shipped params.yaml, on the same data.

1. demo digits (scikit-learn's 1797 8x8 scans) through the split and build-dataset functions,
   trained at params.yaml's train section (only ``device`` set): seconds, the precision and
   channels_last the run used, test accuracy, ONNX parity of the CUDA-trained model;
2. a larger generated set (the digits drawn at random scale, place and colours, with noise, as
   32x32 RGB PNGs): samples/s per epoch as the loop logs it (train pass + validation), whether
   the train split was held on the GPU, peak CUDA memory, test accuracy;
3. precision arms on CUDA, same larger set: auto (the run of 2) against fp32 and fp16 (scaler).

    python bench/gpu_images.py [OUT_DIR]

Sizes for a dry run (defaults in brackets): GPU_IMAGES_ROWS [20000] images in the larger set,
GPU_IMAGES_SIZE [32] their side, GPU_IMAGES_EPOCHS [3] CUDA epochs on it, GPU_IMAGES_CPU_EPOCHS
[2] CPU epochs on it (0: no CPU arm), GPU_IMAGES_DEMO_EPOCHS [params.yaml] epochs on the demo
digits, GPU_IMAGES_BATCH [params.yaml] the larger set's batch size (a throughput sweep).

Test accuracy is computed as the test stage does (predict_logits in eval mode, the card's
normalisation, test.batch_size), on the CPU for every arm so only the training device differs.
Runs where the package set has no DVC (a bare GPU machine): dvclive is replaced by the stand-in
in bench/stubs (put first on the path by bench/gpu_tables.py). Nothing is downloaded: the
digits ship with scikit-learn. Prints a line per arm, then one JSON line (written to
OUT_DIR/gpu_images.json; gpu_images.partial.json is rewritten after every arm, so a run cut
short keeps what it measured).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# gpu_tables puts src/ and tests/ on the path and stands in for dvclive
from gpu_tables import ROOT, out_dir, save_results, start_results, train_timed, with_parity

ROWS = int(os.environ.get("GPU_IMAGES_ROWS", 20_000))
SIZE = int(os.environ.get("GPU_IMAGES_SIZE", 32))
EPOCHS = int(os.environ.get("GPU_IMAGES_EPOCHS", 3))
CPU_EPOCHS = int(os.environ.get("GPU_IMAGES_CPU_EPOCHS", 2))
DEMO_EPOCHS = os.environ.get("GPU_IMAGES_DEMO_EPOCHS")  # unset: params.yaml's
BATCH = os.environ.get("GPU_IMAGES_BATCH")  # the generated set's batch size; unset: params.yaml's


def shipped(section: str) -> dict[str, Any]:
    """One section of the repository's params.yaml: the defaults a new project gets."""
    from torchstages.params.base import load_yaml

    return load_yaml(ROOT / "params.yaml").get(section) or {}


def write_generated(raw: Path, n: int, size: int, seed: int = 0) -> None:
    """``raw/<digit>/<i>.png``: ``n`` RGB ``size`` x ``size`` images, each one of the demo
    digits scaled (size // 8 - 1)x..(size // 8)x, placed at random, in random ink and paper
    colours (the ink at least 192 levels brighter in sum, as in the demo's light-on-dark
    scans), plus Gaussian noise (sd 12). Deterministic in ``seed``; encoded and written by a
    thread per core (zlib and file writes release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()  # bundled with scikit-learn: no download
    glyphs, labels = digits.images / 16.0, digits.target
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(glyphs), size=n)
    scales = rng.integers(max(1, size // 8 - 1), size // 8 + 1, size=n)
    spans = size - 8 * scales + 1  # where a glyph's top-left corner can go
    tops, lefts = (rng.random((2, n)) * spans).astype(np.int64)
    ink, paper = rng.integers(0, 256, (2, n, 3))
    while (low := ink.sum(1) - paper.sum(1) < 192).any():
        ink[low], paper[low] = rng.integers(0, 256, (2, int(low.sum()), 3))
    cover = np.zeros((n, size, size), np.float32)
    for scale in np.unique(scales):
        rows = np.flatnonzero(scales == scale)
        side = np.arange(8 * scale)
        glyph = glyphs[picks[rows]].repeat(scale, 1).repeat(scale, 2)
        ys, xs = tops[rows, None] + side, lefts[rows, None] + side
        cover[rows[:, None, None], ys[:, :, None], xs[:, None, :]] = glyph
    noise = rng.standard_normal((n, size, size, 3), dtype=np.float32) * 12
    pixels = paper[:, None, None] + cover[..., None] * (ink - paper)[:, None, None] + noise
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    names = [f"{labels[p]}/{i:05d}.png" for i, p in enumerate(picks)]
    for label in range(10):
        (raw / str(label)).mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        Image.fromarray(images[i], mode="RGB").save(raw / names[i])

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n), chunksize=256))


def prepare(raw: Path, work: Path, build: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The split and build-dataset stages' library functions at params.yaml's sections
    (``build`` overrides build_dataset keys); the processed folder and what preparing took."""
    from torchstages.data.build import build_dataset
    from torchstages.data.near_duplicates import NearDuplicates
    from torchstages.data.split import split_dataset
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams

    split = SplitParams.model_validate(shipped("split"))
    start = time.perf_counter()
    summary = split_dataset(
        raw,
        work / "splits",
        {"train": split.train, "val": split.val, "test": split.test},
        split.seed,
        None
        if split.near_duplicates == "off"
        else NearDuplicates(split.near_duplicates, split.near_duplicate_threshold),
    )
    split_s = time.perf_counter() - start
    params = BuildDatasetParams.model_validate({**shipped("build_dataset"), **build})
    start = time.perf_counter()
    counts = build_dataset(params, raw, work / "splits", work / "processed")
    near = summary.get("near_duplicates") or {}
    info = {
        "counts": counts,
        "image_size": params.image_size,
        "color": params.color,
        "split_s": round(split_s, 2),
        "build_s": round(time.perf_counter() - start, 2),
        "near_duplicate_groups": near.get("groups"),
    }
    return work / "processed", info


class Observed:
    """What the training loop does not return: the samples/s it logs at each epoch end and the
    device the loader put the train split on. Installed around the library's own functions;
    it records, and changes nothing the loop computes (it only turns off tqdm bars)."""

    def __init__(self) -> None:
        import torchstages.training.data as data
        import torchstages.training.loop as loop

        observed = self
        self.rates: list[float] = []
        self.placed: list[str] = []

        class EpochLog(loop.EpochLog):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.interactive = False  # one log line per epoch, never a bar

            def epoch_end(self, epoch, metrics, seconds, samples, improved, best) -> None:
                observed.rates.append(samples / seconds)  # the loop's own log line's number
                super().epoch_end(epoch, metrics, seconds, samples, improved, best)

        place = data.to_device_tensor

        def to_device_tensor(array, device):
            tensor = place(array, device)
            # a split that did not fit stays in host memory, pinned for asynchronous copies
            pinned = device.type == "cuda" and tensor.device.type == "cpu" and tensor.is_pinned()
            observed.placed.append(f"{tensor.device}{' (pinned)' if pinned else ''}")
            return tensor

        loop.EpochLog = EpochLog
        data.to_device_tensor = to_device_tensor

    def reset(self) -> None:
        self.rates.clear()
        self.placed.clear()


def run(
    processed: Path, out: Path, params: dict[str, Any], observed: Observed, parity: bool
) -> dict[str, Any]:
    """Train ``params`` (a full train section) on ``processed``; the row of results."""
    import torch

    from torchstages.data.images import Preprocessing
    from torchstages.data.loader import Normalizer
    from torchstages.data.store import load_split
    from torchstages.evaluation.inference import predict_logits
    from torchstages.evaluation.metrics import classification_metrics

    cuda = params["device"] == "cuda"
    observed.reset()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds, net, card, outputs = train_timed(params, processed, out)
    rates = [round(r, 1) for r in observed.rates]
    row: dict[str, Any] = {
        "train_s": round(seconds, 2),
        "epochs": card["epochs_run"],
        "precision": card["precision"],
        "channels_last": card["channels_last"],
        "samples_per_s": rates,
        # the first epoch carries cuDNN / oneDNN warm-up
        "median_samples_per_s_after_first": statistics.median(rates[1:]) if rates[1:] else None,
        # calls in load_train_data's order: train images, train labels, val images, val labels
        "train_split_on": observed.placed[0] if observed.placed else None,
        "val_split_on": observed.placed[2] if len(observed.placed) > 2 else None,
    }
    if cuda:
        row["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    cpu = torch.device("cpu")
    images, labels = load_split(processed, "test")
    prep = Preprocessing.from_dict(card["preprocessing"])
    logits = predict_logits(
        net, images, Normalizer(prep.mean, prep.std, cpu), shipped("test")["batch_size"], cpu
    )
    score = classification_metrics(logits, np.asarray(labels), card["classes"], resamples=0)
    row["test_accuracy"] = score["accuracy"]
    return with_parity(row, outputs, processed, out) if parity else row


def main() -> None:
    import logging

    folder = out_dir()  # --help, before any work
    logging.basicConfig(level=logging.WARNING)
    results, devices = start_results()
    results.update(
        {
            "cpu_cores": os.cpu_count(),
            "sizes": {
                "rows": ROWS,
                "size": SIZE,
                "epochs": EPOCHS,
                "cpu_epochs": CPU_EPOCHS,
                "demo_epochs": DEMO_EPOCHS,
                "batch": BATCH,
            },
        }
    )
    defaults = shipped("train")
    observed = Observed()
    began = time.perf_counter()

    def record(key: str, arm: Any) -> None:
        try:
            results[key] = arm()
        except Exception as exc:  # a failure on one arm is a finding, not the end
            results[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(f"[{time.perf_counter() - began:.0f}s] {key} {results[key]}", flush=True)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "gpu_images.partial.json").write_text(json.dumps(results) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # both sets are prepared before CUDA is touched: the decode pools fork cleanly
        from torchstages.demo import write_demo_digits

        demo, big = work / "demo", work / "generated"

        def prepare_demo() -> dict[str, Any]:
            write_demo_digits(demo / "raw")
            return prepare(demo / "raw", demo, {})[1]

        def prepare_big() -> dict[str, Any]:
            start = time.perf_counter()
            write_generated(big / "raw", ROWS, SIZE)
            written = time.perf_counter() - start
            info = prepare(big / "raw", big, {"image_size": SIZE, "color": "rgb"})[1]
            return {"write_png_s": round(written, 2), **info}

        record("prepare demo", prepare_demo)
        record("prepare generated", prepare_big)

        # 1. demo digits at the shipped train params, only the device set
        demo_params = dict(defaults)
        if DEMO_EPOCHS:
            demo_params["epochs"] = int(DEMO_EPOCHS)
        for device in devices:
            params = {**demo_params, "device": device}
            record(
                f"demo {device}",
                lambda p=params, d=device: run(
                    demo / "processed", demo / d, p, observed, parity=d == devices[0]
                ),
            )

        # 2. and 3. the larger set: CUDA at precision auto, fp32, fp16; then the CPU
        arms = [("cuda", "auto"), ("cuda", "fp32"), ("cuda", "fp16")] if "cuda" in devices else []
        if CPU_EPOCHS:
            arms.append(("cpu", "auto"))
        for device, precision in arms:
            epochs = EPOCHS if device == "cuda" else CPU_EPOCHS
            params = {**defaults, "device": device, "precision": precision, "epochs": epochs}
            if BATCH:
                params["batch_size"] = int(BATCH)
            record(
                f"generated {device} {precision}",
                lambda p=params, d=device, q=precision: run(
                    big / "processed", big / f"{d}-{q}", p, observed, parity=False
                ),
            )
    results["total_s"] = round(time.perf_counter() - began, 1)
    save_results(results, "gpu_images.json")


if __name__ == "__main__":
    main()
