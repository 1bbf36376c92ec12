"""DVC stage `export`: models/ -> models/export/ (every format in export.formats, MODEL_CARD.md),
each verified on the test split; any data kind (its own part comes from the kind's module)."""

from torchstages import paths
from torchstages.deploy.export import export_and_verify
from torchstages.errors import run_stage
from torchstages.params.base import load_section
from torchstages.params.export import ExportParams


def main() -> None:
    export_and_verify(
        load_section(ExportParams, "export"),
        paths.WEIGHTS,
        paths.MODEL_CARD,
        paths.PROCESSED,
        paths.EXPORT_DIR,
        paths.METRICS / "export.json",
    )


if __name__ == "__main__":
    run_stage(main)
