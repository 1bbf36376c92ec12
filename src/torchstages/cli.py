"""The ``torchstages`` command: demo data, prediction, params reference, model summary, report,
comparison of two runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torchstages.errors import UserError
from torchstages.kinds import TABLE_SUFFIXES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torchstages", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo-data", help="write the built-in digits as PNG files (or a demo table with --table)"
    )
    demo.add_argument("dir", nargs="?", default="data/raw", type=Path)
    demo.add_argument(
        "--table",
        choices=["breast_cancer", "wine", "iris", "diabetes"],
        help="write this scikit-learn table as DIR/<name>.csv instead of the digit images",
    )
    predict = sub.add_parser(
        "predict", help="classify image files, or predict every row of a table, with an ONNX model"
    )
    predict.add_argument("model", type=Path, help="e.g. models/export/model.onnx")
    predict.add_argument("images", nargs="+", type=Path, help="image files, or one .csv/.parquet")
    sub.add_parser("params", help="print every params.yaml key with its default as markdown")
    summary = sub.add_parser(
        "summary", help="build train.model for the dataset: parameter counts and output shape"
    )
    summary.add_argument("--params", type=Path, default=Path("params.yaml"))
    summary.add_argument(
        "--classes", type=int, help="number of classes (needed before build-dataset has run)"
    )
    report = sub.add_parser(
        "report", help="write the markdown report from metrics/test.json, the model and plots/"
    )
    report.add_argument("--out", type=Path, default=Path("reports/report.md"))
    report.add_argument(
        "--against",
        metavar="REV",
        help="append `dvc metrics diff --md` and `dvc params diff --md` against this git revision",
    )
    compare = sub.add_parser(
        "compare",
        help="is B really better than A? paired tests on both runs' per-sample predictions",
    )
    compare.add_argument("rev_a", nargs="?", default="HEAD", help="git revision (default HEAD)")
    compare.add_argument("rev_b", nargs="?", help="git revision (default: the workspace)")
    compare.add_argument(
        "--stage", choices=["test", "validate"], default="test",
        help="whose predictions: validate while tuning, test once at the end",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.command == "demo-data":
            if args.table:
                from torchstages.demo import write_demo_table

                print(f"demo-data: {write_demo_table(args.table, args.dir)}")
            else:
                from torchstages.demo import write_demo_digits

                written = write_demo_digits(args.dir)
                print(f"demo-data: {written} files written, 1797 digits in {args.dir}")
        elif args.command == "predict":
            from torchstages.deploy.predict import predict_files, predict_rows

            tables = [p for p in args.images if p.suffix.lower() in TABLE_SUFFIXES]
            if tables:
                if len(args.images) != 1:
                    raise UserError("predict: give one table file, or image files (not both)")
                import csv

                header, rows = predict_rows(args.model, tables[0])
                writer = csv.writer(sys.stdout, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(rows)
            else:
                for file, label, prob in predict_files(args.model, args.images):
                    print(f"{file}\t{label}\t{prob:.4f}")
        elif args.command == "params":
            from torchstages.params.reference import params_reference

            print(params_reference(), end="")
        elif args.command == "summary":
            from torchstages.models.summary import format_summary, summarize

            print(format_summary(summarize(args.params, classes=args.classes)), end="")
        elif args.command == "report":
            from torchstages.evaluation.report import write_report

            appendix = ""
            if args.against is not None:
                from torchstages.evaluation.compare import comparison_markdown

                appendix = "\n" + comparison_markdown(args.against)
            write_report(args.out, against=args.against, appendix=appendix)
            print(f"report: {args.out}")
        elif args.command == "compare":
            from torchstages.evaluation.compare import compare_revisions, comparison_table

            result, name_a, name_b = compare_revisions(args.rev_a, args.rev_b, args.stage)
            print(result.verdict(name_a, name_b, args.stage))
            print(comparison_table(result, name_a, name_b), end="")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
