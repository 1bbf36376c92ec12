"""The model the deployment benchmarks use: MNIST (1,000 training PNGs per digit) at the
params.yaml defaults, trained for one epoch and exported in every format, cached in
bench/results/deploy-model/ (remove it to rebuild). The benchmarks measure speed, not accuracy,
so a model that takes a minute to make is enough. MNIST's PNGs are unpacked once to
/tmp/torchstages-mnist."""

from __future__ import annotations

import tarfile
from pathlib import Path

from common import RESULTS, ROOT, no_arguments

__all__ = ["ROOT", "prepare_model", "mnist_test_files"]

MNIST = Path("/tmp/torchstages-mnist")
MODEL = RESULTS / "deploy-model"


def unpacked_mnist() -> Path:
    if not (MNIST / "mnist" / "test").is_dir():
        tarball = ROOT.parent / "shared" / "datasets" / "mnist-png.tar.gz"
        if not tarball.exists():
            tarball = Path("/work/shared/datasets/mnist-png.tar.gz")
        MNIST.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(MNIST, filter="data")
    return MNIST / "mnist"


def train_subset(per_class: int = 1000) -> Path:
    """The first ``per_class`` training PNGs of each digit, hard-linked into their own folder."""
    import os

    subset = MNIST / f"train-{per_class}"
    if not subset.is_dir():
        for digit in sorted((unpacked_mnist() / "train").iterdir()):
            (subset / digit.name).mkdir(parents=True)
            for png in sorted(digit.iterdir())[:per_class]:
                os.link(png, subset / digit.name / png.name)
    return subset


def mnist_test_files() -> list[str]:
    """MNIST's 10,000 test PNGs (never seen by the benchmark model), sorted."""
    return sorted(str(p) for p in (unpacked_mnist() / "test").glob("*/*.png"))


def prepare_model() -> Path:
    """models' export folder: split, build, train 1 epoch and export on MNIST's train PNGs."""
    export = MODEL / "export"
    if (export / "MODEL_CARD.md").exists():
        return export
    import logging

    import yaml

    from torchstages.data.build import build_dataset
    from torchstages.data.split import split_dataset
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.export import ExportParams
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    outputs = TrainOutputs(
        MODEL / "model.safetensors", MODEL / "model.json", MODEL / "ckpt.pt", MODEL / "live"
    )
    if not outputs.weights.exists():  # else only the export changed: keep the trained model
        raw = train_subset()
        split = params["split"]
        split_dataset(raw, MODEL / "splits", {k: split[k] for k in ("train", "val", "test")}, 42)
        build_params = BuildDatasetParams(**params["build_dataset"])
        build_dataset(build_params, raw, MODEL / "splits", MODEL / "processed")
        train(TrainParams(**{**params["train"], "epochs": 1}), MODEL / "processed", outputs)
    export_and_verify(
        ExportParams(**params["export"]),
        outputs.weights,
        outputs.card,
        MODEL / "processed",
        export,
        MODEL / "export.json",
    )
    return export


if __name__ == "__main__":
    no_arguments(__doc__)
    print(prepare_model())
