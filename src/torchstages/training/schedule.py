"""Learning-rate schedules as a pure function of the optimizer step (plus plateau state).

Computing the factor from the step, rather than stepping a stateful scheduler object, makes a
resumed run land on exactly the lr an uninterrupted one would have used.
"""

from __future__ import annotations

import math

import torch

from torchstages.params.train import ScheduleParams

__all__ = ["LRSchedule"]

_ONECYCLE_PCT, _ONECYCLE_DIV, _ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4  # torch's OneCycleLR defaults


class LRSchedule:
    """lr of every param group = its base lr × ``factor(step)``; base lrs are set once."""

    def __init__(
        self, params: ScheduleParams, optimizer: torch.optim.Optimizer, epochs: int, steps: int
    ) -> None:
        self.params, self.optimizer = params, optimizer
        self.steps_per_epoch, self.total = steps, epochs * steps
        self.plateau_scale, self.plateau_best, self.plateau_bad = 1.0, math.inf, 0
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])

    def factor(self, step: int) -> float:
        """Shape of the schedule at ``step``, times a linear warmup over the first epochs."""
        p, epoch = self.params, step / self.steps_per_epoch
        warmup_steps = p.warmup_epochs * self.steps_per_epoch
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if p.name == "step":
            shape = p.gamma ** int(epoch // p.step_size)
        elif p.name == "multistep":
            shape = p.gamma ** sum(int(epoch) >= m for m in p.milestones)
        elif p.name == "cosine":
            t = max(step - warmup_steps, 0) / max(self.total - warmup_steps, 1)
            shape = p.min_lr_ratio + (1 - p.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * min(t, 1))
            )
        elif p.name == "onecycle":
            return self._onecycle(step)  # has its own warmup
        elif p.name == "plateau":
            shape = self.plateau_scale
        else:
            shape = 1.0
        return warm * shape

    def _onecycle(self, step: int) -> float:
        up = _ONECYCLE_PCT * self.total
        start, end = 1 / _ONECYCLE_DIV, 1 / (_ONECYCLE_DIV * _ONECYCLE_FINAL_DIV)
        if step < up:
            t, lo, hi = step / up, start, 1.0
        else:
            t, lo, hi = (step - up) / max(self.total - up, 1), 1.0, end
        return hi + (lo - hi) * 0.5 * (1 + math.cos(math.pi * min(t, 1)))

    def apply(self, step: int) -> float:
        """Set every group's lr for ``step``; returns the first group's lr (for logging)."""
        factor = self.factor(step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[0]["lr"]

    def end_epoch(self, val_loss: float) -> None:
        """Plateau bookkeeping: shrink the lr after ``plateau_patience`` epochs without gain."""
        if self.params.name != "plateau":
            return
        if val_loss < self.plateau_best:
            self.plateau_best, self.plateau_bad = val_loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad > self.params.plateau_patience:
                self.plateau_scale *= self.params.plateau_factor
                self.plateau_bad = 0

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.plateau_scale, "best": self.plateau_best, "bad": self.plateau_bad}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_scale, self.plateau_best = state["scale"], state["best"]
        self.plateau_bad = int(state["bad"])
