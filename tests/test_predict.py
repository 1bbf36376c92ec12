import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from torchstages.cli import main
from torchstages.data.store import load_split
from torchstages.deploy.predict import Result, expand_inputs, predict, write_results
from torchstages.deploy.readers import ImageReader, reader_for
from torchstages.deploy.runtime import load_runner
from torchstages.errors import UserError
from torchstages.params.build_dataset import BuildDatasetParams


@pytest.fixture(scope="module")
def onnx_runner(deployed):
    return load_runner(deployed / "export/model.onnx")


def cli(*args: str, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "torchstages.cli", "predict", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)},
    )


def test_predict_decodes_as_build_dataset_and_agrees_with_the_model(deployed, onnx_runner):
    """The one preprocessing: each test file read by predict's reader is byte-equal to the
    array build-dataset stored, and predict's answer is the model's on that array."""
    images, _ = load_split(deployed / "processed", "test")
    with open(deployed / "splits/test.csv") as f:
        paths = [str(deployed / "raw" / row["path"]) for row in csv.DictReader(f)]
    reader = reader_for(onnx_runner.metadata)
    for path, stored in zip(paths, images, strict=True):
        assert np.array_equal(reader.decode(Path(path).read_bytes(), path)["pixels"], stored)
    results = list(predict(onnx_runner, reader, paths, k=2, batch_size=4))
    expected = onnx_runner.run({"pixels": np.asarray(images)}).argmax(1)
    assert [r.source for r in results] == paths
    assert [r.top[0][0] for r in results] == [onnx_runner.classes[i] for i in expected]
    assert all(len(r.top) == 2 and r.top[0][1] >= r.top[1][1] for r in results)


def test_every_format_answers_the_same(deployed, onnx_runner):
    files = sorted(str(p) for p in (deployed / "raw/class2").glob("*.png"))
    reader = reader_for(onnx_runner.metadata)
    tops = {}
    for name in ("model.onnx", "model.pt2", "model.int8.onnx"):
        runner = load_runner(deployed / "export" / name)
        tops[name] = [r.top[0] for r in predict(runner, reader, files, k=1)]
    onnx_top, pt2_top = tops["model.onnx"], tops["model.pt2"]
    assert [c for c, _ in pt2_top] == [c for c, _ in onnx_top]
    assert np.allclose([p for _, p in pt2_top], [p for _, p in onnx_top], atol=1e-5)
    assert len(tops["model.int8.onnx"]) == len(files)


def test_inputs_from_folders_lists_and_stdin(tmp_path):
    reader = ImageReader({"image_size": [8, 8], "color": "grayscale", "resize": "stretch",
                          "interpolation": "bilinear"})  # fmt: skip
    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, "PNG")
    tree = {
        "a/2.png": png.getvalue(),
        "a/1.jpeg.bak": png.getvalue(),  # recognised by content, not by name
        "a/sub/3.png": png.getvalue(),
        "a/README.txt": b"not an image",
        "a/.hidden.png": png.getvalue(),
        "a/.cache/4.png": png.getvalue(),
        "b.png": png.getvalue(),
    }
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    t = str(tmp_path)
    (tmp_path / "list.txt").write_text(f"# inputs\n{t}/b.png\n\n{t}/missing.png\n")
    (tmp_path / "list.csv").write_text(f"label,path\nx,{t}/b.png\ny,{t}/a/sub\n")
    folder = [f"{t}/a/1.jpeg.bak", f"{t}/a/2.png", f"{t}/a/sub/3.png"]
    left_out: list[str] = []
    assert expand_inputs([f"{t}/a"], reader, left_out=left_out) == folder
    assert left_out == [f"{t}/a/README.txt"]  # named on stderr by the CLI; hidden ones are not
    assert expand_inputs([f"{t}/list.txt"], reader) == [f"{t}/b.png", f"{t}/missing.png"]
    assert expand_inputs([f"{t}/list.csv"], reader) == [f"{t}/b.png", f"{t}/a/sub/3.png"]
    stdin = io.StringIO(f"{t}/b.png\n{t}/a\n")
    assert expand_inputs(["-", f"{t}/b.png"], reader, stdin) == [
        f"{t}/b.png", *folder, f"{t}/b.png"
    ]  # fmt: skip


