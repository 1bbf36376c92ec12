"""The training loop: one pass over train, one evaluation of val, every epoch; best weights kept."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchstages.data.augment import random_affine
from torchstages.data.images import Preprocessing
from torchstages.data.loader import BatchLoader, Normalizer, to_device_tensor
from torchstages.data.store import load_meta, load_split
from torchstages.device import resolve_device, seed_everything
from torchstages.evaluation.inference import predict_logits
from torchstages.models import build_model, check_output_shape
from torchstages.models.saved import save_model
from torchstages.params.train import TrainParams
from torchstages.training.checkpoint import save_checkpoint
from torchstages.training.optim import build_optimizer, build_scheduler

__all__ = ["TrainOutputs", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutputs:
    weights: Path
    card: Path
    checkpoint: Path
    live_dir: Path


@dataclass
class _Best:
    monitor: str
    value: float | None = None
    key: tuple[float, ...] | None = None
    epoch: int = -1
    state: dict[str, torch.Tensor] = field(default_factory=dict)

    def update(self, epoch: int, val_loss: float, val_accuracy: float, model: nn.Module) -> bool:
        """Keep the weights if this epoch is better; accuracy ties (common on small val sets)
        are broken by the lower loss, so a lucky early epoch does not win over a converged one."""
        key = (val_loss,) if self.monitor == "val_loss" else (-val_accuracy, val_loss)
        if self.key is None or key < self.key:
            self.key, self.epoch = key, epoch
            self.value = val_loss if self.monitor == "val_loss" else val_accuracy
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            return True
        return False


def train(params: TrainParams, processed_dir: Path, outputs: TrainOutputs) -> dict[str, Any]:
    """Train the model in params on ``processed_dir``; write weights, card, checkpoint, dvclive logs."""
    device = resolve_device(params.device)
    if params.threads:
        torch.set_num_threads(params.threads)
    seed_everything(params.seed)
    meta = load_meta(processed_dir)
    prep = Preprocessing.from_dict(meta["preprocessing"])
    classes = meta["classes"]
    model = build_model(params.model, prep.channels, prep.image_size, len(classes))
    check_output_shape(model, prep.channels, prep.image_size, len(classes))
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "train: %s on %s (%d threads), %d parameters",
        params.model.name,
        device,
        torch.get_num_threads(),
        n_params,
    )

    normalize = Normalizer(prep.mean, prep.std, device)
    train_x, train_y = (to_device_tensor(a, device) for a in load_split(processed_dir, "train"))
    val_x, val_y = (to_device_tensor(a, device) for a in load_split(processed_dir, "val"))
    order_gen = torch.Generator().manual_seed(params.seed)
    aug_gen = torch.Generator().manual_seed(params.seed + 1)
    loader = BatchLoader(
        train_x,
        train_y,
        params.batch_size,
        normalize,
        generator=order_gen,
        augment=lambda x: random_affine(x, params.augment, aug_gen),
    )
    optimizer = build_optimizer(params, model)
    scheduler = build_scheduler(params, optimizer, len(loader))
    best = _Best(params.monitor)

    from dvclive import Live

    with Live(str(outputs.live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        for epoch in range(params.epochs):
            start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train_loss, train_acc = _train_epoch(model, loader, optimizer, scheduler, params)
            val_logits = predict_logits(model, val_x, normalize, 1024, device)
            val_loss = F.cross_entropy(val_logits, val_y.cpu()).item()
            val_acc = (val_logits.argmax(1) == val_y.cpu()).float().mean().item()
            metrics = {
                "train/loss": train_loss,
                "train/accuracy": train_acc,
                "val/loss": val_loss,
                "val/accuracy": val_acc,
                "lr": lr,
            }
            for name, value in metrics.items():
                live.log_metric(name, round(value, 6))
            improved = best.update(epoch, val_loss, val_acc, model)
            log.info(
                "epoch %d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  %.1fs%s",
                epoch + 1,
                params.epochs,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                time.perf_counter() - start,
                "  *" if improved else "",
            )
            live.next_step()
        live.summary["best"] = {"epoch": best.epoch, params.monitor: round(best.value, 6)}

    save_checkpoint(
        outputs.checkpoint,
        model,
        optimizer,
        scheduler,
        params.epochs,
        best.epoch,
        best.value,
        {"order": order_gen, "augment": aug_gen},
    )
    model.load_state_dict(best.state)
    card = {
        "architecture": params.model.model_dump(mode="json"),
        "classes": classes,
        "preprocessing": prep.to_dict(),
        "best": {"epoch": best.epoch, "monitor": params.monitor, "value": round(best.value, 6)},
        "parameters": n_params,
    }
    save_model(model, card, outputs.weights, outputs.card)
    return card


def _train_epoch(
    model: nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    params: TrainParams,
) -> tuple[float, float]:
    """One pass; loss and accuracy are summed on the device and read once, not synced per batch."""
    model.train()
    device = loader.images.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in loader:
        logits = model(x)  # raw logits: cross_entropy applies log-softmax itself
        loss = F.cross_entropy(logits, y, label_smoothing=params.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    n = len(loader.images)
    return loss_sum.item() / n, correct.item() / n
