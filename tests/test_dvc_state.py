"""torn_dvc_files: which in-place DVC files a killed dvc left unreadable, and nothing else."""

from __future__ import annotations

import pytest

from torchstages.dvc_state import torn_dvc_files

LOCK = """schema: '2.0'
stages:
  split:
    cmd: python stages/split.py
    outs:
    - path: data/splits
      hash: md5
      md5: 0123456789abcdef0123456789abcdef.dir
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    return tmp_path


def test_whole_files_and_missing_files_are_not_named(root):
    assert torn_dvc_files(root) == []
    (root / ".dvc" / "tmp" / "rwlock").write_text('{"read": {}, "write": {}}')
    (root / "dvc.lock").write_text(LOCK)
    assert torn_dvc_files(root) == []


# empty: killed after DVC opened the file for writing, before it wrote (what CI once hit)
@pytest.mark.parametrize("text", ["", '{"read": {"data/raw": [{"pid": 4'])
def test_a_torn_rwlock_is_named_with_its_fix(root, text):
    (root / ".dvc" / "tmp" / "rwlock").write_text(text)
    (hint,) = torn_dvc_files(root)
    assert hint.startswith(".dvc/tmp/rwlock was left half-written by a killed dvc")
    assert "rm .dvc/tmp/rwlock" in hint


# cut after a stage's name, or inside the key that must come first
@pytest.mark.parametrize("cut", [LOCK.index("    cmd"), LOCK.index("    cmd") + len("    cm")])
def test_a_torn_dvc_lock_is_named_with_its_fix(root, cut):
    (root / "dvc.lock").write_text(LOCK[:cut])
    (hint,) = torn_dvc_files(root)
    assert hint.startswith("dvc.lock was left half-written by a killed dvc")
    assert "git checkout dvc.lock" in hint