def test_output_formats_and_error_rows():
    results = [Result("x.png", [("cat", 0.75), ("dog", 0.25)]), Result("y.png", error="broken")]
    out = io.StringIO()
    assert write_results(results, "jsonl", out, 2, 5) == 1
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {
        "path": "x.png",
        "top": [{"class": "cat", "probability": 0.75}, {"class": "dog", "probability": 0.25}],
        "error": None,
    }
    assert rows[1] == {"path": "y.png", "top": [], "error": "broken"}
    out = io.StringIO()
    write_results(results, "csv", out, 2, 5)
    assert out.getvalue().splitlines() == [
        "path,class,probability,class_2,probability_2,error",
        "x.png,cat,0.750000,dog,0.250000,",
        "y.png,,,,,broken",
    ]
    out = io.StringIO()
    write_results(results, "table", out, 2, 6)
    assert out.getvalue().splitlines() == [
        "x.png   cat 0.7500  dog 0.2500",
        "y.png   error: broken",
    ]


def test_a_bad_output_or_model_path_is_one_line_before_any_work(deployed, tmp_path, capsys):
    """They were tracebacks (IsADirectoryError, FileExistsError from mkstemp, ONNX Runtime's
    INVALID_PROTOBUF for training weights), or a JSON Lines file named .parquet."""
    image = str(sorted((deployed / "raw/class0").glob("*.png"))[0])
    model = str(deployed / "export/model.onnx")
    (tmp_path / "a_file").write_text("x")
    cases = {
        str(tmp_path): "is a folder; give a file name",
        str(tmp_path / "a_file" / "out.csv"): "cannot write there",
        str(tmp_path / "out.parquet"): "predict writes .csv, .jsonl or .json files",
    }
    for output, said in cases.items():
        assert main(["predict", "--model", model, image, "--output", output]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --output {output}: {said}") and "\n" not in err
    assert not (tmp_path / "out.parquet").exists()
    assert (
        main(
            [
                "predict",
                "--model",
                model,
                image,
                "--format",
                "jsonl",
                "--output",
                str(tmp_path / "o.txt"),
            ]
        )
        == 0
    )
    weights = deployed / "weights.safetensors"
    weights.write_bytes(b"not read")
    for path, said in (
        (deployed / "export", "is a folder; give an exported model"),
        (weights, "training weights"),
    ):
        assert main(["predict", "--model", str(path), image]) == 2
        assert capsys.readouterr().err.startswith(f"error: {path}: {said}")
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "99999"])
    assert exc.value.code == 2 and "a port is 1 to 65535, got 99999" in capsys.readouterr().err


def test_cli_error_rows_and_exit_codes(deployed, tmp_path):
    good = sorted(str(p) for p in (deployed / "raw/class0").glob("*.png"))[:2]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but broken")
    model = str(deployed / "export/model.onnx")
    ok = cli("--model", model, *good)
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["path"] for line in ok.stdout.splitlines()] == good  # piped: jsonl
    mixed = cli("--model", model, good[0], str(bad), str(tmp_path / "missing.png"), good[1])
    assert mixed.returncode == 1 and "2 of 4 inputs failed" in mixed.stderr
    rows = [json.loads(line) for line in mixed.stdout.splitlines()]
    assert [r["error"] is None for r in rows] == [True, False, False, True]
    assert rows[1]["error"].startswith("cannot decode image")
    assert rows[2]["error"].startswith("cannot read (No such file")
    # not images at all: named as the split stage names them, never by a buffer's address
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<!DOCTYPE html><title>404</title>")
    odd = cli("--model", model, str(tmp_path / "empty.png"), str(tmp_path / "page.jpg"))
    assert [json.loads(line)["error"] for line in odd.stdout.splitlines()] == [
        "empty file",
        "an HTML or XML page, not an image (a failed download?)",
    ]
    # the same two in a folder are left out, as the split stage leaves them out, and named
    (tmp_path / "odd").mkdir()
    for name in ("empty.png", "page.jpg"):
        (tmp_path / name).rename(tmp_path / "odd" / name)
    (tmp_path / "odd" / "good.png").write_bytes(Path(good[0]).read_bytes())
    folder = cli("--model", model, str(tmp_path / "odd"))
    assert folder.returncode == 0 and len(folder.stdout.splitlines()) == 1
    said = f"2 files in the folders given are not images, left out ({tmp_path}/odd/empty.png, …)"
    assert f"predict: {said}" in folder.stderr
    # the pixel limit: build-dataset's by default, --max-pixels to change it
    small = cli("--model", model, "--max-pixels", "143", good[0])  # these images are 12x12
    assert small.returncode == 1 and "144 pixels to decode, over the limit of 143" in small.stdout
    assert cli("--model", model, "--max-pixels", "144", good[0]).returncode == 0
    defaults = cli("--help").stdout
    assert f"default {BuildDatasetParams().max_pixels:,}" in " ".join(defaults.split())
    missing_model = cli("--model", str(tmp_path / "none.onnx"), good[0])
    assert missing_model.returncode == 2
    assert missing_model.stderr.strip() == f"error: {tmp_path}/none.onnx: model not found " \
        "(run dvc repro to export it)"  # fmt: skip
    assert cli("--model", model, "--top-k", "0", good[0]).returncode == 2
    assert cli("--model", model, str(tmp_path / "empty_dir_missing")).returncode == 1
    (tmp_path / "empty").mkdir()
    assert cli("--model", model, str(tmp_path / "empty")).returncode == 2


