"""DistributedDataParallel through torchrun: launching, rank helpers and metric reduction.

``dvc repro`` runs ``python stages/train.py``; with ``nproc_per_node > 1`` that process re-executes
itself under ``torchrun`` (never a home-made launcher). Multi-node runs take torchrun's usual
settings from the environment: ``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``,
``PET_MASTER_PORT`` or ``PET_RDZV_ENDPOINT`` / ``PET_RDZV_BACKEND``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "relaunch_under_torchrun", "setup", "teardown", "will_relaunch"]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes artifacts and logs."""
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over all processes (identity when not distributed)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every process rank 0's buffers of ``module`` (BatchNorm statistics, which DDP
        only syncs at the start of a training forward pass)."""
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)


def will_relaunch(nproc_per_node: int) -> bool:
    """Whether :func:`relaunch_under_torchrun` will start torchrun (not yet under it)."""
    return nproc_per_node > 1 and "LOCAL_RANK" not in os.environ


def relaunch_under_torchrun(nproc_per_node: int) -> None:
    """Replace this process by ``torchrun --nproc_per_node N <this script>`` unless already under it."""
    if not will_relaunch(nproc_per_node):
        return
    args = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc_per_node}"]
    if "PET_NNODES" not in os.environ and "PET_RDZV_ENDPOINT" not in os.environ:
        args.append("--standalone")  # one node: a free local rendezvous port
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [*args, *sys.argv])


def setup(device_type: str) -> Dist:
    """Join the process group when started by torchrun (NCCL on CUDA, gloo on CPU)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    info = Dist(
        int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    )
    _end_with_the_launcher()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if not info.is_main:
        # every rank resolves the same settings and fits the same linear member: one set of
        # progress lines is enough; warnings and errors still come from every rank
        logging.getLogger("torchstages").setLevel(logging.WARNING)
    return info


def _end_with_the_launcher(poll_seconds: float = 0.2) -> None:
    """End this worker as soon as the torchrun that started it is gone. torchrun starts each
    worker in a session of its own, so a SIGKILL of ``dvc repro``'s process group (a kill -9, an
    out-of-memory kill of the group, a CI timeout) ends DVC and torchrun but not the workers:
    they would train on and write outputs behind the next ``dvc repro``. (Ctrl-C reaches them
    through torchrun, which forwards it.)"""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_seconds)
        os._exit(1)  # no cleanup to run: every output is written to a temp file and renamed

    threading.Thread(target=watch, name="end-with-torchrun", daemon=True).start()


def teardown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
