"""After a failed dvc command: name the files a killed dvc left half-written, and the fix.

DVC rewrites two files in place, not through a temp file and a rename: ``.dvc/tmp/rwlock`` (the
locks of running commands) and ``dvc.lock`` (what each stage last produced). A dvc killed during
either write (SIGKILL, out of memory, a closed laptop) leaves a file every later dvc command
refuses, with an error that names neither the cause nor the fix. ``make run`` calls this after a
dvc failure; the stages' own outputs never need it (they are written atomically).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["torn_dvc_files"]


def torn_dvc_files(root: Path) -> list[str]:
    """One line per file under ``root`` that a killed dvc left unreadable: what to do about it."""
    hints = []
    rwlock = root / ".dvc" / "tmp" / "rwlock"
    if rwlock.exists() and not _is_json(rwlock):
        hints.append(
            ".dvc/tmp/rwlock was left half-written by a killed dvc; remove it "
            "(rm .dvc/tmp/rwlock: it only lists locks of processes that are gone) and run again"
        )
    lock = root / "dvc.lock"
    if lock.exists() and not _is_dvc_lock(lock):
        hints.append(
            "dvc.lock was left half-written by a killed dvc; restore the committed one "
            "(git checkout dvc.lock, or rm dvc.lock if none is committed) and run again: stages "
            "whose outputs are unchanged are restored from DVC's run cache, not retrained"
        )
    return hints


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def _is_dvc_lock(path: Path) -> bool:
    """Whether DVC would load ``path``: YAML that its own lock-file schema accepts."""
    import voluptuous
    import yaml
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA

    try:
        COMPILED_LOCKFILE_SCHEMA(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (UnicodeDecodeError, yaml.YAMLError, voluptuous.Invalid):
        return False
    return True


if __name__ == "__main__":
    for hint in torn_dvc_files(Path.cwd()):
        print(f"make: {hint}", file=sys.stderr)
