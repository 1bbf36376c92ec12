import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from torchstages.data.store import load_split
from torchstages.deploy.export import export_and_verify
from torchstages.deploy.parity import ClassParity, check
from torchstages.deploy.runtime import load_runner
from torchstages.errors import UserError
from torchstages.params.export import FORMATS, ExportParams

FILES = {"onnx": "model.onnx", "pt2": "model.pt2", "onnx-int8": "model.int8.onnx"}


def export_to(trained, processed, out, **params):
    outputs, _ = trained
    return export_and_verify(
        ExportParams(**params), outputs.weights, outputs.card, processed, out, out.parent / "e.json"
    )


@pytest.fixture
def exported(trained, processed, tmp_path):
    out = tmp_path / "export"
    return out, export_to(trained, processed, out), trained[1]


def test_every_format_matches_pytorch_and_carries_the_metadata(exported, processed):
    out, metrics, card = exported
    assert set(metrics["formats"]) == set(FORMATS)
    assert metrics["samples"] == len(load_split(processed, "test")[1])
    assert json.loads((out.parent / "e.json").read_text()) == metrics
    for fmt in ("onnx", "pt2"):
        m = metrics["formats"][fmt]
        assert m["prediction_agreement"] == 1.0 and m["max_abs_logit_diff"] < 1e-4, fmt
        assert m["accuracy"] == metrics["pytorch_accuracy"]
    int8 = metrics["formats"]["onnx-int8"]
    assert int8["accuracy_change"] == pytest.approx(int8["accuracy"] - metrics["pytorch_accuracy"])
    for fmt, name in FILES.items():
        runner = load_runner(out / name)
        assert metrics["formats"][fmt]["file"] == name and runner.format == fmt
        assert runner.classes == card["classes"]
        assert json.loads(runner.metadata["preprocessing"]) == card["preprocessing"]
        assert [i["name"] for i in runner.inputs] == ["pixels"]
        for n in (1, 5):  # dynamic batch axis in every format
            assert runner.run({"pixels": np.zeros((n, 1, 8, 8), np.uint8)}).shape == (n, 3)


def test_int8_static_by_default_dynamic_on_request(exported, trained, processed, tmp_path):
    import onnx

    static = onnx.load(str(exported[0] / "model.int8.onnx"))
    assert load_runner(exported[0] / "model.int8.onnx").metadata["quantization"] == "static"
    assert "QuantizeLinear" in {n.op_type for n in static.graph.node}
    out = tmp_path / "dyn"
    export_to(trained, processed, out, formats=("onnx-int8",), int8_quantization="dynamic")
    dynamic = onnx.load(str(out / "model.int8.onnx"))
    assert load_runner(out / "model.int8.onnx").metadata["quantization"] == "dynamic"
    assert "DynamicQuantizeLinear" in {n.op_type for n in dynamic.graph.node}


def test_exports_are_byte_identical_on_rerun(exported, trained, processed, tmp_path):
    first = exported[0]
    second = tmp_path / "again" / "other-name"
    export_to(trained, processed, second)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted([*FILES.values(), "MODEL_CARD.md"])
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_files_hold_no_paths_or_debug_records(exported, tmp_path):
    from conftest import ROOT

    out = exported[0]
    for name in FILES.values():
        data = (out / name).read_bytes()
        assert str(ROOT).encode() not in data and str(tmp_path).encode() not in data, name
        assert b"stack_trace" not in data and b".venv" not in data, name
    for name in ("model.onnx", "model.int8.onnx"):
        assert all(not n.metadata_props for n in onnx.load(str(out / name)).graph.node)


def test_pt2_loads_with_torch_alone(exported, tmp_path):
    """A user without this project: torch.export.load and the metadata are all it takes."""
    out = exported[0]
    code = (
        "import sys, json, torch\n"
        "sys.modules['torchstages'] = None  # any import of project code fails\n"
        "extra = {'classes': '', 'preprocessing': ''}\n"
        f"p = torch.export.load({str(out / 'model.pt2')!r}, extra_files=extra)\n"
        "print(json.dumps([json.loads(extra['classes']), "
        "list(p.module()(torch.zeros(4, 1, 8, 8)).shape)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert json.loads(result.stdout) == [exported[2]["classes"], [4, 3]]


def test_model_card_describes_data_inputs_and_every_format(exported):
    out, metrics, card = exported
    text = (out / "MODEL_CARD.md").read_text()
    for cls in card["classes"]:
        assert f"`{cls}`" in text
    assert "| `pixels` | float32 | (N, 1, 8, 8) |" in text
    assert '- interpolation: "bilinear"' in text
    for fmt, m in metrics["formats"].items():
        assert f"| {fmt} | `{m['file']}` |" in text
    assert f"{metrics['pytorch_accuracy']:.4f}" in text and "## Intended use and limits" in text


def test_only_the_formats_asked_for(trained, processed, tmp_path):
    metrics = export_to(trained, processed, tmp_path / "x", formats=("pt2",))
    assert list(metrics["formats"]) == ["pt2"]
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["MODEL_CARD.md", "model.pt2"]


def test_fp32_parity_failure_names_the_format_and_keeps_the_old_export(
    exported, trained, processed
):
    out = exported[0]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    metrics = (out.parent / "e.json").read_bytes()
    with pytest.raises(UserError, match=r"model.onnx: onnx disagrees with PyTorch"):
        export_to(trained, processed, out, max_abs_diff=1e-30, formats=("onnx",))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (out.parent / "e.json").read_bytes() == metrics  # still the export that is there


def test_each_fp32_format_must_agree_fully(tmp_path):
    # pt2 runs PyTorch's own kernels (its difference is 0 on the tiny model): checked on numbers
    disagreeing = {"max_abs_logit_diff": 1e-6, "prediction_agreement": 0.999, "accuracy_change": 0}
    with pytest.raises(UserError, match=r"model.pt2: pt2 disagrees with PyTorch"):
        check(ClassParity(), ExportParams(), {"formats": {"pt2": disagreeing}}, tmp_path)


def test_int8_fails_only_beyond_its_accuracy_drop(tmp_path):
    def metrics(change, samples=1000):
        return {
            "formats": {
                "onnx-int8": {
                    "max_abs_logit_diff": 0.5,  # never checked for int8
                    "prediction_agreement": 0.9,
                    "accuracy_change": change,
                }
            },
            "samples": samples,
        }

    params = ExportParams(max_int8_accuracy_drop=0.02)
    check(ClassParity(), params, metrics(-0.02), tmp_path)
    check(ClassParity(), params, metrics(0.01), tmp_path)
    with pytest.raises(UserError, match=r"model.int8.onnx: onnx-int8 loses 0.0300 test accuracy"):
        check(ClassParity(), params, metrics(-0.03), tmp_path)
    # one row of a small test split is allowed (rounded as the export rounds), two are not
    check(ClassParity(), params, metrics(round(-1 / 44, 6), 44), tmp_path)
    with pytest.raises(UserError, match=r"loses 0.0455 test accuracy"):
        check(ClassParity(), params, metrics(round(-2 / 44, 6), 44), tmp_path)


def test_formats_param_is_checked():
    with pytest.raises(ValueError, match="each format at most once"):
        ExportParams(formats=("onnx", "onnx"))
    with pytest.raises(ValueError):
        ExportParams(formats=("tflite",))
