"""DVC stage `split`: data/raw -> data/splits/{train,val,test}.csv + summary.json.

data/raw holds class folders of images, or one table file read as a table or a time series
(split.kind says which, or auto).
"""

from torchstages import paths
from torchstages.errors import run_stage
from torchstages.kinds import detect_kind
from torchstages.params.base import load_section
from torchstages.params.split import SplitParams


def main() -> None:
    params = load_section(SplitParams, "split")
    kind = detect_kind(paths.RAW, params.kind)
    if kind == "table":
        from torchstages.tables.split import split_table

        split_table(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    if kind == "series":
        from torchstages.series.split import split_series

        split_series(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    if kind == "text":
        from torchstages.text.split import split_texts

        split_texts(paths.RAW, paths.SPLITS, params)  # logs what it found
        return
    from torchstages.data.given_splits import KeepGiven
    from torchstages.data.near_duplicates import NearDuplicates
    from torchstages.data.split import split_dataset

    split_dataset(
        paths.RAW,
        paths.SPLITS,
        {"train": params.train, "val": params.val, "test": params.test},
        params.seed,
        None
        if params.near_duplicates == "off"
        else NearDuplicates(params.near_duplicates, params.near_duplicate_threshold),
        KeepGiven() if params.given_splits == "keep" else None,
    )  # logs what it found


if __name__ == "__main__":
    run_stage(main)
