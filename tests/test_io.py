"""Atomic writes: a temp file left by a killed writer is removed by the next write of its target."""

from __future__ import annotations

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
