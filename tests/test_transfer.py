"""Pretrained weights from files and the torch cache, stem adaptation, head/backbone freezing."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from torchstages.data.images import Preprocessing
from torchstages.errors import UserError
from torchstages.models import build_model, freeze_backbone, split_head_backbone
from torchstages.models.cnn import CNNSpec
from torchstages.models.mlp import MLPSpec
from torchstages.models.saved import load_model, save_model
from torchstages.models.torchvision import TorchvisionSpec
from torchstages.models.transfer import TransferSpec, load_pretrained

CNN = {"name": "cnn", "channels": [4, 8], "convs_per_block": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturbed(model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict unlike any fresh init, so "loaded" and "fresh" cannot be confused.

    Multiplicative noise keeps the activations' scale (deep nets stay finite); the small
    additive part moves the zero-initialised biases too.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.5 * torch.randn_like(p)).add_(0.01 * torch.randn_like(p))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _save(state: dict[str, torch.Tensor], path) -> str:
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_state_dict_file_loads_the_backbone_and_leaves_a_fresh_head(tmp_path, suffix):
    source = _perturbed(build_model(CNNSpec(**CNN), 1, (8, 8), 3))
    path = _save(source, tmp_path / f"weights{suffix}")
    spec = CNNSpec(**CNN, transfer={"pretrained": path})
    torch.manual_seed(7)
    fresh = build_model(spec, 1, (8, 8), 5, pretrained=False)
    torch.manual_seed(7)
    model = build_model(spec, 1, (8, 8), 5)  # 5 classes: the head cannot match the file's 3
    state = model.state_dict()
    for name, tensor in state.items():
        if name.startswith("head."):
            torch.testing.assert_close(tensor, fresh.state_dict()[name])  # the seeded init
        else:
            torch.testing.assert_close(tensor, source[name])
    assert state["head.3.weight"].shape == (5, 8)


def test_previous_runs_model_safetensors_is_a_valid_source(tmp_path):
    """A copy of models/model.safetensors (written by save_model) initialises a new run."""
    old = build_model(CNNSpec(**CNN), 3, (8, 8), 10)
    source = _perturbed(old)
    card = {"architecture": {}, "classes": [], "preprocessing": {}}
    save_model(old, card, tmp_path / "prev.safetensors", tmp_path / "prev.json")
    # grayscale now, 2 classes: the stem kernels are summed over RGB, the head is new
    model = build_model(CNNSpec(**CNN), 1, (8, 8), 2, pretrained=False)
    report = load_pretrained(model, str(tmp_path / "prev.safetensors"))
    assert report.adapted == ["features.0.weight"]
    assert report.head == ["head.3.weight", "head.3.bias"]
    assert report.fresh == [] and report.unused == []
    torch.testing.assert_close(
        model.features[0].weight, source["features.0.weight"].sum(1, keepdim=True)
    )
    torch.testing.assert_close(model.features[1].running_mean, source["features.1.running_mean"])
    # every state-dict tensor counts, BatchNorm buffers included
    assert report.summary() == (
        f"{tmp_path / 'prev.safetensors'}: 12 of 12 backbone tensors loaded "
        "(features.0.weight summed to our input channels); head head.3.weight, head.3.bias fresh"
    )


def test_checkpoint_and_ddp_wrappers_are_unwrapped(tmp_path):
    source = _perturbed(build_model(MLPSpec(hidden=[4]), 1, (2, 2), 2))
    wrapped = {"epochs_done": 3, "model": {f"module.{k}": v for k, v in source.items()}}
    torch.save(wrapped, tmp_path / "checkpoint.pt")
    model = build_model(MLPSpec(hidden=[4]), 1, (2, 2), 2, pretrained=False)
    report = load_pretrained(model, str(tmp_path / "checkpoint.pt"))
    assert report.loaded == ["net.1.weight", "net.1.bias"]
    torch.testing.assert_close(model.net[1].weight, source["net.1.weight"])


def test_partial_match_reports_what_stayed_random(tmp_path):
    source = _perturbed(build_model(CNNSpec(channels=[4, 8], convs_per_block=1), 1, (8, 8), 2))
    path = _save(source, tmp_path / "w.pt")
    model = build_model(
        CNNSpec(channels=[4, 16], convs_per_block=1), 1, (8, 8), 2, pretrained=False
    )
    report = load_pretrained(model, path)
    assert "features.0.weight" in report.loaded
    assert "features.4.weight" in report.fresh  # 16 channels here, 8 in the file
    assert "NO match by name and shape (random init): features.4.weight" in report.summary()


def test_file_that_matches_nothing_is_a_user_error(tmp_path):
    path = _save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    model = build_model(CNNSpec(**CNN), 1, (8, 8), 2, pretrained=False)
    with pytest.raises(UserError, match=r"other\.pt: no tensor matches this architecture"):
        load_pretrained(model, path)


def test_missing_or_unreadable_files_are_user_errors(tmp_path):
    model = build_model(CNNSpec(**CNN), 1, (8, 8), 2, pretrained=False)
    with pytest.raises(UserError, match=r"nope\.safetensors: file not found"):
        load_pretrained(model, str(tmp_path / "nope.safetensors"))
    with pytest.raises(UserError, match=r": is a folder; give the weights file in it"):
        load_pretrained(model, str(tmp_path))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=r"junk\.safetensors: not a readable state dict"):
        load_pretrained(model, str(tmp_path / "junk.safetensors"))
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled object, not a state dict
    with pytest.raises(UserError, match=r"module\.pt: not a readable state dict"):
        load_pretrained(model, str(tmp_path / "module.pt"))
    torch.save({"lr": torch.tensor(1.0), "note": "x"}, tmp_path / "dict.pt")
    with pytest.raises(UserError, match=r"dict\.pt: no state dict"):
        load_pretrained(model, str(tmp_path / "dict.pt"))


RESNET18 = "ResNet18_Weights.IMAGENET1K_V1"


def test_torchvision_weights_name_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    spec = TorchvisionSpec(arch="resnet18", transfer={"pretrained": RESNET18})
    missing = tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError, match=f"not in the local torch cache \\({missing} missing\\)"):
        build_model(spec, 1, (16, 16), 4)
    assert not missing.exists()


def test_torchvision_weights_from_the_cache_with_the_stem_summed_to_one_channel(
    tmp_path, monkeypatch
):
    """A stand-in for the real file: an ImageNet-shaped (3-channel, 1000-class) resnet18."""
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    imagenet = resnet18().eval()
    source = _perturbed(imagenet)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source, cache / "resnet18-f37072fd.pth")

    spec = TorchvisionSpec(arch="resnet18", transfer={"pretrained": RESNET18})
    model = build_model(spec, 1, (16, 16), 4).eval()
    torch.testing.assert_close(model.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[1].conv2.weight, source["layer4.1.conv2.weight"])
    assert model.fc.weight.shape == (4, 512)
    # the documented promise of the sum: a grayscale image gives the features the RGB weights
    # gave the same image repeated over R, G and B
    model.fc, imagenet.fc = nn.Identity(), nn.Identity()
    gray = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(model(gray), imagenet(gray.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "head"),
    [
        (CNNSpec(**CNN), ["head.3.weight", "head.3.bias"]),
        (MLPSpec(hidden=[4], batch_norm=True), ["net.5.weight", "net.5.bias"]),
        (TorchvisionSpec(arch="mobilenet_v3_small"), ["classifier.3.weight", "classifier.3.bias"]),
    ],
)
def test_freeze_backbone_leaves_only_the_head_trainable(spec, head):
    model = build_model(spec, 1, (8, 8), 3)
    head_params, backbone = split_head_backbone(model)
    named = dict(model.named_parameters())
    assert [n for n, p in named.items() if any(p is h for h in head_params)] == head
    assert len(head_params) + len(backbone) == len(named)
    freeze_backbone(model, True)
    assert [n for n, p in named.items() if p.requires_grad] == head
    freeze_backbone(model, False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("transfer", "fragment"),
    [
        ({"unfreeze_after": 2}, "unfreeze_after needs freeze: backbone"),
        ({"freeze": "backbone"}, "freeze: backbone needs pretrained weights"),
        ({"pretrained": "weights.bin"}, "expected none, a .pt/.pth/.safetensors file"),
        ({"backbone_lr_scale": 0}, "greater than 0"),
    ],
)
def test_transfer_rules(transfer, fragment):
    with pytest.raises(ValueError, match=fragment):
        TransferSpec(**transfer)


def test_null_pretrained_means_none_and_freezing_combines_with_a_file():
    assert TransferSpec(pretrained=None).pretrained == "none"
    spec = TransferSpec(pretrained="w.pt", freeze="backbone", unfreeze_after=3)
    assert spec.unfreeze_after == 3


def test_load_model_never_reads_the_pretrained_file_again(tmp_path):
    """validate/test/export rebuild from the card: the pretrained file may be long gone."""
    spec = CNNSpec(**CNN, transfer={"pretrained": str(tmp_path / "gone.safetensors")})
    model = build_model(spec, 1, (8, 8), 2, pretrained=False)
    prep = Preprocessing((8, 8), "grayscale", "stretch", "bilinear", (0.5,), (0.2,))
    card = {
        "architecture": spec.model_dump(mode="json"),
        "classes": ["a", "b"],
        "preprocessing": prep.to_dict(),
    }
    save_model(model, card, tmp_path / "m.safetensors", tmp_path / "m.json")
    loaded, _ = load_model(tmp_path / "m.safetensors", tmp_path / "m.json")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


@pytest.mark.parametrize("name", ["mlp", "ft_transformer"])
def test_a_tables_scaling_comes_from_its_own_data_not_the_file(tmp_path, name):
    """Fine-tuning on a table measured on another scale: the file's medians, means and stds
    would mis-scale every input without a word; the network's weights are what transfers."""
    from safetensors.torch import save_file

    from torchstages.models import build_table_model, parse_spec

    def schema(scale: float) -> dict:
        numeric = [
            {
                "name": f"x{j}",
                "median": scale * j,
                "mean": scale * j,
                "std": scale,
                "indicator": True,
            }
            for j in range(3)
        ]
        return {"numeric": numeric, "categorical": [{"name": "c", "categories": ["a", "b", "c"]}]}

    spec = parse_spec({"name": name})
    torch.manual_seed(0)
    source = build_table_model(spec, schema(1.0), 2)
    save_file(
        {k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "t.safetensors"
    )
    target = build_table_model(spec, schema(100.0), 2, pretrained=False)
    report = load_pretrained(target, str(tmp_path / "t.safetensors"))
    state = target.state_dict()
    assert state["inputs.mean"].tolist() == [0.0, 100.0, 200.0]
    assert state["inputs.std"].tolist() == [100.0] * 3
    assert {"inputs.median", "inputs.mean", "inputs.std"} <= set(report.from_data)
    assert report.loaded and not report.fresh and not report.unused
    for key in report.loaded:
        torch.testing.assert_close(state[key], source.state_dict()[key])
    assert "from this data, not the file: " in report.summary()
