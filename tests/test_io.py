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
