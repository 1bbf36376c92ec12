"""The training loop: one pass over train, one evaluation of val, every epoch.

Best weights are kept by a validation metric, a checkpoint is written after every epoch (resume),
early stopping and EMA are optional, and under torchrun each process trains on its shard.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchstages.data.augment import MixedBatch
from torchstages.data.loader import BatchLoader
from torchstages.device import resolve_device
from torchstages.errors import UserError
from torchstages.evaluation.inference import predict_logits
from torchstages.io import six_decimals
from torchstages.models import describe_network, recorded_spec
from torchstages.models.saved import save_model
from torchstages.params.train import TrainParams
from torchstages.training import distributed
from torchstages.training.checkpoint import fingerprint, load_resumable, save_checkpoint
from torchstages.training.data import (
    TrainData,
    check_network,
    load_train_data,
    params_for_kind,
)
from torchstages.training.optim import build_optimizer
from torchstages.training.progress import EpochLog
from torchstages.training.runtime import Runtime, configure, maybe_compile
from torchstages.training.schedule import LRSchedule
from torchstages.training.tasks import Task
from torchstages.training.tracking import BestWeights, EarlyStopping
from torchstages.training.transfer import Transfer

__all__ = ["TrainOutputs", "check_before_launch", "check_global_batch", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutputs:
    weights: Path
    card: Path
    checkpoint: Path
    live_dir: Path


def epoch_seed(base: int, epoch: int, stream: str) -> int:
    """An independent seed per (run seed, epoch, stream): resuming at any epoch needs no RNG state."""
    digest = hashlib.sha256(f"{base}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def train(params: TrainParams, processed_dir: Path, outputs: TrainOutputs) -> dict[str, Any]:
    """Train the model in params on ``processed_dir``; write weights, card, checkpoint, dvclive logs."""
    device = resolve_device(params.device, "train.device")
    dist = distributed.setup(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    try:
        from torchstages.data.store import load_meta

        params = params_for_kind(params, load_meta(processed_dir))
        return _train(params, processed_dir, outputs, configure(params, device), dist)
    finally:
        distributed.teardown(dist)


def check_before_launch(params: TrainParams, processed_dir: Path) -> None:
    """When this process is about to start torchrun: build the network once here, so that an
    error every process would hit (weights not found, a model that does not fit the data, a
    batch the processes of all nodes do not divide) is one line, not one per process above
    torchrun's traceback."""
    if not distributed.will_relaunch(params.nproc_per_node):
        return
    # a missing device or too few GPUs: one line, not one per process
    check_processes_fit(params.nproc_per_node, resolve_device(params.device, "train.device"))
    # what train logs as it resolves the kind's settings, rank 0 logs again
    quiet = logging.getLogger("torchstages")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        params = check_network(processed_dir, params)
    finally:
        quiet.setLevel(level)
    # the world size is known now unless the nodes are an elastic range ("1:4")
    low, _, high = os.environ.get("PET_NNODES", "1").partition(":")
    if low.isdigit() and int(low) > 0 and high in ("", low):
        check_global_batch(params.batch_size, int(low) * params.nproc_per_node)


def check_processes_fit(nproc_per_node: int, device: torch.device) -> None:
    """One GPU per process: more processes than GPUs would each fail on a device ordinal that
    does not exist, and a Mac has one GPU, which gloo (DDP's only backend there) cannot reduce
    on. On the CPU more processes than cores run, but slower than fewer would."""
    if device.type == "mps" and nproc_per_node > 1:
        raise UserError(
            f"train.nproc_per_node: {nproc_per_node} processes on Apple's MPS: DDP cannot use the "
            "Mac's GPU (gloo reduces only CPU and CUDA tensors); set it to 1, or device: cpu"
        )
    if device.type == "cuda" and nproc_per_node > torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise UserError(
            f"train.nproc_per_node: {nproc_per_node} processes need one CUDA GPU each, and this "
            f"node has {gpus}: set it to at most {gpus}"
        )
    cores = os.cpu_count() or 1
    if device.type == "cpu" and nproc_per_node > cores:
        log.warning(
            "train.nproc_per_node: %d processes on %d CPU cores share them: slower than %d would be",
            nproc_per_node,
            cores,
            cores,
        )


def check_global_batch(batch_size: int, processes: int) -> None:
    """TrainParams checks train.batch_size against nproc_per_node; on several nodes the
    processes are more, and a batch they do not divide would silently train a smaller one."""
    if batch_size % processes:
        fits = max(processes, batch_size - batch_size % processes)
        raise UserError(
            f"train.batch_size: {batch_size} is the batch of all {processes} processes together, "
            f"so it must be a multiple of {processes} (e.g. {fits})"
        )


