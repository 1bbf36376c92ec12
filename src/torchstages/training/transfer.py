"""Transfer-learning schedule: a frozen backbone, unfrozen after N epochs at a lower lr."""

from __future__ import annotations

import logging

from torch import nn

from torchstages.models import freeze_backbone, split_head_backbone
from torchstages.models.transfer import TransferSpec

__all__ = ["Transfer"]

log = logging.getLogger(__name__)


class Transfer:
    """Applies ``train.model.transfer``: ``freeze``, ``unfreeze_after``, ``backbone_lr_scale``."""

    def __init__(self, spec: TransferSpec, model: nn.Module) -> None:
        self.model = model
        self.freeze = spec.freeze == "backbone"
        self.unfreeze_after = spec.unfreeze_after
        # the backbone group gets its lower lr only once it trains; frozen it has no gradients
        self.backbone_lr_scale = spec.backbone_lr_scale if self.freeze else 1.0
        self.backbone_ids = {id(p) for p in split_head_backbone(model)[1]} if self.freeze else set()

    def at_epoch(self, epoch: int) -> None:
        """Freeze the backbone until ``unfreeze_after`` epochs have passed (0: frozen throughout)."""
        if not self.freeze:
            return
        frozen = not self.unfreeze_after or epoch < self.unfreeze_after
        freeze_backbone(self.model, frozen)
        if self.unfreeze_after and epoch == self.unfreeze_after:
            log.info(
                "train: epoch %d: backbone unfrozen (lr × %g)", epoch + 1, self.backbone_lr_scale
            )
