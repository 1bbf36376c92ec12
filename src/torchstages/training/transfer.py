"""Transfer-learning schedule: a frozen backbone, unfrozen after N epochs at a lower lr."""

from __future__ import annotations

import logging

from torch import nn

from torchstages.models import split_head_backbone

__all__ = ["Transfer"]

log = logging.getLogger(__name__)


class Transfer:
    """Reads ``freeze`` / ``unfreeze_after`` / ``backbone_lr_scale`` from the model spec."""

    def __init__(self, spec: object, model: nn.Module) -> None:
        self.freeze = getattr(spec, "freeze", "none") == "backbone"
        self.unfreeze_after = getattr(spec, "unfreeze_after", 0)
        self.backbone_lr_scale = getattr(spec, "backbone_lr_scale", 1.0)
        self.backbone = split_head_backbone(model)[1] if self.freeze else []
        self.backbone_ids = {id(p) for p in self.backbone}

    def at_epoch(self, epoch: int) -> None:
        """Freeze the backbone until ``unfreeze_after`` epochs have passed (0: frozen throughout)."""
        if not self.freeze:
            return
        frozen = not self.unfreeze_after or epoch < self.unfreeze_after
        for p in self.backbone:
            p.requires_grad_(not frozen)
        if self.unfreeze_after and epoch == self.unfreeze_after:
            log.info(
                "train: epoch %d: backbone unfrozen (lr × %g)", epoch + 1, self.backbone_lr_scale
            )
