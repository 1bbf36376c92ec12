"""Export of tables (classification, regression), texts and series: every format written, loaded
back with the runtime, parity recorded with the kind's semantics, MODEL_CARD.md, failures that
name the format, byte-identical re-exports. (Images: test_export.py.)"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from series_data import make_panel, write_series
from tables_data import make_table, write_table
from test_series import split_and_build as build_series_project
from test_tables import split_and_build as build_table_project
from test_text import split_and_build as build_text_project
from text_data import make_texts, write_texts
from torchstages.deploy.export import export_and_verify, kind_export
from torchstages.deploy.parity import ClassParity, ValueParity, check
from torchstages.deploy.runtime import load_runner
from torchstages.errors import UserError
from torchstages.models.saved import load_model
from torchstages.params.export import FORMATS, ExportParams
from torchstages.params.train import TrainParams
from torchstages.training.loop import TrainOutputs, train

FILES = {"onnx": "model.onnx", "pt2": "model.pt2", "onnx-int8": "model.int8.onnx"}
KINDS = ["table", "regression", "text", "series"]
VALUES = {"regression", "series"}  # the kinds whose outputs are values, not logits


def _project(kind: str, root: Path) -> Path:
    """root/processed of a tiny project of ``kind``."""
    if kind in ("table", "regression"):
        task = "classification" if kind == "table" else "regression"
        write_table(make_table(160, task), root / "raw")
        return build_table_project(root / "raw", root, table={"drop": ["id"]})
    if kind == "text":
        write_texts(make_texts(), root / "raw")
        return build_text_project(root / "raw", root)
    write_series(make_panel(3, 80), root / "raw")
    return build_series_project(root / "raw", root, split={"id": "id"})


# a recurrent text model: its packed (evaluation) and padded (export) paths are both checked
MODELS = {"text": {"name": "lstm", "embedding_dim": 16}}


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> Iterator[dict[str, tuple[Path, TrainOutputs, dict]]]:
    """kind -> (processed, trained model files, metrics of an export into root/export)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread start-up costs more than the work
    found = {}
    for kind in KINDS:
        root = tmp_path_factory.mktemp(kind)
        processed = _project(kind, root)
        files = (root / "m" / n for n in ("w.safetensors", "c.json", "k.pt"))
        outputs = TrainOutputs(*files, root / "live")
        model = MODELS.get(kind, {"name": "mlp", "hidden": [32]})
        params = {"epochs": 3, "threads": 1, "seed": 3, "model": model}
        train(TrainParams.model_validate(params), processed, outputs)
        found[kind] = (processed, outputs, export(outputs, processed, root / "export"))
    yield found
    torch.set_num_threads(threads)


def export(outputs: TrainOutputs, processed: Path, out: Path, **params) -> dict:
    return export_and_verify(
        ExportParams(**params), outputs.weights, outputs.card, processed, out, out.parent / "e.json"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_format_is_written_loads_and_matches_pytorch(projects, kind):
    processed, outputs, metrics = projects[kind]
    out = outputs.weights.parent.parent / "export"
    model, card = load_model(outputs.weights, outputs.card)
    spec = kind_export(model, card, processed)
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES.values(), "MODEL_CARD.md"])
    assert json.loads((out.parent / "e.json").read_text()) == metrics
    assert metrics["samples"] == len(spec.truth) and set(metrics["formats"]) == set(FORMATS)
    diff = "max_abs_diff" if kind in VALUES else "max_abs_logit_diff"
    for fmt in ("onnx", "pt2"):
        m = metrics["formats"][fmt]
        assert m["prediction_agreement"] == 1.0 and m[diff] < 1e-4, fmt
    int8 = metrics["formats"]["onnx-int8"]
    assert ("error_increase" if kind in VALUES else "accuracy_change") in int8
    assert ("prediction_agreement" in int8) == (kind not in VALUES)  # values: RMSE only
    onnx_meta = load_runner(out / "model.onnx").metadata
    named = onnxruntime.InferenceSession(str(out / "model.onnx")).get_outputs()[0].name
    assert named == ("prediction" if kind in VALUES else "logits")
    for fmt, name in FILES.items():
        runner = load_runner(out / name)
        assert runner.format == fmt and metrics["formats"][fmt]["file"] == name
        assert runner.metadata["kind"] == card["kind"]
        # one set of metadata in every file, whatever its format
        same = {k: v for k, v in runner.metadata.items() if k not in ("format", "quantization")}
        assert same == {k: v for k, v in onnx_meta.items() if k != "format"}, fmt
        assert runner.classes == ([] if kind in VALUES else card["classes"])
        for n in (1, 5):  # a dynamic batch axis in every format
            got = runner.run({k: v[:n] for k, v in spec.test.items()})
            assert got.shape == (n, *spec.reference.shape[1:]), fmt
            np.testing.assert_allclose(
                got, spec.reference[:n], atol=0.5 if fmt == "onnx-int8" else 1e-4
            )
    assert load_runner(out / "model.int8.onnx").metadata["quantization"] == "dynamic"


