"""DVC stage `export`: models/ -> models/export/ (every format in export.formats, MODEL_CARD.md),
each verified on the test split."""

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.kinds import kind_of
from torchstages.models.saved import load_card
from torchstages.params.base import load_section
from torchstages.params.export import ExportParams


def main() -> None:
    params = load_section(ExportParams, "export")
    kind = kind_of(load_card(paths.MODEL_CARD))
    if kind == "table":
        from torchstages.tables.export import export_and_verify_table as export_and_verify
    elif kind == "series":
        from torchstages.series.export import export_and_verify_series as export_and_verify
    elif kind == "text":
        from torchstages.text.export import export_and_verify_text as export_and_verify
    else:
        from torchstages.deploy.export import export_and_verify

    export_and_verify(
        params,
        paths.WEIGHTS,
        paths.MODEL_CARD,
        paths.PROCESSED,
        paths.EXPORT_DIR,
        paths.METRICS / "export.json",
    )


if __name__ == "__main__":
    run_stage(main)
