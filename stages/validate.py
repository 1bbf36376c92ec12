"""DVC stage `validate`: the best model on val -> metrics/validate.json, plots/validate/, and the
training pictures plots/train/ (curves, augmented images)."""

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.evaluate import EvaluateParams


def main() -> None:
    params = load_section(EvaluateParams, "validate")
    from torchstages.evaluation.evaluate import EvalPaths, evaluate_split
    from torchstages.evaluation.train_figures import draw_from_card

    evaluate_split("val", params, EvalPaths.for_stage("validate"))
    # the training curves and what the model saw (augmented train images)
    draw_from_card(paths.MODEL_CARD, paths.TRAIN_LIVE, paths.PROCESSED, paths.PLOTS / "train")


if __name__ == "__main__":
    run_stage(main)
