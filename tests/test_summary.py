"""`torchstages summary`: the configured model described before any training."""

import pytest
import torch
from safetensors.torch import save_file

from torchstages.cli import main
from torchstages.data.images import Preprocessing
from torchstages.io import write_json
from torchstages.models import build_model
from torchstages.models.cnn import CNNSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _params(project, model: str, data: str = "{image_size: [8, 6], color: rgb}") -> None:
    (project / "params.yaml").write_text(f"build_dataset: {data}\ntrain:\n  model: {model}\n")


def test_summary_from_build_dataset_params_and_classes_option(project, capsys):
    _params(project, "{name: cnn, channels: [4, 8], convs_per_block: 1}")
    assert main(["summary", "--classes", "4"]) == 0
    out = capsys.readouterr().out
    expected = build_model(CNNSpec(channels=[4, 8], convs_per_block=1), 3, (8, 6), 4)
    n = sum(p.numel() for p in expected.parameters())
    assert f"parameters: {n:,}\n" in out
    assert f"trainable:  {n:,}\n" in out
    assert "input:      (1, 3, 8, 6) from params.yaml (build_dataset;" in out
    assert "output:     (1, 4) logits for 4 classes\n" in out


def test_summary_reads_the_processed_dataset_meta(project, capsys):
    _params(project, "{name: mlp, hidden: [5]}", "{image_size: 4, color: grayscale}")
    prep = Preprocessing((4, 4), "grayscale", "stretch", "bilinear", (0.5,), (0.2,))
    write_json(
        project / "data/processed/meta.json",
        {"classes": ["a", "b", "c"], "preprocessing": prep.to_dict()},
    )
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "input:      (1, 1, 4, 4) from data/processed/meta.json\n" in out
    assert f"parameters: {16 * 5 + 5 + 5 * 3 + 3:,}\n" in out
    assert "output:     (1, 3) logits for 3 classes\n" in out
    assert main(["summary", "--classes", "5"]) == 0  # overrides meta.json's 3, and says so
    assert "output:     (1, 5) logits for 5 classes (--classes)\n" in capsys.readouterr().out
    # build_dataset edited since it ran: the size the next run builds, with meta.json's classes
    _params(project, "{name: mlp, hidden: [5]}", "{image_size: 6, color: grayscale}")
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "input:      (1, 1, 6, 6) from params.yaml (build_dataset; " in out
    assert "meta.json holds (1, 4, 4) until build-dataset runs again)" in out
    assert "output:     (1, 3) logits for 3 classes\n" in out


def test_summary_needs_classes_before_build_dataset(project, capsys):
    _params(project, "{name: cnn}")
    assert main(["summary"]) == 2
    assert (
        "meta.json: not found: run build-dataset first, or pass --classes N"
        in capsys.readouterr().err
    )


def test_summary_counts_only_the_head_as_trainable_when_frozen(project, capsys):
    source = build_model(CNNSpec(channels=[4, 8], convs_per_block=1), 3, (8, 6), 2)
    torch.save(source.state_dict(), project / "prev.pt")
    _params(
        project,
        "{name: cnn, channels: [4, 8], convs_per_block: 1, "
        "transfer: {pretrained: prev.pt, freeze: backbone}}",
    )
    assert main(["summary", "--params", "params.yaml", "--classes", "5"]) == 0
    out = capsys.readouterr().out
    assert f"trainable:  {8 * 5 + 5}\n" in out  # the head: Linear(8, 5)
    assert "pretrained: prev.pt: 12 of 12 backbone tensors loaded" in out


def test_summary_of_a_torchvision_model(project, capsys):
    _params(project, "{name: torchvision, arch: mobilenet_v3_small}", "{image_size: 16}")
    assert main(["summary", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "model:      name=torchvision arch=mobilenet_v3_small\n" in out
    assert "input:      (1, 1, 16, 16)" in out
    assert "output:     (1, 10) logits for 10 classes" in out


def test_summary_of_a_table_model_uses_the_kind_defaults(project, capsys):
    from tables_data import make_table, write_table
    from test_tables import split_and_build

    write_table(make_table(120, task="regression"), project / "raw")
    split_and_build(project / "raw", project / "data")
    (project / "params.yaml").write_text("train: {}\n")
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "model:      name=mlp" in out  # the table default, not the image cnn
    assert "from data/processed/meta.json (table)" in out
    assert "output:     (1, 1) target, standardised with the train split's mean and std" in out
    assert "pretrained:" not in out
    # fine-tuning from a file, backbone frozen: the count train will log, and what was loaded
    trainable = int(out.split("trainable:")[1].split()[0].replace(",", ""))
    save_file(
        {k: v.contiguous() for k, v in _table_network(project).state_dict().items()},
        project / "prev.safetensors",
    )
    (project / "params.yaml").write_text(
        "train: {model: {name: mlp, transfer: {pretrained: prev.safetensors, freeze: backbone}}}\n"
    )
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert int(out.split("trainable:")[1].split()[0].replace(",", "")) < trainable
    assert "pretrained: prev.safetensors: " in out and "from this data, not the file" in out


def _table_network(project):
    from torchstages.io import read_json
    from torchstages.models import build_network
    from torchstages.params.base import load_section
    from torchstages.params.train import TrainParams
    from torchstages.training.data import params_for_kind

    meta = read_json(project / "data/processed/meta.json")
    params = params_for_kind(load_section(TrainParams, "train", project / "params.yaml"), meta)
    return build_network(meta, params.model, 1)


def test_summary_of_a_forecaster(project, capsys):
    from series_data import make_series, write_series
    from test_series import split_and_build

    write_series(make_series(200), project / "raw")
    split_and_build(project / "raw", project / "data", lookback=12, horizon=3)
    (project / "params.yaml").write_text("train:\n  model: {name: lstm, hidden: 8}\n")
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "input:      (1, 12, 1) from data/processed/meta.json (series)" in out
    assert "output:     (1, 3) the next 3 values of value" in out
