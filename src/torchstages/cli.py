"""The torchstages command: demo data, prediction, serving, params reference, model summary,
report, comparison of two runs, a check of a DVC remote."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from torchstages.errors import UserError
from torchstages.kinds import TABLE_SUFFIXES

if TYPE_CHECKING:
    from torchstages.deploy.runtime import Runner


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
    _add_predict(sub)
    _add_evaluate(sub)
    _add_serve(sub)
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
    remote = sub.add_parser(
        "remote-check",
        help="ask a DVC remote for every file the workspace's data and outputs need (dvc push "
        "trusts an index that can be stale); --repair uploads what it lacks",
    )
    remote.add_argument("-r", "--remote", help="remote name (default: DVC's default remote)")
    remote.add_argument("--repair", action="store_true", help="upload missing objects")
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
            return _predict(args)
        elif args.command == "evaluate":
            return _evaluate(args)
        elif args.command == "serve":
            from torchstages.deploy.serve import Limits, serve

            limits = Limits(
                max_request_bytes=args.max_request_bytes,
                max_images=args.max_images,
                max_pixels=args.max_pixels,
                top_k=args.top_k,
                max_rows=args.max_rows,
                max_text_chars=args.max_text_chars,
            )
            serve(args.model, args.host, args.port, limits, args.threads)
        elif args.command == "params":
            from torchstages.params.reference import params_reference

            print(params_reference(), end="")
        elif args.command == "summary":
            from torchstages.models.summary import format_summary, summarize

            print(format_summary(summarize(args.params, classes=args.classes)), end="")
        elif args.command == "report":
            from torchstages.evaluation.report import write_report

            if args.out.is_dir():
                raise UserError(f"--out {args.out}: is a folder; give a file name, e.g. report.md")
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
        elif args.command == "remote-check":
            from torchstages.remote import check_remote

            check = check_remote(Path.cwd(), args.remote, args.repair)
            print(check.summary())
            return 1 if check.missing and not check.uploaded else 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count_or_auto(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (one per core) or more, got {value}")
    return value


def _add_model(p: argparse.ArgumentParser) -> None:
    from torchstages.paths import ONNX_MODEL

    p.add_argument(
        "--model",
        type=Path,
        default=ONNX_MODEL,
        help=f"model.onnx, .int8.onnx or .pt2 (default {ONNX_MODEL})",
    )


def _add_image_decoding(p: argparse.ArgumentParser) -> None:
    """How predict and evaluate read image files: the same flags, the same defaults."""
    from torchstages.data.images import MAX_PIXELS

    p.add_argument(
        "--max-pixels",
        type=_positive,
        default=MAX_PIXELS,
        help=f"an image model: pixels decoded per image (default {MAX_PIXELS:,}, as "
        "build_dataset.max_pixels; a JPEG decodes at up to 1/8 scale first)",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=64, help="images per model call (default 64)"
    )
    p.add_argument(
        "--workers", type=_count_or_auto, default=0, help="decode threads (0: one per core)"
    )


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict with an exported model: classes, values or forecasts (ONNX Runtime; no "
        "torch on that path)",
        description="Exit status: 0 all inputs predicted, 1 some could not be read (error rows), "
        "2 usage error.",
    )
    p.add_argument(
        "inputs",
        nargs="*",
        help="[model.onnx] then files, folders (recursive), .csv/.txt lists of paths; - = stdin; "
        "for a table model: one .csv/.tsv/.parquet file of rows; for a text model: .txt files "
        "(one text a line) or table files (--column); for a time series model: one table file "
        "of history, forecast from its end",
    )
    p.add_argument(
        "--text",
        action="append",
        default=[],
        help="a text model: classify this string (repeat for more)",
    )
    p.add_argument(
        "--column", help="a text model: the table files' text column (default: the training one)"
    )
    _add_model(p)
    p.add_argument(
        "--top-k", type=_positive, default=1, help="classes per input of a classifier (default 1)"
    )
    p.add_argument(
        "--format",
        choices=["table", "csv", "jsonl"],
        help="images: table on a terminal, else jsonl (csv for an --output ending in .csv); "
        "table, text and series models: csv (jsonl for an --output ending in .jsonl or .json)",
    )
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a table model, or a text model reading table files: copy this column of the rows "
        "into the output, beside each prediction (an id to join on; repeat for more)",
    )
    p.add_argument("--output", type=Path, help="write here (atomically) instead of stdout")
    _add_image_decoding(p)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from torchstages.paths import SPLITS

    p = sub.add_parser(
        "evaluate",
        help="score an exported image classifier on a labelled folder outside the splits (one "
        "folder per class): the test stage's metrics with 95%% intervals",
        description="Exit status: 0 every file scored, 1 some could not be decoded (named, and "
        "left out of the metrics), 2 none could be, or a usage error.",
    )
    p.add_argument("inputs", nargs="+", help="[model.onnx] then the folder of class folders")
    _add_model(p)
    p.add_argument("--output", type=Path, help="write the metrics here as JSON (atomically)")
    p.add_argument(
        "--predictions",
        type=Path,
        help="write a CSV row per file here: path, class, predicted, probability, correct, error",
    )
    p.add_argument(
        "--plots",
        type=Path,
        help="draw confusion.png and wrong.png (the most confidently wrong images) in this folder",
    )
    p.add_argument(
        "--resamples",
        type=_count_or_auto,
        default=1000,
        help="bootstrap resamples of the 95%% intervals (0: none; default 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="of the bootstrap resamples")
    p.add_argument(
        "--splits",
        type=Path,
        default=SPLITS,
        help=f"warn about files with the same bytes as this pipeline's split files (default "
        f"{SPLITS}; skipped when missing)",
    )
    _add_image_decoding(p)


def _quiet_on_closed_pipe() -> None:
    if hasattr(signal, "SIGPIPE"):
        # `predict ... | head`: stop quietly when the reader goes away, as Unix tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _evaluate(args: argparse.Namespace) -> int:
    """0: every file scored; 1: some could not be decoded; a UserError (2) above."""
    from torchstages.deploy.labelled import (
        draw_pictures,
        labelled_files,
        metrics_of,
        score,
        seen_in_splits,
        summary_lines,
        write_predictions,
    )
    from torchstages.deploy.readers import reader_for
    from torchstages.deploy.runtime import load_runner
    from torchstages.io import write_json
    from torchstages.wording import counted

    inputs = list(args.inputs)
    if len(inputs) == 2 and Path(inputs[0]).suffix in (".onnx", ".pt2"):
        args.model = Path(inputs.pop(0))
    if len(inputs) != 1:
        raise UserError("evaluate: give one folder of class folders (the model first, or --model)")
    folder = Path(inputs[0])
    _quiet_on_closed_pipe()
    for path, flag in ((args.output, "--output"), (args.predictions, "--predictions")):
        if path is not None:
            _check_writable(path, flag)
    if args.plots is not None:
        _check_writable(args.plots / "confusion.png", "--plots")
    runner = load_runner(args.model)
    kind = runner.metadata["kind"]
    if kind != "images":
        raise UserError(
            f"{args.model}: evaluate reads folders of images, one per class; this is a {kind} "
            "model (its test stage scores it; predict writes its answers for new rows)"
        )
    reader = reader_for(runner.metadata, args.max_pixels)
    left_out: list[str] = []
    sources, labels = labelled_files(folder, runner.classes, reader, left_out)
    _say_left_out("evaluate", left_out)
    folders = len(set(labels.tolist()))
    print(
        f"evaluate: {counted(len(sources), 'image')} in {counted(folders, 'class folder')} of "
        f"{folder}, model {args.model}"
    )
    seen = seen_in_splits(sources, args.splits)
    learned = {split: n for split, n in seen.items() if n and split in ("train", "val")}
    if learned:  # test files are held out: scoring them is what the test stage does
        counts = ", ".join(f"{n} {split}" for split, n in learned.items())
        print(
            f"evaluate: warning: {sum(learned.values())} of these files have the same bytes as "
            f"files in {args.splits} ({counts}): scores on files the model trained on, or was "
            "selected on, are optimistic",
            file=sys.stderr,
        )
    scored = score(runner, reader, sources, labels, args.batch_size, args.workers)
    for path, reason in scored.failed[:10]:
        print(f"{path}: {reason}", file=sys.stderr)
    if scored.failed:
        print(
            f"evaluate: {len(scored.failed)} of {counted(len(sources), 'file')} could not be "
            "decoded, left out of the metrics",
            file=sys.stderr,
        )
    metrics = metrics_of(scored, runner.classes, args.resamples, args.seed)
    # what was scored, so that the file can be traced back to its inputs
    metrics.update(
        folder=str(folder), model=str(args.model), not_images=len(left_out), same_bytes_as=seen
    )
    for line in summary_lines(metrics, runner.classes):
        print(line)
    if args.output is not None:
        write_json(args.output, metrics)
    if args.predictions is not None:
        write_predictions(args.predictions, scored, runner.classes)
    if args.plots is not None:
        draw_pictures(args.plots, scored, runner.classes, reader, folder.resolve().name)
    return 1 if scored.failed else 0


def _say_left_out(command: str, left_out: list[str]) -> None:
    """As the split stage names the files it skips: how many were no images, and the first."""
    if not left_out:
        return
    from torchstages.wording import counted

    one = len(left_out) == 1
    print(
        f"{command}: {counted(len(left_out), 'file')} in the folders given "
        f"{'is not an image' if one else 'are not images'}, left out "
        f"({left_out[0]}{'' if one else ', …'})",
        file=sys.stderr,
    )


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from torchstages.deploy.readers import DEFAULT_MAX_PIXELS

    p = sub.add_parser("serve", help="HTTP service over an exported model (FastAPI + uvicorn)")
    _add_model(p)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--top-k", type=_positive, default=5, help="classes per input (default 5)")
    p.add_argument("--max-request-bytes", type=_positive, default=32 << 20)
    p.add_argument("--max-images", type=_positive, default=64, help="images per request")
    p.add_argument("--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS, help="per image")
    p.add_argument(
        "--max-rows",
        type=_positive,
        default=1024,
        help="rows, texts or history entries per request",
    )
    p.add_argument("--max-text-chars", type=_positive, default=10_000, help="per text")
    p.add_argument(
        "--threads", type=_count_or_auto, default=0, help="inference threads (0: per core)"
    )


def _predict(args: argparse.Namespace) -> int:
    """0: every input classified; 1: some got an error row; a UserError (2) above."""
    from torchstages.deploy.predict import default_format, expand_inputs, predict, write_results
    from torchstages.deploy.readers import reader_for
    from torchstages.deploy.runtime import load_runner
    from torchstages.io import atomic_path

    _quiet_on_closed_pipe()
    named_first = args.inputs and Path(args.inputs[0]).suffix in (".onnx", ".pt2")
    if named_first and (len(args.inputs) > 1 or args.text):
        # `predict model.onnx inputs...`: the model named first, as --model
        args.model, args.inputs = Path(args.inputs[0]), args.inputs[1:]
    if args.output is not None:
        _check_output(args.output, args.format)
    runner = load_runner(args.model)
    # rows for a table model, texts for a text model, a history for a series model; for an
    # image model, image files and lists of them
    kind = runner.metadata["kind"]
    if args.keep and kind not in ("table", "text"):
        raise UserError(
            f"--keep copies columns of a table or text model's rows; this is a {kind} model"
        )
    if args.column is not None and kind != "text":
        raise UserError(f"--column names a text model's text column; this is a {kind} model")
    if kind in ("table", "series"):
        return _predict_rows(args, runner)
    if kind == "text":
        return _predict_text(args, runner)
    if args.text:
        raise UserError(f"{args.model}: --text needs a text model (this model's kind is {kind})")
    if not args.inputs:
        raise UserError("predict: give the files to classify")
    reader = reader_for(runner.metadata, args.max_pixels)
    left_out: list[str] = []
    sources = expand_inputs(args.inputs, reader, sys.stdin, left_out)
    _say_left_out("predict", left_out)
    if not sources:
        raise UserError(f"no inputs found in {' '.join(args.inputs)}")
    k = min(args.top_k, len(runner.classes))
    fmt = args.format or default_format(
        None if args.output is None else str(args.output), sys.stdout.isatty()
    )
    results = predict(runner, reader, sources, k, args.batch_size, args.workers)
    if sys.stderr.isatty() and len(sources) > args.batch_size:
        from tqdm import tqdm

        results = tqdm(results, total=len(sources), unit="input", file=sys.stderr)
    width = max(len(s) for s in sources)
    if args.output is None:
        failed = write_results(results, fmt, sys.stdout, k, width)
    else:
        with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            failed = write_results(results, fmt, f, k, width)
    if failed:
        print(f"predict: {failed} of {len(sources)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _check_output(path: Path, fmt: str | None) -> None:
    """Before any work: ``--output`` names a file predict can write, in a format it writes."""
    if path.is_dir():
        raise UserError(
            f"--output {path}: is a folder; give a file name, e.g. {path / 'predictions.csv'}"
        )
    if fmt is None and path.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise UserError(
            f"--output {path}: predict writes .csv, .jsonl or .json files; name one of those, "
            "or say --format"
        )
    _check_writable(path, "--output")


def _check_writable(path: Path, flag: str) -> None:
    """Before any work: a file can be written at ``path`` (its folder made if missing)."""
    import os
    import tempfile

    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None


def _predict_rows(args: argparse.Namespace, runner: Runner) -> int:
    """A table model: CSV with line, prediction (and probability) per row of one table file; a
    series model: the next horizon steps after the end of each series in one history file."""
    kind = runner.metadata["kind"]
    if len(args.inputs) != 1 or Path(args.inputs[0]).suffix.lower() not in TABLE_SUFFIXES:
        raise UserError(f"predict: a {kind} model takes one table file (.csv, .tsv or .parquet)")
    table = Path(args.inputs[0])
    if not table.is_file():
        raise UserError(f"{table}: file not found")
    k = _top_k(args, runner)  # refuses --top-k for values
    if kind == "series":
        from torchstages.series.predict import predict_series

        return _write_rows(args, *predict_series(runner, table))
    from torchstages.tables.predict import predict_table

    return _write_rows(args, *predict_table(runner, table, k, args.keep))


def _predict_text(args: argparse.Namespace, runner: Runner) -> int:
    """Every text given: CSV with where it came from, the class and its probability."""
    from torchstages.text.predict import predict_texts, read_inputs

    texts = read_inputs(args.text, args.inputs, args.column, runner.metadata, args.keep)
    return _write_rows(args, *predict_texts(runner, texts, _top_k(args, runner), args.keep))


def _top_k(args: argparse.Namespace, runner: Runner) -> int:
    if args.top_k > 1 and not runner.classes:
        raise UserError(f"--top-k: {args.model} predicts values, not classes")
    return min(args.top_k, len(runner.classes) or 1)


def _write_rows(args: argparse.Namespace, header: list[str], rows: list[list]) -> int:
    """``header`` and ``rows`` to stdout or, atomically, to ``--output``: CSV unless
    ``--format`` (or an ``--output`` ending in .jsonl/.json) says jsonl (one object per row),
    or table (aligned columns)."""
    import csv
    import json

    from torchstages.io import atomic_path

    named_json = args.output and Path(args.output).suffix.lower() in (".jsonl", ".json")
    fmt = args.format or ("jsonl" if named_json else "csv")

    def write(out) -> None:
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False))
                out.write("\n")
        elif fmt == "table":
            cells = [header, *(["" if c is None else str(c) for c in row] for row in rows)]
            widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
            for r in cells:
                out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
                out.write("\n")
        else:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    if args.output is None:
        write(sys.stdout)
    else:
        with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
