"""DVC stage `validate`: the saved best model on the val split -> metrics/validate.json + plots."""

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.evaluate import EvaluateParams


def main() -> None:
    params = load_section(EvaluateParams, "validate")
    from torchstages.evaluation.evaluate import EvalPaths, evaluate_split

    evaluate_split(
        "val",
        params,
        EvalPaths(
            processed=paths.PROCESSED,
            splits=paths.SPLITS,
            weights=paths.WEIGHTS,
            card=paths.MODEL_CARD,
            metrics=paths.METRICS / "validate.json",
            plots_dir=paths.PLOTS / "validate",
        ),
    )


if __name__ == "__main__":
    run_stage(main)
