"""DVC stage `train`: data/processed -> models/ (weights, card, checkpoint) + dvclive/train/.

With `train.nproc_per_node > 1` this script re-executes itself under torchrun (DDP).
"""

import logging
import os

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.train import TrainParams

log = logging.getLogger("torchstages.stages")


def main() -> None:
    params = load_section(TrainParams, "train")
    from torchstages.training.distributed import relaunch_under_torchrun
    from torchstages.training.loop import TrainOutputs, check_before_launch, train

    check_before_launch(params, paths.PROCESSED)
    relaunch_under_torchrun(params.nproc_per_node)
    outputs = TrainOutputs(paths.WEIGHTS, paths.MODEL_CARD, paths.CHECKPOINT, paths.TRAIN_LIVE)
    card = train(params, paths.PROCESSED, outputs)
    if os.environ.get("RANK", "0") == "0":
        best = card["best"]
        log.info(
            "train: best epoch %d (%s %.4f) -> %s, %s",
            best["epoch"],
            best["monitor"],
            best["value"],
            paths.WEIGHTS,
            paths.MODEL_CARD,
        )


if __name__ == "__main__":
    run_stage(main)
