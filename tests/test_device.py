"""Device and precision choice: CUDA, then Apple's MPS, then the CPU.

No Apple GPU is available in CI: these tests stub ``torch.backends.mps.is_available`` (and the
macOS version check), so they cover the selection rules, not MPS kernels.
"""

import logging

import pytest
import torch
from torch import nn

from conftest import tiny_train_params
from torchstages.device import resolve_device
from torchstages.errors import UserError
from torchstages.params.evaluate import EvaluateParams
from torchstages.training import runtime as runtime_module
from torchstages.training.runtime import configure

MPS = torch.device("mps")
CNN = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())


@pytest.fixture
def gpus(monkeypatch):
    """gpus(cuda=..., mps=...) makes torch report those devices as present."""

    def set_available(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_available


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(gpus, cuda, mps, expected):
    gpus(cuda=cuda, mps=mps)
    assert resolve_device("auto") == torch.device(expected)


def test_asking_for_a_missing_mps_is_a_clear_error(gpus):
    gpus(cuda=False, mps=False)
    with pytest.raises(UserError, match="device: mps was requested but .*is_available"):
        resolve_device("mps")
    gpus(cuda=False, mps=True)
    assert resolve_device("mps") == MPS
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit cpu wins over a GPU


def test_mps_is_a_valid_device_in_every_section():
    assert tiny_train_params(device="mps").device == "mps"
    assert EvaluateParams(device="mps").device == "mps"
    with pytest.raises(ValueError):
        EvaluateParams(device="metal")


def test_mps_precision_auto_stays_fp32(monkeypatch):
    monkeypatch.setattr(runtime_module, "mps_has_bf16", lambda: True)
    runtime = configure(tiny_train_params(precision="auto"), MPS)
    assert runtime.amp_dtype is None and runtime.scaler is None
    assert runtime.precision_name() == "fp32"


@pytest.mark.parametrize("has_bf16", [True, False])
def test_mps_bf16_only_where_mps_supports_it(monkeypatch, caplog, has_bf16):
    monkeypatch.setattr(runtime_module, "mps_has_bf16", lambda: has_bf16)
    with caplog.at_level(logging.WARNING):
        runtime = configure(tiny_train_params(precision="bf16"), MPS)
    assert runtime.amp_dtype == (torch.bfloat16 if has_bf16 else None)
    assert runtime.scaler is None
    assert ("needs macOS 14" in caplog.text) is not has_bf16


def test_mps_fp16_autocasts_with_a_loss_scaler_for_mps():
    runtime = configure(tiny_train_params(precision="fp16"), MPS)
    assert runtime.amp_dtype == torch.float16
    assert runtime.scaler is not None and runtime.scaler._device == "mps"


def test_mps_channels_last_auto_is_off():
    runtime = configure(tiny_train_params(channels_last="auto"), MPS).for_model(CNN)
    assert runtime.channels_last is False
    assert runtime.memory_format == torch.contiguous_format
    forced = configure(tiny_train_params(channels_last=True), MPS).for_model(CNN)
    assert forced.memory_format == torch.channels_last


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")
@pytest.mark.parametrize(("bf16_ok", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_precision_auto_is_unchanged(monkeypatch, bf16_ok, expected):
    """The MPS branch leaves CUDA as it was: bf16 where supported, else fp16 with a CUDA scaler."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_ok)
    runtime = configure(tiny_train_params(precision="auto"), torch.device("cuda"))
    assert runtime.amp_dtype == expected
    assert (runtime.scaler is not None) is (expected == torch.float16)
    if runtime.scaler is not None:
        assert runtime.scaler._device == "cuda"
    assert runtime.for_model(CNN).channels_last is True
