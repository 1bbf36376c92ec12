"""Atomic, byte-stable writes: a crash never leaves half a file, an unchanged result hashes the same."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from torchstages.errors import UserError

__all__ = [
    "atomic_path",
    "atomic_dir",
    "write_bytes",
    "write_text",
    "write_json",
    "write_csv",
    "write_npy",
    "read_json",
    "sha256_file",
    "stable_json",
    "six_decimals",
    "nine_digits",
]


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it into place only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder beside ``target``; it replaces ``target`` only if the block succeeds.

    For outputs made of several files (arrays + meta.json): a failure half-way leaves the old
    folder, or none, never a mix of new and old files.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        # mkdtemp makes the folder private (0700): give it what a plain mkdir would, or a
        # server running as another user could not read an exported model
        staging.chmod(0o777 & ~_umask())
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_stale(target: Path) -> None:
    """Remove the temp files or folders of ``target`` that a killed run (SIGKILL: no cleanup)
    left: the next write of the same target is the first moment anything knows they are dead."""
    import shutil

    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        # only tempfile's random names (no dot): not the temp file of "<name>.<more>"
        if "." not in stale.name[len(target.name) + 2 : -4]:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_with(
    target: str | os.PathLike[str], mode: str, writer: Callable[[IO[Any]], None]
) -> None:
    with (
        atomic_path(target) as tmp,
        # text: UTF-8 whatever the locale, and newlines as written
        open(tmp, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as f,
    ):
        writer(f)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    _write_with(target, "wb", lambda f: f.write(data))


def write_text(target: str | os.PathLike[str], text: str) -> None:
    _write_with(target, "w", lambda f: f.write(text))


def stable_json(obj: Any) -> str:
    """Sorted keys, fixed indent, trailing newline: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, stable_json(obj))


def six_decimals(value: float) -> float:
    """A reported number (a metric, a plot point, a parity gap, a forecast) as tracked outputs
    hold it: readable diffs, and float noise below the sixth decimal never changes a file."""
    return round(float(value), 6)


def nine_digits(value: float) -> float:
    """A fitted statistic as ``meta.json`` holds it: 9 significant digits, a stable text form
    that gives a float32 back exactly."""
    return float(f"{value:.9g}")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The file's JSON; a file that is not JSON (cut short, edited by hand) is a UserError
    naming it, not a traceback."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path}: not valid JSON ({exc}): rerun the stage that writes it, or restore it "
            "(git checkout, dvc checkout)"
        ) from None


def write_csv(target: str | os.PathLike[str], header: list[str], rows: list[list[Any]]) -> None:
    import csv

    def _write(f: IO[Any]) -> None:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

    _write_with(target, "w", _write)


def write_npy(target: str | os.PathLike[str], array: Any) -> None:
    import numpy as np

    _write_with(target, "wb", lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
