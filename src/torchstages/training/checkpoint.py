"""A full, resumable training checkpoint: state dicts and plain values only, written atomically.

It is saved after every epoch. A run resumes from it when its fingerprint (train params + the
processed data it trained on) matches and it is unfinished; otherwise it is ignored.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from torchstages.io import sha256_file, write_bytes

__all__ = ["fingerprint", "save_checkpoint", "load_resumable"]

log = logging.getLogger(__name__)


def fingerprint(params_dump: dict[str, Any], processed_dir: Path) -> str:
    """Hash of everything a resumed run must share with the interrupted one: the params and
    the data it trains and validates on (meta.json and every train_/val_ array, whatever the
    kind names them; not test's, which training never reads).

    ``params_dump`` holds the params that differ from their defaults: a key added in a later
    version (with a default) leaves the fingerprint, and so the checkpoint's bytes, unchanged.
    """
    h = hashlib.sha256(json.dumps(params_dump, sort_keys=True).encode())
    arrays = sorted(
        p.name for p in processed_dir.glob("*.npy") if p.name.startswith(("train_", "val_"))
    )
    for name in ("meta.json", *arrays):
        h.update(sha256_file(processed_dir / name).encode())
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # torch.save names the zip's root folder after the file it writes to: saving to a buffer keeps
    # the random temp-file name out, so an unchanged checkpoint hashes the same
    buffer = io.BytesIO()
    torch.save(_canonical(state), buffer)
    write_bytes(path, buffer.getvalue())


def _canonical(value: Any) -> Any:
    """``value`` with every string interned. pickle writes a string once per object and refers
    back to it after, so the bytes followed which objects a run happened to hold: a resumed
    run's best weights, read back from the checkpoint, have keys of their own where an
    uninterrupted run's share the live model's. Interned, equal strings are one object in both."""
    if isinstance(value, str):
        return sys.intern(value)
    if type(value) in (dict, OrderedDict):
        out = type(value)((_canonical(k), _canonical(v)) for k, v in value.items())
        if hasattr(
            value, "_metadata"
        ):  # a state_dict's module versions (load_state_dict reads them)
            out._metadata = _canonical(value._metadata)  # type: ignore[attr-defined]
        return out
    if type(value) in (list, tuple):
        return type(value)(_canonical(v) for v in value)
    return value


def load_resumable(path: Path, expected_fingerprint: str, epochs: int) -> dict[str, Any] | None:
    """The checkpoint's state if it belongs to this run and has epochs left; else None."""
    if not path.exists():
        return None
    try:
        # weights_only: tensors and plain values; a pickled object (code run on load) is refused
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # another version's checkpoint, a torn copy, a crafted file
        log.warning("train: %s not resumed (%s); training from the start", path, type(exc).__name__)
        return None
    if state.get("finished"):
        return None
    if state.get("fingerprint") != expected_fingerprint:
        # a killed run's progress that this run cannot use: say so, not start over silently
        log.info(
            "train: %s holds %d epochs of an unfinished run with other train params or data; "
            "training from the start",
            path,
            state.get("epochs_done", 0),
        )
        return None
    if not 0 < state.get("epochs_done", 0) < epochs:
        return None
    return state