def test_cli_top_k_csv_output_file_and_stdin(deployed, tmp_path):
    files = sorted(str(p) for p in (deployed / "raw/class1").glob("*.png"))[:3]
    out = tmp_path / "preds.csv"
    run = cli("--model", str(deployed / "export/model.pt2"), "--top-k", "5", "--output",
              str(out), "-", stdin="\n".join(files))  # fmt: skip
    assert run.returncode == 0 and run.stdout == "", run.stderr
    rows = list(csv.reader(out.open()))
    # 3 classes: --top-k 5 gives all three
    assert rows[0] == ["path", "class", "probability", "class_2", "probability_2", "class_3",
                       "probability_3", "error"]  # fmt: skip
    assert [r[0] for r in rows[1:]] == files
    assert all(abs(sum(float(r[i]) for i in (2, 4, 6)) - 1) < 1e-4 for r in rows[1:])


def heavy_imports_of_predict(*args: str) -> tuple[int, list[str]]:
    """``torchstages predict ARGS`` in a fresh interpreter: its exit code, and the torch,
    training and model modules it imported (none on the ONNX path)."""
    code = (
        "import json, sys\n"
        "from torchstages.cli import main\n"
        f"rc = main(['predict', *{list(args)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or "
        "m.startswith(('torchstages.training', 'torchstages.models')))\n"
        "print(json.dumps([rc, heavy]), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": str(Path(sys.executable).parent)},
    )
    rc, heavy = json.loads(result.stderr.strip().splitlines()[-1])
    return rc, heavy


def test_onnx_path_imports_no_torch(deployed, capsys):
    """predict's default path starts without torch or training code."""
    model, image = deployed / "export/model.onnx", deployed / "raw/class0/000.png"
    assert heavy_imports_of_predict("--model", str(model), str(image)) == (0, [])


def test_reader_limits_pixels_before_decoding():
    reader = ImageReader({"image_size": [8, 8], "color": "grayscale", "resize": "stretch",
                          "interpolation": "bilinear"}, max_pixels=100)  # fmt: skip
    big = io.BytesIO()
    Image.new("L", (11, 10)).save(big, "PNG")
    with pytest.raises(UserError, match=r"big.png: 11x10 is 110 pixels to decode, over the limit"):
        reader.decode(big.getvalue(), "big.png")
    small = io.BytesIO()
    Image.new("L", (10, 10)).save(small, "PNG")
    assert reader.decode(small.getvalue(), "ok.png")["pixels"].shape == (1, 8, 8)


def test_in_process_main_returns_the_exit_code(deployed, tmp_path, capsys):
    good = str(deployed / "raw/class0/000.png")
    assert main(["predict", "--model", str(deployed / "export/model.onnx"), good]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == good


@pytest.mark.parametrize("flag", ["--workers", "--batch-size"])
def test_a_negative_count_is_a_usage_error(flag, capsys):
    with pytest.raises(SystemExit) as ended:
        main(["predict", "x.png", flag, "-1"])
    assert ended.value.code == 2 and "-1" in capsys.readouterr().err
