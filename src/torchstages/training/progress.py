"""What a training run tells its user: dvclive metrics per epoch, and progress on the terminal.

On a terminal: tqdm bars for epochs and batches with the running loss. Otherwise (DVC, CI, a log
file): one summary line per epoch. Only the main process logs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from torchstages.io import six_decimals, write_text

__all__ = ["EpochLog"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class EpochLog:
    def __init__(self, live_dir: Path, epochs: int, start: int, enabled: bool = True) -> None:
        self.live_dir, self.epochs, self.start, self.enabled = live_dir, epochs, start, enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.live: Any = None
        self.bar: Any = None

    def __enter__(self) -> EpochLog:
        if not self.enabled:
            return self
        from dvclive import Live

        if self.start:
            _truncate_plots(self.live_dir, self.start)
            _drop_torn_summary(self.live_dir / "metrics.json")
        # dvcyaml=None: dvc.yaml declares metrics and plots; dvclive must not rewrite it
        self.live = Live(
            str(self.live_dir), resume=self.start > 0, save_dvc_exp=False, dvcyaml=None, report=None
        )
        self.live.step = self.start
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, initial=self.start, desc="epochs", unit="epoch")
        return self

    def batches(self, loader: Iterable[T]) -> Iterator[T]:
        if not self.interactive:
            yield from loader
            return
        from tqdm import tqdm

        yield from tqdm(loader, desc="batches", leave=False, unit="batch")

    def epoch_end(
        self,
        epoch: int,
        metrics: dict[str, float],
        seconds: float,
        samples: int,
        improved: bool,
        best: dict[str, Any],
    ) -> None:
        """Log the epoch's metrics and the best-so-far summary (dvclive's metrics.json).

        Timing goes to the terminal only: a tracked output with times in it would never be stable.
        """
        if not self.enabled:
            return
        for name, value in metrics.items():
            self.live.log_metric(name, six_decimals(value))
        self.live.summary["best"] = best
        self.live.next_step()
        line = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(
                "  ".join(f"{k.replace('/', ' ')} {v:.4f}" for k, v in metrics.items() if k != "lr")
            )
        else:
            log.info(
                "epoch %d/%d  %s  %.1fs %.0f samples/s%s",
                epoch + 1,
                self.epochs,
                line,
                seconds,
                samples / seconds,
                "  *" if improved else "",
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.live is not None:
            self.live.end()


def _truncate_plots(live_dir: Path, steps: int) -> None:
    """Drop rows logged after the checkpoint being resumed from, so no epoch appears twice, and
    a row that the kill cut off (no line end)."""
    for tsv in sorted((live_dir / "plots" / "metrics").rglob("*.tsv")):
        lines = tsv.read_text(encoding="utf-8").splitlines(keepends=True)
        rows = [line for line in lines[1:] if line.endswith("\n")]
        kept = [lines[0]] + [line for line in rows if int(line.split("\t")[0]) < steps]
        write_text(tsv, "".join(kept))


def _drop_torn_summary(path: Path) -> None:
    """dvclive rewrites metrics.json in place: a kill inside that write leaves it empty or cut,
    and resuming would fail on it every time. The file holds only the last epoch's values,
    which the next epoch writes again, so a torn one is removed."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except ValueError:
        log.info("train: %s was cut off by the kill; the next epoch writes it again", path)
        path.unlink()
