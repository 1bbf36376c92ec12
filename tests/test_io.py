"""Atomic writes: a temp file left by a killed writer is removed by the next write of its target."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from torchstages.data.store import load_arrays
from torchstages.errors import UserError
from torchstages.io import atomic_dir, write_text


def test_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "model.json"
    (tmp_path / ".model.json.k1ll3d_x.tmp").write_text("torn")  # a file write killed mid-way
    (tmp_path / ".processed.k1ll3d_y.tmp").mkdir()  # a folder write killed mid-way
    (tmp_path / ".processed.k1ll3d_y.tmp" / "meta.json").write_text("{")
    other = tmp_path / ".model.json.bak.abcdefgh.tmp"  # the temp file of another target
    other.write_text("keep")
    write_text(target, "{}\n")
    with atomic_dir(tmp_path / "processed") as staging:
        (staging / "meta.json").write_text("{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".model.json.bak.abcdefgh.tmp",
        "model.json",
        "processed",
    ]


def test_written_files_and_folders_get_the_permissions_of_a_plain_open_and_mkdir(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.json", "{}")
        with atomic_dir(tmp_path / "export") as staging:
            (staging / "model.onnx").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == 0o755  # readable by a server


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path):
    """A report or card holding a class name such as 'Gekündigt' is the same file on a machine
    whose locale is ASCII (LC_ALL=C without UTF-8 coercion) as on any other."""
    target = tmp_path / "card.md"
    # the text as an escape: under LC_ALL=C, argv itself cannot carry it
    code = (
        f"from torchstages.io import write_text; write_text({str(target)!r}, 'Gek\\u00fcndigt\\n')"
    )
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env["PYTHONPATH"] = str(ROOT / "src")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert target.read_bytes() == "Gekündigt\n".encode()


def test_arrays_of_one_split_with_different_row_counts_are_named(tmp_path):
    np.save(tmp_path / "train_numeric.npy", np.zeros((3, 2), dtype=np.float32))
    np.save(tmp_path / "train_labels.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(UserError, match="train holds 3 numeric, 4 labels: rerun build-dataset"):
        load_arrays(tmp_path, "train", ("numeric", "labels"))


def test_json_is_written_with_sorted_keys_and_a_fixed_layout():
    """The same object must give the same bytes, whatever order its keys were added in."""
    from torchstages.io import stable_json

    assert stable_json({"b": 1, "a": {"d": 2, "c": "é"}}) == (
        '{\n  "a": {\n    "c": "é",\n    "d": 2\n  },\n  "b": 1\n}\n'
    )


def test_a_write_that_fails_half_way_leaves_the_old_file(tmp_path):
    from torchstages.io import write_csv

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot be written")

    target = tmp_path / "rows.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="cannot be written"):
        write_csv(target, ["a", "b"], [[1, 2], [3, Unprintable()]])
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # no temp file left