@dataclass
class _Run:
    """Everything one training run mutates; its state dict is the resumable checkpoint."""

    params: TrainParams
    runtime: Runtime
    dist: distributed.Dist
    data: TrainData
    model: nn.Module  # the bare network: what is evaluated, checkpointed and saved
    net: nn.Module  # what is trained: DDP- and/or compile-wrapped model
    ema: torch.optim.swa_utils.AveragedModel | None
    transfer: Transfer
    loader: BatchLoader
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    best: BestWeights
    early: EarlyStopping
    mix: Callable[[torch.Tensor], MixedBatch] | None = None  # mixup / cutmix, set per epoch

    @property
    def steps_per_epoch(self) -> int:
        return _optimizer_steps(self.loader, self.params.accumulate)

    @property
    def evaluated(self) -> nn.Module:
        """EMA weights when EMA is on: they are what gets validated and saved."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self, run_id: str, epochs_done: int, finished: bool) -> dict[str, Any]:
        scaler = self.runtime.scaler
        return {
            "fingerprint": run_id,
            "epochs_done": epochs_done,
            "finished": finished,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "best": self.best.state_dict(),
            "early_stopping": self.early.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore from a checkpoint; returns the number of epochs already done."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.best.load_state_dict(state["best"])
        self.early.load_state_dict(state["early_stopping"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.runtime.scaler is not None and state.get("scaler"):
            self.runtime.scaler.load_state_dict(state["scaler"])
        return int(state["epochs_done"])


def _build_run(
    params: TrainParams, data: TrainData, runtime: Runtime, dist: distributed.Dist
) -> _Run:
    check_global_batch(params.batch_size, dist.world_size)
    torch.manual_seed(params.seed)  # the same initial weights in every process
    model = data.build(params)
    transfer = Transfer(params.model.transfer, model)
    runtime = runtime.for_model(model)
    model.to(runtime.device, memory_format=runtime.memory_format)
    data.fit_before_training(model)
    net = model
    if dist.enabled:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        # a frozen backbone produces no gradients: DDP must not wait for them (it registers every
        # parameter here, before the freeze, so that an unfrozen backbone is averaged again)
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=transfer.freeze
        )
    ema = None
    if params.ema_decay:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=_ema_with_warmup(params.ema_decay), use_buffers=True
        )
    loader = BatchLoader(
        data.train_x if len(data.train_x) > 1 else data.train_x[0],
        data.train_y,
        params.batch_size // dist.world_size,
        data.normalize,
        shard=(dist.rank, dist.world_size),
        training=True,
    )
    optimizer = build_optimizer(params, model, transfer.backbone_ids, transfer.backbone_lr_scale)
    steps = _optimizer_steps(loader, params.accumulate)
    return _Run(
        params,
        runtime,
        dist,
        data,
        model,
        maybe_compile(net, params.compile),
        ema,
        transfer,
        loader,
        optimizer,
        LRSchedule(params.schedule, optimizer, params.epochs, steps),
        BestWeights(params.monitor),
        EarlyStopping(params.early_stopping, params.epochs),
    )


def _ema_with_warmup(decay: float):
    """EMA updates whose decay grows to ``decay`` as ``min(decay, (1 + n) / (10 + n))`` after n
    updates (TensorFlow's ExponentialMovingAverage with ``num_updates``; timm warms up too). A
    fixed 0.999 from the first step keeps 55% of the random initial weights after 600 steps,
    the whole of a 30-epoch run on the demo: the average saved was at chance."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates) -> None:
        n = float(updates)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # counters such as BatchNorm's batches seen
                a.copy_(c)

    return update


def _train(
    params: TrainParams,
    processed_dir: Path,
    outputs: TrainOutputs,
    runtime: Runtime,
    dist: distributed.Dist,
) -> dict[str, Any]:
    data = load_train_data(processed_dir, runtime.device, params, dist)
    run = _build_run(params, data, runtime, dist)
    run.transfer.at_epoch(0)  # so the log counts what the first epoch trains
    info = describe_network(data.meta, run.model)
    n_params = info["parameters"]
    if dist.is_main:
        log.info(
            "train: %s, %d parameters (%d trainable), input %s -> output %s; %s, "
            "%d process(es), %d threads",
            params.model.name,
            n_params,
            info["trainable"],
            tuple(info["input_shape"][1:]),
            tuple(info["output_shape"][1:]),
            run.runtime.describe(),
            dist.world_size,
            torch.get_num_threads(),
        )
    run_id = fingerprint(params.model_dump(mode="json", exclude_defaults=True), processed_dir)
    start = 0
    state = load_resumable(outputs.checkpoint, run_id, params.epochs)
    if state is not None:
        start = run.load_state_dict(state)
        if dist.is_main:
            log.info("train: resuming after epoch %d from %s", start, outputs.checkpoint)

    with EpochLog(outputs.live_dir, params.epochs, start, enabled=dist.is_main) as epoch_log:
        for epoch in range(start, params.epochs):
            stop = _run_epoch(run, epoch, epoch_log)
            if dist.is_main:
                finished = stop or epoch + 1 == params.epochs
                save_checkpoint(outputs.checkpoint, run.state_dict(run_id, epoch + 1, finished))
            if stop:
                break

    stopped = run.early.stopped_epoch
    if stopped is not None and dist.is_main:
        log.info(
            "train: stopped early after epoch %d of %d: %s did not improve for %d epochs "
            "(train.early_stopping.patience)",
            stopped + 1,
            params.epochs,
            params.early_stopping.monitor,
            params.early_stopping.patience,
        )
    card = {
        **data.card(params),
        "architecture": recorded_spec(params.model, data.kind),
        "best": {
            "epoch": run.best.epoch + 1,  # epochs count from 1 wherever a person reads them
            "monitor": params.monitor,
            "value": six_decimals(run.best.value),
        },
        "epochs_run": stopped + 1 if stopped is not None else params.epochs,
        "ema": bool(params.ema_decay),
        # how it was computed: bf16 and fp32 runs of the same params differ in the last bits
        "precision": run.runtime.precision_name(),
        "channels_last": run.runtime.channels_last,
        "parameters": n_params,
        "seed": params.seed,
    }
    if dist.is_main:
        run.model.load_state_dict(run.best.state)
        save_model(run.model, card, outputs.weights, outputs.card)
    return card


def _run_epoch(run: _Run, epoch: int, epoch_log: EpochLog) -> bool:
    """Train one epoch, validate, update best / early stopping, log. True: stop now."""
    params, dist = run.params, run.dist
    run.transfer.at_epoch(epoch)
    # fresh seeds per epoch and stream: resuming at any epoch replays exactly, no RNG state saved
    torch.manual_seed(epoch_seed(params.seed, epoch, f"dropout{dist.rank}"))
    run.loader.generator = torch.Generator().manual_seed(epoch_seed(params.seed, epoch, "order"))
    run.loader.augment = run.data.augmenter(
        params, epoch_seed(params.seed, epoch, f"aug{dist.rank}")
    )
    run.mix = run.data.mixer(params, epoch_seed(params.seed, epoch, f"mix{dist.rank}"))
    began = time.perf_counter()
    first_step = epoch * run.steps_per_epoch
    lr = run.schedule.apply(first_step)
    train_loss, train_score = _train_epoch(run, first_step, epoch_log)
    # after the last step each process's BatchNorm statistics saw its own batches: validate
    # rank 0's everywhere, the model that is saved
    dist.broadcast_buffers(run.evaluated)
    val_loss, val_score = _validate(run.evaluated, run.data, run.runtime.device, dist)
    if not math.isfinite(val_loss):
        best = f"; epoch {run.best.epoch + 1} was the best so far" if run.best.epoch >= 0 else ""
        raise UserError(
            f"train: val loss is {val_loss} after epoch {epoch + 1} of {params.epochs}: training "
            f"diverged (lower train.lr, now {params.lr:g}, or set train.grad_clip_norm){best}"
        )
    run.schedule.end_epoch(val_loss)
    # a regression has no accuracy: only val_loss can be monitored there (params_for_kind)
    improved = run.best.update(epoch, val_loss, val_score, run.evaluated)
    stop = run.early.update(epoch, {"val_loss": val_loss, "val_accuracy": val_score})
    metric = run.data.task.metric
    metrics = {
        "train/loss": train_loss,
        f"train/{metric}": train_score,
        "val/loss": val_loss,
        f"val/{metric}": val_score,
        "lr": lr,
    }
    stopped = run.early.stopped_epoch
    best = {
        "epoch": run.best.epoch + 1,
        params.monitor: six_decimals(run.best.value),
        "stopped_early_at_epoch": None if stopped is None else stopped + 1,
    }
    epoch_log.epoch_end(
        epoch, metrics, time.perf_counter() - began, len(run.data.train_y), improved, best
    )
    return stop


def _optimizer_steps(loader: BatchLoader, accumulate: int) -> int:
    """Optimizer steps per epoch: one per ``accumulate`` batches, a shorter last window included."""
    return -(-len(loader) // accumulate)


def _train_epoch(run: _Run, step: int, epoch_log: EpochLog) -> tuple[float, float]:
    """One pass; loss and accuracy are summed on the device and read once, not synced per batch."""
    params, runtime, net = run.params, run.runtime, run.net
    net.train()
    device = runtime.device
    loss_sum = torch.zeros((), device=device)
    score = torch.zeros((), device=device)  # float32 (MPS has no float64): exact counts < 2^24
    sizes = [end - start for start, end in run.loader.batch_bounds()]
    batches, acc = len(sizes), params.accumulate
    # samples in each accumulation window: each micro-batch loss is weighted by its share,
    # so a short or merged last window still gives a true mean
    window_sizes = [sum(sizes[w : w + acc]) for w in range(0, batches, acc)]
    run.optimizer.zero_grad(set_to_none=True)
    task = run.data.task
    for i, (x, y) in enumerate(epoch_log.batches(run.loader)):
        mixed = run.mix(x) if run.mix is not None else None
        if mixed is not None:
            x = mixed.x
        if isinstance(x, torch.Tensor):
            x = x.contiguous(memory_format=runtime.memory_format)  # the model's memory format
        boundary = (i + 1) % acc == 0 or i + 1 == batches
        # gradients are only all-reduced on the micro-batch that ends an accumulation step
        sync = net.no_sync() if run.dist.enabled and not boundary else contextlib.nullcontext()
        with sync:
            with runtime.autocast():
                # raw logits (or a standardised value): the loss applies (log-)softmax itself
                logits = net(*x) if isinstance(x, tuple) else net(x)
                if mixed is None:
                    loss = _loss(task, logits, y)
                else:  # the loss against both images' labels, in their shares
                    loss = mixed.loss(lambda out, target: _loss(task, out, target), logits, y)
            scaled = loss * (len(y) / window_sizes[i // acc])
            (runtime.scaler.scale(scaled) if runtime.scaler is not None else scaled).backward()
        if boundary:
            _optimizer_step(net, run.optimizer, runtime, params.grad_clip_norm)
            if run.ema is not None:
                run.ema.update_parameters(run.model)
            step += 1
            run.schedule.apply(step)
        loss_sum += loss.detach() * len(y)
        # an ensemble's (N, k, outputs): scored on the members' mean; a blended image on the
        # label it holds the larger share of
        score += task.score_sum(
            logits.detach().mean(1) if logits.dim() == 3 else logits.detach(),
            y if mixed is None else mixed.dominant(y),
        )
    seen = torch.tensor(float(sum(sizes)), device=device)
    totals = run.dist.all_sum(torch.stack([loss_sum.float(), score.float(), seen]))
    return (totals[0] / totals[2]).item(), task.metric_from_sum(totals[1], totals[2])


def _loss(task: Task, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task's loss; an ensemble's (N, k, outputs) is k samples per row, so that each member
    learns on its own loss (TabM), not on the average of their outputs."""
    if logits.dim() == 2:
        return task.loss(logits, y)
    members = logits.shape[1]
    return task.loss(logits.flatten(0, 1), y.repeat_interleave(members))


def _optimizer_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, runtime: Runtime, clip_norm: float
) -> None:
    if runtime.scaler is not None:
        if clip_norm:
            runtime.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        runtime.scaler.step(optimizer)
        runtime.scaler.update()
    else:
        if clip_norm:
            nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _validate(
    model: nn.Module, data: TrainData, device: torch.device, dist: distributed.Dist
) -> tuple[float, float]:
    """Validation loss and the task's metric on val (this process's slice, summed over processes).

    Classification: plain cross-entropy and accuracy; regression: the training loss on
    standardised targets and RMSE in the target's units.
    """
    inputs = data.val_x if len(data.val_x) > 1 else data.val_x[0]
    logits = predict_logits(model, inputs, data.normalize, 1024, device)
    y = data.val_y.cpu()
    sums = torch.cat([data.task.validation(logits, y), torch.tensor([float(len(y))])])
    sums = dist.all_sum(sums.to(device))
    return (sums[0] / sums[2]).item(), data.task.metric_from_sum(sums[1], sums[2])
