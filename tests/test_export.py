import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image

from torchstages.data.store import load_split
from torchstages.deploy.export import export_and_verify
from torchstages.deploy.predict import predict_files
from torchstages.errors import UserError
from torchstages.params.export import ExportParams


@pytest.fixture
def exported(trained, processed, tmp_path):
    outputs, card = trained
    onnx_path, metrics = tmp_path / "export/model.onnx", tmp_path / "export.json"
    parity = export_and_verify(
        ExportParams(), outputs.weights, outputs.card, processed, onnx_path, metrics
    )
    return onnx_path, metrics, parity, card


def test_onnx_matches_pytorch_and_carries_its_preprocessing(exported, processed):
    onnx_path, metrics, parity, card = exported
    assert parity["prediction_agreement"] == 1.0 and parity["max_abs_logit_diff"] < 1e-4
    assert json.loads(metrics.read_text()) == parity
    assert parity["samples"] == len(load_split(processed, "test")[1])
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(props["classes"]) == card["classes"]
    assert json.loads(props["preprocessing"]) == card["preprocessing"]


def test_dynamic_batch_dimension(exported):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        out = session.run(None, {"pixels": np.zeros((n, 1, 8, 8), np.float32)})[0]
        assert out.shape == (n, 3)


def test_predict_uses_build_dataset_preprocessing(exported, image_folder, tmp_path):
    onnx_path = exported[0]
    files = sorted((image_folder / "class1").glob("*.png"))[:3]
    big = tmp_path / "big.jpg"  # a different size and format goes through the same resize
    Image.open(files[0]).convert("RGB").resize((64, 64)).save(big)
    results = predict_files(onnx_path, [*files, big])
    assert [r[0] for r in results] == [str(f) for f in [*files, big]]
    assert all(0 < r[2] <= 1 for r in results)
    assert [r[1] for r in results[:3]].count("class1") >= 2


def test_predict_cli_prints_class_and_probability(exported, image_folder):
    f = sorted((image_folder / "class0").glob("*.png"))[0]
    out = subprocess.run(
        [sys.executable, "-m", "torchstages.cli", "predict", str(exported[0]), str(f)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path, label, prob = out.strip().split("\t")
    assert path == str(f) and label.startswith("class") and 0 < float(prob) <= 1


def test_predict_errors_are_one_line(tmp_path, exported):
    with pytest.raises(UserError, match="missing.onnx: model not found"):
        predict_files(tmp_path / "missing.onnx", [])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="bad.png: cannot decode image"):
        predict_files(exported[0], [bad])


def test_parity_failure_stops_the_stage(trained, processed, tmp_path):
    outputs, _ = trained
    with pytest.raises(UserError, match="ONNX disagrees with PyTorch"):
        export_and_verify(
            ExportParams(max_abs_diff=1e-30),
            outputs.weights,
            outputs.card,
            processed,
            tmp_path / "m.onnx",
            tmp_path / "e.json",
        )


def test_onnx_file_holds_no_paths_or_debug_records(exported):
    from conftest import ROOT

    onnx_path = exported[0]
    data = onnx_path.read_bytes()
    assert str(ROOT).encode() not in data and b"stack_trace" not in data
    assert all(not n.metadata_props for n in onnx.load(str(onnx_path)).graph.node)
