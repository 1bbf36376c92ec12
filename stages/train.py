"""DVC stage `train`: data/processed -> models/ (weights, card, checkpoint), dvclive/train/, plots/train/."""

import logging

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.train import TrainParams

log = logging.getLogger("torchstages.stages")


def main() -> None:
    params = load_section(TrainParams, "train")
    from torchstages.evaluation.train_figures import draw_training_figures
    from torchstages.training.loop import TrainOutputs, train

    outputs = TrainOutputs(paths.WEIGHTS, paths.MODEL_CARD, paths.CHECKPOINT, paths.TRAIN_LIVE)
    card = train(params, paths.PROCESSED, outputs)
    best = card["best"]
    # pictures of what was trained and on what: curves, and the train images after augmentation
    draw_training_figures(
        paths.TRAIN_LIVE,
        paths.PROCESSED,
        params.augment,
        params.seed,
        paths.PLOTS / "train",
        best["epoch"],
    )
    log.info(
        "train: best epoch %d (%s %.4f) -> %s, %s",
        best["epoch"] + 1,
        best["monitor"],
        best["value"],
        paths.WEIGHTS,
        paths.MODEL_CARD,
    )


if __name__ == "__main__":
    run_stage(main)
