"""Real training processes, on images and on a table: killed and resumed, and two DDP processes
under torchrun (gloo, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import copy_project, make_image_folder, split_and_build
from tables_data import make_table, write_table

pytestmark = pytest.mark.slow
KINDS = ["images", "table"]

TRAIN = {
    "seed": 5,
    "epochs": 6,
    "batch_size": 16,
    "lr": 0.01,
    "threads": 1,
    "model": {"name": "cnn", "channels": [16, 32], "convs_per_block": 2},
    "augment": {"crop_padding": 1, "rotation": 5.0},
}


TABLE_TRAIN = {
    **{k: v for k, v in TRAIN.items() if k != "augment"},
    "model": {"name": "mlp", "hidden": [64, 32]},
}


def _project(root: Path, kind: str = "images", **train_overrides) -> Path:
    repo = copy_project(root)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"] = {**(TRAIN if kind == "images" else TABLE_TRAIN), **train_overrides}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    if kind == "images":
        raw = make_image_folder(repo / "data/raw", per_class=80)
        split_and_build(raw, repo / "data", image_size=16, seed=1)
        return repo
    from torchstages.params.build_dataset import BuildDatasetParams
    from torchstages.params.split import SplitParams
    from torchstages.tables.build import build_table
    from torchstages.tables.split import split_table

    raw = repo / "data/raw"
    write_table(make_table(3000, seed=1), raw)
    split_table(raw, repo / "data/splits", SplitParams.model_validate({"table": {"drop": ["id"]}}))
    build_table(BuildDatasetParams(), raw, repo / "data/splits", repo / "data/processed")
    return repo


def _env(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def _train(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "stages/train.py"],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def _start_train(repo: Path, **popen) -> subprocess.Popen:
    """The train stage running in the background, its output discarded."""
    return subprocess.Popen(
        [sys.executable, "stages/train.py"],
        cwd=repo,
        env=_env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **popen,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``get(kind)``: one uninterrupted single-process run of the shared params per kind,
    trained once for the tests that only read it (the resume's reference, the DDP comparison)."""
    runs: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in runs:
            runs[kind] = _project(tmp_path_factory.mktemp(f"uninterrupted_{kind}"), kind)
            _train(runs[kind])
        return runs[kind]

    return get


def _epochs_done(checkpoint: Path) -> int:
    try:
        return torch.load(checkpoint, weights_only=True)["epochs_done"]
    except Exception:  # not there yet
        return 0


RESUMED = [
    ("images", {}),
    ("table", {}),
    # every process validates rank 0's BatchNorm statistics and their average: a resumed run,
    # whose processes all start from rank 0's checkpoint, used to log other val losses. Epochs
    # to spare: the workers outlive the killed launcher by up to its poll interval, and on a
    # quiet machine 4 epochs of this tiny set all ended in that time
    ("images", {"nproc_per_node": 2, "ema_decay": 0.9, "epochs": 10}),
]


@pytest.mark.parametrize("kind, overrides", RESUMED, ids=["images", "table", "images-ddp-ema"])
def test_killed_training_resumes_to_byte_identical_weights(
    tmp_path, uninterrupted, kind, overrides
):
    if overrides:
        reference = _project(tmp_path / "reference", kind, **overrides)
        _train(reference)
    else:
        reference = uninterrupted(kind)

    repo = _project(tmp_path / "killed", kind, **overrides)
    proc = _start_train(repo, start_new_session=True)
    deadline = time.monotonic() + 120
    while _epochs_done(repo / "models/checkpoint.pt") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-epoch 3 (or later): no chance to clean up
    proc.wait()
    while _workers_in(repo) and time.monotonic() < deadline:  # torchrun's end with it
        time.sleep(0.05)
    done = _epochs_done(repo / "models/checkpoint.pt")
    assert 2 <= done < overrides.get("epochs", 6), "the run finished before it could be killed"
    assert not (repo / "models/model.safetensors").exists()

    out = _train(repo)
    assert f"resuming after epoch {done}" in out.stderr
    for path in [
        "models/model.safetensors",
        "models/model.json",
        "models/checkpoint.pt",  # tracked by DVC too: the lock must not differ
        "dvclive/train/metrics.json",
        "dvclive/train/plots/metrics/val/loss.tsv",
        "dvclive/train/plots/metrics/lr.tsv",
    ]:
        assert (repo / path).read_bytes() == (reference / path).read_bytes(), path


