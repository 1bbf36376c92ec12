"""The benchmark scripts keep working as the library changes (numbers are not checked here)."""

import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_training_arms_run_on_a_tiny_project(tmp_path, monkeypatch):
    from conftest import make_image_folder

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import train_speed

    raw = make_image_folder(tmp_path / "raw", per_class=40)
    # the stages run as scripts: no git or DVC needed around them
    project = train_speed.prepare(tmp_path / "p", raw, {"image_size": 8}, dvc=False)
    result = train_speed.run(project, epochs=1, runs=1)
    assert set(result["samples_per_s"]) == {"ours", "baseline", "limit", "ours_fp32"}
    assert result["runtime"]["ours_fp32"] == {"precision": "fp32", "channels_last": False}
    assert all(rate > 0 for rate in result["samples_per_s"].values())
    assert 0 < result["val_accuracy"]["ours"] <= 1
    sys.modules.pop("train_speed", None)


def test_gpu_check_recognises_the_train_log_of_an_amp_run():
    """bench/gpu_check.sh greps the train log; keep its patterns in step with Runtime.describe."""
    import re

    import torch

    from torchstages.training.runtime import Runtime

    script = (ROOT / "bench" / "gpu_check.sh").read_text()
    patterns = re.findall(r're\.search\(r"([^"]+)", log\)', script)
    assert len(patterns) == 2
    line = Runtime(torch.device("cuda"), torch.bfloat16, None, True).describe()
    assert all(re.search(p, line) for p in patterns), (patterns, line)
    fp32 = Runtime(torch.device("cuda"), None, None, True).describe()
    assert not re.search(patterns[1], fp32)


def test_export_latency_arms_run_on_a_tiny_model(deployed, monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import export_latency
    from torchstages.deploy.exportable import exportable
    from torchstages.models.saved import load_model

    model, card = load_model(deployed / "m/model.safetensors", deployed / "m/model.json")
    batch = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8)).astype(np.float32)
    eager = exportable(model, card).module
    calls = export_latency.arms(deployed / "export", eager, {"pixels": batch}, "cpu")
    assert set(calls) == {
        "eager PyTorch",
        "pt2 (torch.export)",
        "ONNX Runtime fp32",
        "ONNX Runtime int8",
    }
    logits = {name: np.asarray(call()) for name, call in calls.items()}
    assert all(out.shape == (3, 3) for out in logits.values())
    assert np.allclose(logits["ONNX Runtime fp32"], logits["eager PyTorch"], atol=1e-4)
    assert export_latency.median_ms(calls["eager PyTorch"], 3, 1, lambda: None) > 0
    sys.modules.pop("export_latency", None)
