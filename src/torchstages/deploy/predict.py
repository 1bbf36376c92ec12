"""``torchstages predict``: inputs (files, folders, lists of paths, stdin) -> top-k classes per
input, with an error row for each input that cannot be read. Generic over data kinds: the
model's reader (``deploy/readers.py``) turns bytes into named arrays; no torch on the ONNX path.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from torchstages.data.discover import is_skipped_name
from torchstages.deploy.readers import Reader
from torchstages.deploy.runtime import Runner, top_k_rows
from torchstages.errors import UserError
from torchstages.io import six_decimals

__all__ = [
    "Result",
    "expand_inputs",
    "predict",
    "decoded_batches",
    "write_results",
    "default_format",
]

LIST_SUFFIXES = (".csv", ".txt", ".lst")
_COLS = ("class", "probability")


@dataclass(frozen=True)
class Result:
    """One input's answer: the best classes with their probabilities, or why it failed."""

    source: str
    top: list[tuple[str, float]] = field(default_factory=list)  # best first
    error: str | None = None


def expand_inputs(
    args: Iterable[str],
    reader: Reader,
    stdin: IO[str] | None = None,
    left_out: list[str] | None = None,
) -> list[str]:
    """Every input named by ``args``, in order: a file as given; a folder's files recursively
    (sorted; hidden files and folders skipped and non-inputs left out by content, as the
    split stage does, and appended to ``left_out``); a ``.csv``/``.txt`` list (one path per
    line, or a ``path`` column, else the first one; relative to the current folder); ``-``:
    such a list on stdin.

    A path that does not exist stays in the list and gets an error row, so one typo does not
    stop a long run.
    """
    left_out = [] if left_out is None else left_out
    found: list[str] = []
    for arg in args:
        if arg == "-":
            if stdin is None:
                raise UserError("-: no stdin to read paths from")
            found += _walk_all(_list_entries(stdin.read()), reader, left_out)
        elif (
            Path(arg).is_file()
            and arg.lower().endswith(LIST_SUFFIXES)
            and not _is_input(Path(arg), reader)
        ):
            found += _walk_all(_list_entries(_read_list(Path(arg))), reader, left_out)
        else:
            found += _walk_all([arg], reader, left_out)
    return found


def _read_list(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the list of inputs ({exc})") from None


def _list_entries(text: str) -> list[str]:
    rows = [r for r in csv.reader(io.StringIO(text)) if r and r[0].strip()]
    column = 0
    if rows and "path" in [c.strip().lower() for c in rows[0]]:
        column = [c.strip().lower() for c in rows[0]].index("path")
        rows = rows[1:]
    return [r[column].strip() for r in rows if not r[column].lstrip().startswith("#")]


def _walk_all(entries: list[str], reader: Reader, left_out: list[str]) -> list[str]:
    return [f for entry in entries for f in (_walk(entry, reader, left_out) if entry else [])]


def _walk(entry: str, reader: Reader, left_out: list[str]) -> list[str]:
    if not Path(entry).is_dir():
        return [entry]
    found = []
    # linked folders are followed, as the split stage follows them: each real folder once
    entered = {os.path.realpath(entry)}
    for dirpath, dirnames, filenames in os.walk(entry, followlinks=True):
        dirnames[:] = [
            d
            for d in sorted(dirnames)
            if not is_skipped_name(d) and _first_visit(os.path.join(dirpath, d), entered)
        ]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if is_skipped_name(name):
                continue
            (found if _is_input(Path(path), reader) else left_out).append(path)
    return found


def _first_visit(folder: str, entered: set[str]) -> bool:
    real = os.path.realpath(folder)
    if real in entered:
        return False
    entered.add(real)
    return True


def _is_input(path: Path, reader: Reader) -> bool:
    try:
        with open(path, "rb") as f:
            return reader.accepts(f.read(16))
    except OSError:
        return False


def predict(
    runner: Runner,
    reader: Reader,
    sources: list[str],
    k: int = 1,
    batch_size: int = 64,
    workers: int = 0,
) -> Iterator[Result]:
    """Results in the order of ``sources``."""
    for chunk, decoded, logits in decoded_batches(runner, reader, sources, batch_size, workers):
        tops = iter(top_k_rows(logits, runner.classes, k) if logits is not None else ())
        for source, d in zip(chunk, decoded, strict=True):
            yield Result(source, error=d) if isinstance(d, str) else Result(source, next(tops))


def decoded_batches(
    runner: Runner, reader: Reader, sources: list[str], batch_size: int = 64, workers: int = 0
) -> Iterator[tuple[list[str], list[dict[str, np.ndarray] | str], np.ndarray | None]]:
    """Per batch of ``sources``: the sources, each one's decoded arrays or the reason it could
    not be decoded, and the model's logits for the decoded ones (None when none was). Inputs
    are decoded by a thread pool (decoding releases the GIL) one batch ahead of the model, so
    decoding overlaps inference."""
    chunks = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:

        def submit(chunk: list[str]) -> list[Future]:
            return [pool.submit(_read, reader, source) for source in chunk]

        pending = submit(chunks[0]) if chunks else []
        for i, chunk in enumerate(chunks):
            decoded = [f.result() for f in pending]
            pending = submit(chunks[i + 1]) if i + 1 < len(chunks) else []
            ok = [d for d in decoded if isinstance(d, dict)]
            logits = None
            if ok:
                logits = runner.run({name: np.stack([d[name] for d in ok]) for name in ok[0]})
            yield chunk, decoded, logits


def _read(reader: Reader, source: str) -> dict[str, np.ndarray] | str:
    """The sample's named arrays, or the reason it cannot be used (without the path)."""
    try:
        with open(source, "rb") as f:
            data = f.read()
        return reader.decode(data, source)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    except UserError as exc:
        return str(exc).removeprefix(f"{source}: ")
    except Exception as exc:  # a decoder failing in a way it does not name: one row, not the run
        return f"cannot decode ({exc!r})"


def write_results(results: Iterable[Result], fmt: str, out: IO[str], k: int, width: int) -> int:
    """Write each result as it comes; the number of error rows. ``width``: the table's path
    column (known from the input list, so rows print as they are ready)."""
    failed = 0
    names = ["class", "probability"] + [f"{c}_{r}" for r in range(2, k + 1) for c in _COLS]
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["path", *names, "error"])
    for r in results:
        failed += r.error is not None
        if fmt == "jsonl":
            top = [{"class": c, "probability": six_decimals(p)} for c, p in r.top]
            out.write(json.dumps({"path": r.source, "top": top, "error": r.error}) + "\n")
        elif writer is not None:
            cells = [x for c, p in r.top for x in (c, f"{p:.6f}")]
            writer.writerow([r.source, *cells, *[""] * (len(names) - len(cells)), r.error or ""])
        else:
            answer = "  ".join(f"{c} {p:.4f}" for c, p in r.top) or f"error: {r.error}"
            out.write(f"{r.source:<{width}}  {answer}\n")
        out.flush()
    return failed


def default_format(output: str | None, is_terminal: bool) -> str:
    """table on a terminal; else by the output file's suffix (.csv), else jsonl (for pipes)."""
    if output is not None:
        return "csv" if output.lower().endswith(".csv") else "jsonl"
    return "table" if is_terminal else "jsonl"
