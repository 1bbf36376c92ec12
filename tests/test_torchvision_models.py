"""torchvision architectures: any channel count, small images, head sized for our classes."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from torchstages.errors import UserError
from torchstages.models import build_model, check_output_shape
from torchstages.models.torchvision import ARCHS, TorchvisionSpec
from torchstages.params.base import load_section
from torchstages.params.train import TrainParams

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("channels", [1, 3])
def test_arch_gives_one_logit_per_class_on_small_images(arch, channels):
    """8x8, the smallest size the docs promise: every arch ends in global average pooling."""
    torch.manual_seed(0)
    model = build_model(TorchvisionSpec(arch=arch), channels, (8, 8), 4)
    check_output_shape(model, channels, (8, 8), 4)
    # train mode too: BatchNorm at the deepest (1x1) stage still sees 2 values per channel
    assert model.train()(torch.randn(2, channels, 8, 8)).shape == (2, 4)
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.in_channels == channels
    head = model.get_submodule(model.head_name)
    assert isinstance(head, nn.Linear) and head.out_features == 4


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0"])
def test_non_square_inputs_work(arch):
    model = build_model(TorchvisionSpec(arch=arch), 1, (16, 28), 3)
    check_output_shape(model, 1, (16, 28), 3)


def test_one_channel_stem_is_the_sum_of_the_random_rgb_kernels():
    torch.manual_seed(0)
    rgb = build_model(TorchvisionSpec(arch="resnet18"), 3, (16, 16), 2)
    torch.manual_seed(0)
    gray = build_model(TorchvisionSpec(arch="resnet18"), 1, (16, 16), 2)
    torch.testing.assert_close(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("{name: torchvision, arch: vgg16}", "train.model.arch: Input should be"),
        (
            "{name: torchvision, arch: resnet50, transfer: "
            "{pretrained: ResNet18_Weights.IMAGENET1K_V1}}",
            "ResNet18_Weights.IMAGENET1K_V1 are weights for resnet18, not for arch resnet50",
        ),
        (
            "{name: cnn, transfer: {pretrained: ResNet18_Weights.IMAGENET1K_V1}}",
            "is a torchvision weights name: it needs name: torchvision",
        ),
    ],
)
def test_params_errors_name_the_key(tmp_path, model, fragment):
    path = tmp_path / "params.yaml"
    path.write_text(f"train:\n  model: {model}\n")
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        load_section(TrainParams, "train", path)


def test_weights_names_of_every_family_fit_their_arch(tmp_path):
    for arch, weights in [
        ("mobilenet_v3_small", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
        ("efficientnet_b0", "EfficientNet_B0_Weights.DEFAULT"),
        ("resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    ]:
        spec = TorchvisionSpec(arch=arch, transfer={"pretrained": weights})
        assert spec.transfer.pretrained == weights


def test_importing_the_model_registry_does_not_import_torchvision():
    """Stages that never build a torchvision model must not pay for the import."""
    code = (
        "import sys, torchstages.models, torchstages.models.saved, torchstages.params.train;"
        "print('torchvision' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert out.stdout.strip() == "False"