@pytest.mark.parametrize("kind", KINDS)
def test_re_export_is_byte_identical(projects, kind, tmp_path):
    processed, outputs, _ = projects[kind]
    first = outputs.weights.parent.parent / "export"
    export(outputs, processed, tmp_path / "again" / "elsewhere")
    for path in first.iterdir():
        assert path.read_bytes() == (tmp_path / "again/elsewhere" / path.name).read_bytes(), path
    assert (tmp_path / "again/e.json").read_bytes() == (first.parent / "e.json").read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_export_keeps_torchs_notes_on_its_own_workings_quiet(projects, kind, tmp_path):
    """torch's exporters warn about their own workings (a table's two inputs sharing one batch
    axis, an LSTM re-flattening its weights while traced, their own deprecations), nothing a
    user can act on: the export shows none of it, and the shared axis is still named."""
    processed, outputs, _ = projects[kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(outputs, processed, tmp_path / "export", formats=("onnx", "pt2"))
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    graph = onnx.load(tmp_path / "export" / "model.onnx").graph
    assert {i.type.tensor_type.shape.dim[0].dim_param for i in graph.input} == {"batch"}


def test_model_cards_say_what_each_kind_needs(projects):
    cards = {
        k: (projects[k][1].weights.parent.parent / "export/MODEL_CARD.md").read_text()
        for k in KINDS
    }
    table, regression, text, series = (cards[k] for k in KINDS)
    assert "classification of `target` into 2 classes" in table and "`colour`" in table
    assert "| `numeric` | float32 | (N, " in table and "| max abs logit diff |" in table
    assert "regression of `target`" in regression and "| RMSE | vs PyTorch |" in regression
    assert "torchstages predict new_rows.csv" in regression and "rows" in regression
    assert "vocabulary " in text and "`tokens`" in text and '--text "' in text
    assert "4 steps ahead from the last 12 steps" in series and "seasonal naive" in series
    assert "history.csv" in series and "| `window` | float32 | (N, 12, 1) |" in series
    for kind, card in cards.items():
        assert "(dynamic quantisation)" in card, kind
        for name in FILES.values():
            assert f"`{name}`" in card, kind


def test_text_pt2_loads_with_torch_alone(projects, tmp_path):
    """torch.export.load and the extra files are all a user needs: no project code."""
    processed, outputs, _ = projects["text"]
    out = outputs.weights.parent.parent / "export"
    tokens = np.load(processed / "test_tokens.npy")[:3].tolist()
    lengths = np.load(processed / "test_lengths.npy")[:3].tolist()
    code = (
        "import sys, json, torch\n"
        "sys.modules['torchstages'] = None  # any import of project code fails\n"
        "extra = {'classes': '', 'vocab': '', 'tokenizer': '', 'max_len': ''}\n"
        f"p = torch.export.load({str(out / 'model.pt2')!r}, extra_files=extra)\n"
        f"y = p.module()(torch.tensor({tokens}), torch.tensor({lengths}))\n"
        "print(json.dumps([json.loads(extra['classes']), len(json.loads(extra['vocab'])), "
        "list(y.shape)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    card = json.loads(outputs.card.read_text())
    assert json.loads(result.stdout) == [card["classes"], card["vocab_size"], [3, 3]]


@pytest.mark.parametrize("kind", ["regression", "series"])
def test_a_disagreeing_pt2_fails_naming_it_and_keeps_the_old_export(projects, kind, monkeypatch):
    """Only the .pt2 is written from a changed network: ONNX still agrees, pt2 must not pass."""
    import torchstages.deploy.export as export_module

    processed, outputs, _ = projects[kind]
    out = outputs.weights.parent.parent / "export"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = export_module._pt2_bytes

    def corrupted(exp, metadata):
        module = copy.deepcopy(exp.module)
        with torch.no_grad():
            next(module.parameters()).add_(0.5)
        return real(type(exp)(module, exp.example, exp.inputs, exp.metadata), metadata)

    monkeypatch.setattr(export_module, "_pt2_bytes", corrupted)
    with pytest.raises(UserError, match=r"model.pt2: pt2 disagrees with PyTorch \(max \|diff"):
        export(outputs, processed, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_format_the_model_cannot_take_is_one_line_naming_it(projects, monkeypatch, tmp_path):
    import torchstages.deploy.export as export_module

    def unsupported(exp, metadata):
        raise RuntimeError("aten.foo is not supported\n  long exporter trace")

    monkeypatch.setattr(export_module, "_pt2_bytes", unsupported)
    processed, outputs, _ = projects["series"]
    with pytest.raises(
        UserError,
        match=r"^model.pt2: pt2 cannot be written for this model \(aten.foo is not supported\); "
        r"remove pt2 from export.formats$",
    ):
        export(outputs, processed, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_int8_fails_only_beyond_its_error_increase(tmp_path):
    parity = ValueParity(np.ones(3))

    def metrics(increase):
        # max_abs_diff and agreement are never checked for int8
        m = {"max_abs_diff": 0.5, "prediction_agreement": 0.0, "error_increase": increase}
        return {"formats": {"onnx-int8": m}, "samples": 3}

    params = ExportParams(max_int8_error_increase=0.05)
    check(parity, params, metrics(0.05), tmp_path)
    check(parity, params, metrics(-0.2), tmp_path)
    with pytest.raises(
        UserError,
        match=r"model.int8.onnx: onnx-int8 raises the test RMSE by 8.0% of PyTorch's "
        r"\(export.max_int8_error_increase 0.05\)",
    ):
        check(parity, params, metrics(0.08), tmp_path)
    # a classifier's int8 is judged by accuracy, whatever its logits do
    check(ClassParity(), params, {"formats": {"onnx-int8": {"max_abs_logit_diff": 9.0,
          "prediction_agreement": 0.5, "accuracy_change": 0.0}}, "samples": 3}, tmp_path)  # fmt: skip


def test_value_parity_is_relative_to_each_rows_target_scale():
    parity = ValueParity(np.array([1.0, 100.0]))
    reference = np.array([[1.0, 2.0], [100.0, 200.0]])
    truth = reference + np.array([[1.0, 1.0], [100.0, 100.0]])  # one scale off everywhere
    out = reference + np.array([[0.0, 0.0], [0.5, 0.0]])  # 0.005 of row 2's scale
    m = parity.measure(out, reference, truth, ExportParams(max_abs_diff=0.01), fp32=True)
    assert m["max_abs_diff"] == 0.005 and m["prediction_agreement"] == 1.0
    # agreement is the share of rows whose every value is within the limit
    off = reference + np.array([[0.0, 0.0], [0.0, 5.0]])  # one of row 2's values: 0.05 of scale
    m_off = parity.measure(off, reference, truth, ExportParams(max_abs_diff=0.01), fp32=True)
    assert m_off["prediction_agreement"] == 0.5
    # int8 values are held to their RMSE: no share within fp32's limit is reported for them
    int8 = parity.measure(out, reference, truth, ExportParams(max_abs_diff=0.01), fp32=False)
    assert "prediction_agreement" not in int8 and int8["max_abs_diff"] == 0.005
    assert parity.summary(reference, truth) == {"pytorch_scaled_rmse": 1.0}
    assert m["error_increase"] == pytest.approx(m["scaled_rmse"] - 1.0, abs=1e-6)
    # a forecaster trained on the logarithm: values compared as logarithms, in the log's scale
    logs = ValueParity(np.array([0.5]), log=True)
    m = logs.measure(
        np.array([[110.0]]), np.array([[100.0]]), np.array([[100.0]]), ExportParams(), fp32=True
    )
    assert m["max_abs_diff"] == pytest.approx(float(f"{np.log(1.1) / 0.5:.1e}"))


def test_static_int8_on_request_calibrates_on_the_train_split(projects, tmp_path):
    processed, outputs, _ = projects["series"]
    metrics = export(
        outputs, processed, tmp_path / "x", formats=("onnx-int8",), int8_quantization="static"
    )
    assert metrics["formats"]["onnx-int8"]["error_increase"] <= 0.05
    path = tmp_path / "x/model.int8.onnx"
    assert load_runner(path).metadata["quantization"] == "static"
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "(static quantisation)" in (tmp_path / "x/MODEL_CARD.md").read_text()


def test_a_trending_forecaster_gets_dynamic_int8_because_static_cannot_see_its_future(tmp_path):
    """The test range of a trending series lies beyond the train range that static calibration
    measures: auto picks dynamic for every forecaster (the convolutional tcn too), and the
    parity check stops a static file that clips the future."""
    from series_data import make_series

    frame = make_series(300)
    frame["value"] = (frame["value"] + 0.5 * np.arange(300)).round(4)  # test far above train
    write_series(frame, tmp_path / "raw")
    processed = build_series_project(tmp_path / "raw", tmp_path)
    outputs = TrainOutputs(
        *(tmp_path / "m" / n for n in ("w.pt", "c.json", "k.pt")), tmp_path / "l"
    )
    params = {"epochs": 3, "threads": 1, "seed": 3, "model": {"name": "tcn", "channels": [8, 8]}}
    train(TrainParams.model_validate(params), processed, outputs)
    metrics = export(outputs, processed, tmp_path / "auto", formats=("onnx-int8",))
    assert load_runner(tmp_path / "auto/model.int8.onnx").metadata["quantization"] == "dynamic"
    assert metrics["formats"]["onnx-int8"]["error_increase"] < 0.05
    with pytest.raises(UserError, match="model.int8.onnx: onnx-int8 raises the test RMSE by"):
        export(outputs, processed, tmp_path / "static", formats=("onnx-int8",),
               int8_quantization="static")  # fmt: skip
