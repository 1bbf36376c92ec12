"""Bench-only stand-in for ``dvclive`` where it is not installed (a bare GPU machine).

Never on the package's or the tests' path: ``bench/train_speed.py`` puts ``bench/stubs`` on the
PYTHONPATH of its arm processes only when ``import dvclive`` fails (or ``--stub-dvclive``), and
``bench/gpu_tables.py`` (with ``gpu_sequences.py`` and ``gpu_images.py``, which import it) puts
it first on its own path, so those checks train alike with or without DVC installed. It
keeps the part of ``dvclive.Live`` the train loop uses and writes ``metrics.json`` as dvclive
does (``val/accuracy`` nested as ``{"val": {"accuracy": ...}}``), which ``arm_ours.py`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STUB = True


class Live:
    def __init__(self, dir: str = "dvclive", *args: Any, **kwargs: Any) -> None:
        self.dir = Path(dir)
        self.summary: dict[str, Any] = {}
        self.step = 0

    def log_metric(self, name: str, value: float) -> None:
        *parents, leaf = name.split("/")
        node = self.summary
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    def next_step(self) -> None:
        self._write()
        self.step += 1

    def end(self) -> None:
        self._write()

    def _write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        summary = {"step": self.step, **self.summary}
        (self.dir / "metrics.json").write_text(json.dumps(summary, indent=4) + "\n")