def test_changed_params_ignore_the_old_checkpoint(tmp_path):
    repo = _project(tmp_path / "p", epochs=2)
    _train(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.02
    params["train"]["epochs"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = _train(repo)
    assert "resuming" not in out.stderr
    assert json.loads((repo / "dvclive/train/metrics.json").read_text())["step"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_two_ddp_processes_train_one_set_of_artifacts(tmp_path, uninterrupted, kind):
    single = uninterrupted(kind)
    repo = _project(tmp_path / "ddp", kind, nproc_per_node=2)
    out = _train(repo)
    assert "2 process(es)" in out.stderr
    assert out.stderr.count("train: best epoch") == 1  # only rank 0 reports and writes
    # and only rank 0 logs: rank 1 resolves the same batch size, fits the same linear member
    said = [line for line in out.stderr.splitlines() if line.startswith("train: ")]
    assert len(said) == len(set(said)), said
    card = json.loads((repo / "models/model.json").read_text())
    single_card = json.loads((single / "models/model.json").read_text())
    # the best epoch's monitor is val accuracy for images, val loss for tables (monitor: auto)
    assert abs(card["best"]["value"] - single_card["best"]["value"]) < 0.1
    val = json.loads((repo / "dvclive/train/metrics.json").read_text())["val"]
    single_val = json.loads((single / "dvclive/train/metrics.json").read_text())["val"]
    assert val["accuracy"] >= 0.85, val  # the last epoch's
    assert abs(val["accuracy"] - single_val["accuracy"]) < 0.1
    assert (repo / "models/model.safetensors").exists()
    steps = (repo / "dvclive/train/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(steps) == 1 + TRAIN["epochs"]  # one writer, one row per epoch
    if kind == "images":
        # the val loss logged for the best epoch is the saved model's: every process validated
        # rank 0's BatchNorm statistics, not its own batches' (off by 1e-3 before)
        rows = (repo / "dvclive/train/plots/metrics/val/loss.tsv").read_text().splitlines()
        logged = float(rows[card["best"]["epoch"]].split("\t")[1])
        assert _val_loss_of_the_saved_model(repo) == pytest.approx(logged, abs=2e-6)


def _val_loss_of_the_saved_model(repo: Path) -> float:
    from torchstages.data.loader import Normalizer
    from torchstages.data.store import load_split
    from torchstages.evaluation.inference import predict_logits
    from torchstages.models.saved import load_model

    cpu = torch.device("cpu")
    model, card = load_model(repo / "models/model.safetensors", repo / "models/model.json")
    images, labels = load_split(repo / "data/processed", "val")
    norm = Normalizer(card["preprocessing"]["mean"], card["preprocessing"]["std"], cpu)
    logits = predict_logits(model, images, norm, 256, cpu)
    return torch.nn.functional.cross_entropy(
        logits.double(), torch.as_tensor(np.array(labels))
    ).item()


def test_ddp_trains_a_frozen_backbone_and_unfreezes_it(tmp_path, uninterrupted):
    """DDP waited for gradients a frozen backbone never produces and stopped on the first step."""
    from safetensors.torch import load_file

    pretrained = tmp_path / "pretrained.safetensors"
    pretrained.write_bytes((uninterrupted("images") / "models/model.safetensors").read_bytes())
    before = load_file(pretrained)
    learned = [
        k for k in before if not k.startswith("head") and "running" not in k and "batches" not in k
    ]
    for epochs, unfreeze_after in ((1, 0), (2, 1)):
        transfer = {
            "pretrained": str(pretrained),
            "freeze": "backbone",
            "unfreeze_after": unfreeze_after,
        }
        model = {**TRAIN["model"], "transfer": transfer}
        repo = _project(tmp_path / f"ddp{epochs}", nproc_per_node=2, epochs=epochs, model=model)
        _train(repo)
        after = load_file(repo / "models/model.safetensors")
        unchanged = [k for k in learned if torch.equal(before[k], after[k])]
        assert unchanged == (learned if not unfreeze_after else []), epochs
        assert not torch.equal(before["head.3.weight"], after["head.3.weight"])


def _workers_in(repo: Path) -> list[int]:
    """PIDs of processes running in ``repo`` (Linux: /proc)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.joinpath("cwd").resolve() == repo.resolve():
                pids.append(int(proc.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds processes through /proc")
def test_a_sigkilled_ddp_run_leaves_no_worker_training(tmp_path):
    """kill -9 of the process group of `dvc repro` ends torchrun, whose workers live in sessions
    of their own: they must end with it, not train on and write outputs behind the next run."""
    repo = _project(tmp_path / "ddp", "images", nproc_per_node=2, epochs=500)
    proc = _start_train(repo, start_new_session=True)  # a group of its own, as dvc repro's
    deadline = time.monotonic() + 120
    while _epochs_done(repo / "models/checkpoint.pt") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_workers_in(repo)) >= 3, "torchrun and its two workers should be running"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _workers_in(repo) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _workers_in(repo)
    for pid in left:  # do not leave them to the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, "workers still running after their torchrun was killed"
    done = _epochs_done(repo / "models/checkpoint.pt")
    time.sleep(2)
    assert _epochs_done(repo / "models/checkpoint.pt") == done  # nothing writes on
    assert not (repo / "models/model.safetensors").exists()


@pytest.mark.parametrize(
    ("overrides", "nodes", "said"),
    [
        (
            {"model": {**TRAIN["model"], "transfer": {"pretrained": "/nowhere/w.safetensors"}}},
            "1",
            "error: train.model.transfer.pretrained: /nowhere/w.safetensors: file not found",
        ),
        ({"batch_size": 18}, "2", "error: train.batch_size: 18 is the batch of all 4 processes"),
    ],
)
def test_what_would_stop_every_ddp_process_is_one_line_before_torchrun(
    tmp_path, overrides, nodes, said
):
    """Weights not found, a model that does not fit the data, a batch the processes of all
    nodes do not divide: each would stop every process; said once, before torchrun starts
    them, not once per process above torchrun's traceback."""
    repo = _project(tmp_path, nproc_per_node=2, **overrides)
    out = subprocess.run(
        [sys.executable, "stages/train.py"],
        cwd=repo,
        env={**_env(repo), "PET_NNODES": nodes},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(said), out.stderr
    assert "Traceback" not in out.stderr and not (repo / "models/model.safetensors").exists()


def test_a_global_batch_that_the_processes_of_several_nodes_do_not_divide_is_refused():
    from torchstages.errors import UserError
    from torchstages.training.loop import check_global_batch

    check_global_batch(32, 4)
    with pytest.raises(
        UserError, match=r"train.batch_size: 30 is the batch of all 4 .* \(e.g. 28\)"
    ):
        check_global_batch(30, 4)
