"""Layered fixtures: a tiny image folder made in tmp_path, tiny params, a built dataset."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def draw_class(k: int, rng: np.random.Generator, size: int = 12) -> np.ndarray:
    """A noisy uint8 (size, size) picture whose shape depends on the class: learnable in 2 epochs."""
    img = rng.integers(0, 40, (size, size), dtype=np.uint8)
    third = size // 3
    if k == 0:
        img[third : 2 * third, :] = 255  # horizontal bar
    elif k == 1:
        img[:, third : 2 * third] = 255  # vertical bar
    else:
        np.fill_diagonal(img, 255)
        np.fill_diagonal(img[1:], 255)
    return img


def make_image_folder(root: Path, per_class: int = 12, classes: int = 3, seed: int = 0) -> Path:
    """root/<class>/<n>.png with distinct, learnable classes; returns root."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            Image.fromarray(draw_class(k, rng)).save(root / f"class{k}" / f"{n:03d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def own_dvc_site_cache(tmp_path_factory):
    """DVC keeps state outside a project, keyed by the project's path (an index of what each
    remote holds, file hashes). Test projects live under pytest's temp folders, whose paths come
    back in later runs: each run gets a site cache of its own, or a project would inherit what
    an earlier one at the same path believed about a remote that is gone."""
    os.environ["DVC_SITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("dvc-site-cache"))


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "raw")


TINY_PARAMS = """\
split: {seed: 1, train: 0.6, val: 0.2, test: 0.2}
build_dataset: {image_size: 8, color: grayscale, workers: 1}
train:
  seed: 3
  epochs: 2
  batch_size: 8
  lr: 0.01
  threads: 1
  model: {name: cnn, channels: [4, 8], convs_per_block: 1}
  augment: {crop_padding: 1, rotation: 5.0}
validate: {batch_size: 16}
test: {batch_size: 16}
export: {opset: 18}
"""


def copy_project(dest: Path) -> Path:
    """The files a user's clone has (code, stages, dvc.yaml), without data, venv or caches."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("stages", "src"):
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    (dest / "params.yaml").write_text(TINY_PARAMS)
    return dest


@pytest.fixture
def processed(tmp_path: Path, image_folder: Path) -> Path:
    """A built dataset (8x8 grayscale, 3 classes) from the tiny image folder."""
    return split_and_build(image_folder, tmp_path, image_size=8, seed=0)


def split_and_build(raw: Path, root: Path, image_size: int, seed: int) -> Path:
    """Run the split and build-dataset library functions into ``root/splits``, ``root/processed``."""
    from torchstages.data.build import build_dataset
    from torchstages.data.split import split_dataset
    from torchstages.params.build_dataset import BuildDatasetParams

    split_dataset(raw, root / "splits", {"train": 0.6, "val": 0.2, "test": 0.2}, seed)
    build_dataset(
        BuildDatasetParams(image_size=image_size, workers=1),
        raw,
        root / "splits",
        root / "processed",
    )
    return root / "processed"


def tiny_train_params(**overrides):
    from torchstages.params.train import TrainParams

    base = {
        "epochs": 6,
        "lr": 0.02,
        "batch_size": 8,
        "threads": 1,
        "seed": 3,
        "model": {"name": "cnn", "channels": [4, 8], "convs_per_block": 1},
    }
    return TrainParams.model_validate({**base, **overrides})


@pytest.fixture
def trained(tmp_path: Path, processed: Path):
    """A tiny model trained for 6 epochs: (TrainOutputs, card)."""
    from torchstages.training.loop import TrainOutputs, train

    outputs = TrainOutputs(
        tmp_path / "m/model.safetensors",
        tmp_path / "m/model.json",
        tmp_path / "m/checkpoint.pt",
        tmp_path / "live",
    )
    return outputs, train(tiny_train_params(), processed, outputs)


@pytest.fixture
def one_thread():
    """One torch thread for tests on tiny tensors: thread start-up costs more than the work, and
    on a busy machine OpenMP threads waiting for each other made big models 50x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    """root/raw (3 classes of 12 PNGs), root/splits, root/processed, a tiny model trained on it
    and root/export with every format: once per module of deployment tests, which only need
    some exported model."""
    from torchstages.deploy.export import export_and_verify
    from torchstages.params.export import ExportParams
    from torchstages.training.loop import TrainOutputs, train

    root = tmp_path_factory.mktemp("deployed")
    processed = split_and_build(make_image_folder(root / "raw"), root, image_size=8, seed=0)
    outputs = TrainOutputs(
        root / "m/model.safetensors", root / "m/model.json", root / "m/ckpt.pt", root / "live"
    )
    train(tiny_train_params(), processed, outputs)
    export_and_verify(
        ExportParams(), outputs.weights, outputs.card, processed, root / "export", root / "e.json"
    )
    return root
