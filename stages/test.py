"""DVC stage `test`: one final evaluation on the test split -> metrics/test.json, plots, report."""

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.evaluate import EvaluateParams


def main() -> None:
    params = load_section(EvaluateParams, "test")
    from torchstages.evaluation.evaluate import EvalPaths, evaluate_split

    evaluate_split("test", params, EvalPaths.for_stage("test", report=paths.REPORTS / "report.md"))


if __name__ == "__main__":
    run_stage(main)
