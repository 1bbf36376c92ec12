"""The built-in demo dataset: scikit-learn's 1797 real 8x8 handwritten digits as PNG files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from torchstages.errors import UserError
from torchstages.io import write_bytes
from torchstages.kinds import table_files, visible_entries

__all__ = ["write_demo_digits", "write_demo_table"]


def write_demo_digits(out_dir: Path) -> int:
    """Write ``out_dir/<digit>/<index>.png``; files already holding the same bytes are left alone."""
    from sklearn.datasets import load_digits

    tables = [p.name for p in table_files(out_dir)]
    if tables:
        raise UserError(
            f"{out_dir}: holds a table ({tables[0]}); the digits need a folder of their own "
            f"(move it away first, e.g. mv {out_dir} {out_dir}.table)"
        )
    digits = load_digits()
    # 0..16 ink levels -> 0..255, white ink on black like MNIST
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    written = 0
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        target = out_dir / str(label) / f"{index:04d}.png"
        if not target.exists() or target.read_bytes() != buffer.getvalue():
            write_bytes(target, buffer.getvalue())
            written += 1
    return written


def write_demo_table(name: str, out_dir: Path) -> Path:
    """Write one of scikit-learn's bundled tables as ``out_dir/<name>.csv`` (target column ``target``;
    class names for the classification tables, the raw disease-progression score for diabetes)."""
    from sklearn import datasets

    target = out_dir / f"{name}.csv"
    others = sorted(p.name for p in visible_entries(out_dir) if p != target)
    if others:
        raise UserError(
            f"{out_dir}: already holds {', '.join(others[:3])}; the table must be alone there "
            f"(move the rest away first, e.g. mv {out_dir} {out_dir}.digits)"
        )
    loaded = getattr(datasets, f"load_{name}")(
        as_frame=True, **({"scaled": False} if name == "diabetes" else {})
    )
    frame = loaded.frame
    if name != "diabetes":
        frame["target"] = [str(loaded.target_names[t]) for t in frame["target"]]
    write_bytes(target, frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return target
