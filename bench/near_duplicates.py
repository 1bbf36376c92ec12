"""Near-duplicate check of the split stage on MNIST's 60,000 training PNGs: hashing, the band
index against all-pairs comparison, and what the check finds at a few thresholds.

    python bench/near_duplicates.py [--mnist DIR] [--brute 10000]

``--mnist`` reuses an unpacked mnist/train folder (else ../shared/datasets is unpacked to a
temp folder). All-pairs comparison is timed on the first ``--brute`` hashes and extrapolated
quadratically to all of them (it would take minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common import load_average, unpack_mnist
from torchstages.data.discover import discover_images
from torchstages.data.near_duplicates import group_ids, near_pairs, phash_files


def brute_force_seconds(bits: np.ndarray, threshold: int) -> tuple[float, int]:
    """Seconds and pair count of comparing every pair of ``bits`` (blocks of rows, popcount)."""
    words = np.packbits(bits, axis=1).view(">u8")
    start, found = time.perf_counter(), 0
    for i in range(0, len(words), 256):
        block = np.bitwise_count(words[i : i + 256, None, :] ^ words[None, :, :]).sum(2)
        rows, cols = np.nonzero(block <= threshold)
        found += int((cols > rows + i).sum())
    return time.perf_counter() - start, found


def run(train_dir: Path, brute: int) -> dict:
    rows = discover_images(train_dir)
    paths = [train_dir / r.path for r in rows]
    start = time.perf_counter()
    bits, decoded = phash_files(paths)
    assert decoded.all()
    hashing = time.perf_counter() - start
    out: dict = {"files": len(paths), "hash_s": hashing, "thresholds": {}}
    for threshold in (8, 16, 24):
        start = time.perf_counter()
        pairs = near_pairs(bits, threshold)
        index_s = time.perf_counter() - start
        sizes = np.unique(group_ids(len(bits), pairs), return_counts=True)[1]
        out["thresholds"][threshold] = {
            "index_s": index_s,
            "pairs": len(pairs),
            "groups": int((sizes > 1).sum()),
            "files_in_groups": int(sizes[sizes > 1].sum()),
            "largest_group": int(sizes.max()),
        }
    subset_s, subset_pairs = brute_force_seconds(bits[:brute], 16)
    indexed = len(near_pairs(bits[:brute], 16))
    out["all_pairs"] = {
        "subset": brute,
        "subset_s": subset_s,
        "subset_pairs_match_index": subset_pairs == indexed,
        "extrapolated_full_s": subset_s * (len(bits) / brute) ** 2,
    }
    out["load_average"] = load_average()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", type=Path, help="an unpacked mnist/train folder")
    parser.add_argument("--brute", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = args.mnist or unpack_mnist(Path(tmp))
        print(json.dumps(run(train_dir, args.brute), indent=2))


if __name__ == "__main__":
    main()
