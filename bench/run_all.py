"""`make bench`: every speed benchmark, results in bench/results/*.json and one table.

    python bench/run_all.py [--runs 3] [--mnist-epochs 1] [--small-epochs 3] [--only train ...]

Needs ../shared/datasets/mnist-png.tar.gz for the MNIST parts (skipped with a note otherwise).
Every arm uses params.yaml's defaults; only what the comparison needs is set (image size and
colour of build-dataset for the 32x32 RGB and 28x28 MNIST cases, the epoch count, equal in all arms).
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

import build_speed
import dvc_noop
import stage_times
import train_speed
from common import load_average, machine, save, unpack_mnist

PARTS = ("train", "build", "noop", "stages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument(
        "--mnist-runs", type=int, default=None, help="repeats of MNIST training (0: skip it)"
    )
    parser.add_argument("--mnist-epochs", type=int, default=1)
    parser.add_argument("--small-epochs", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    args = parser.parse_args()
    info = {**machine(), "date": datetime.date.today().isoformat(), "load_start": load_average()}
    results: dict = {"machine": info}
    with tempfile.TemporaryDirectory(prefix="torchstages-bench-") as name:
        tmp = Path(name)
        mnist = unpack_mnist(tmp) if {"train", "build", "noop"} & set(args.only) else None
        if "train" in args.only:
            small = train_speed.prepare(tmp / "rgb32", None, {"image_size": 32, "color": "rgb"})
            results["train_rgb32"] = train_speed.run(small, args.small_epochs, args.runs)
            save("train_rgb32", results["train_rgb32"])
            mnist_runs = args.runs if args.mnist_runs is None else args.mnist_runs
            if mnist_runs:  # --mnist-runs 0: the 32x32 case only
                big = train_speed.prepare(tmp / "mnist28", mnist, {"image_size": 28})
                results["train_mnist"] = train_speed.run(big, args.mnist_epochs, mnist_runs)
                save("train_mnist", results["train_mnist"])
        if "build" in args.only:
            results["build"] = build_speed.run(tmp, mnist, args.runs)
            save("build", results["build"])
        if "noop" in args.only:
            results["noop"] = dvc_noop.run(tmp, mnist, args.runs)
            save("noop", results["noop"])
        if "stages" in args.only:
            results["stages"] = stage_times.run(tmp)
            save("stages", results["stages"])
    info["load_end"] = load_average()
    save("machine", info)
    print_table(results)


def print_table(r: dict) -> None:
    m = r["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['cores']} cores, gpu: {m['gpu'] or 'none'}, torch "
        f"{m['torch']} ({m['torch_threads']} threads), {m['date']}, load {m['load_start']:.1f}"
        f" -> {m['load_end']:.1f}"
    )
    rows = [("benchmark", "ours", "reference", "ratio", "target")]
    for key, label in (
        ("train_rgb32", "train 32x32 RGB (demo)"),
        ("train_mnist", "train MNIST 28x28"),
    ):
        if key in r:
            t = r[key]
            s = t["samples_per_s"]
            rows.append(
                (
                    f"{label}, samples/s vs baseline",
                    f"{s['ours']:.0f}",
                    f"{s['baseline']:.0f}",
                    f"{t['vs_baseline']:.2f}x",
                    ">= 1.5x",
                )
            )
            rows.append(
                (
                    f"{label}, samples/s vs limit",
                    f"{s['ours']:.0f}",
                    f"{s['limit']:.0f}",
                    f"{t['of_limit']:.0%}",
                    ">= 90%",
                )
            )
            rows.append(
                (
                    f"{label}, ours in fp32 NCHW vs baseline",
                    f"{s['ours_fp32']:.0f}",
                    f"{s['baseline']:.0f}",
                    f"{t['fp32_vs_baseline']:.2f}x",
                    "(breakdown)",
                )
            )
            if "ours_peak_rss_mib" in t:
                rows.append(
                    (f"{label}, ours peak RSS MiB", f"{t['ours_peak_rss_mib']:.0f}", "", "", "")
                )
    if "build" in r:
        for key, label, target in (
            ("mnist_png", "build MNIST PNG", ">= 2x"),
            ("large_jpeg", "build large JPEG", ">= 3x"),
        ):
            b = r["build"][key]
            rows.append(
                (
                    f"{label} ({b['files']} files), files/s vs PIL loop",
                    f"{b['ours_files_per_s']:.0f}",
                    f"{b['pil_loop_files_per_s']:.0f}",
                    f"{b['speedup']:.2f}x",
                    target,
                )
            )
            rows.append(
                (
                    f"{label}, peak RSS MiB (decoded arrays)",
                    f"{b['ours_peak_rss_mib']:.0f}",
                    f"{b['decoded_mib']:.0f}",
                    "",
                    "< 2x data",
                )
            )
    if "noop" in r:
        n = r["noop"]
        rows.append(
            (
                f"no-op dvc repro ({n['files']} files), s vs DVC floor",
                f"{n['noop_s']:.2f}",
                f"{n['floor_noop_s']:.2f}",
                f"{n['ratio']:.2f}x",
                "<= 1.3x",
            )
        )
        rows.append(
            (
                "DVC floor with data/raw untracked (no data/raw.dvc), s",
                f"{n['untracked_floor_noop_s']:.2f}",
                "",
                "",
                "report",
            )
        )
        rows.append(("first run: DVC hash of data/raw, s", f"{n['first_hash_s']:.1f}", "", "", ""))
    for stage, s in r.get("stages", {}).items():
        rows.append(
            (
                f"stage {stage} (demo): wall s / import s / peak MiB",
                f"{s['wall_s']:.2f}",
                f"{s['import_s']:.2f}",
                f"{s['peak_rss_mib']:.0f}",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
