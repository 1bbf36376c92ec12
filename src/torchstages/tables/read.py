"""Finding and reading the one table file under ``data/raw``: CSV (delimiter sniffed) or Parquet.

Every cell is read as text (missing cells as NaN), so that the split can hash rows exactly as
they are written and build-dataset decides column types itself, the same way for every file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import logging
import re
from collections import defaultdict
from collections.abc import Collection, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from torchstages.errors import UserError
from torchstages.kinds import table_files
from torchstages.wording import counted

__all__ = [
    "DECORATED_NUMBER",
    "FIRST_DATA_LINE",
    "MISSING_WORDS",
    "is_missing_text",
    "decode_text",
    "missing_words_text",
    "nearly_all",
    "similar_spellings",
    "decorated_numbers",
    "LOCAL_ORDER_DATE",
    "NotDecodable",
    "UnclosedQuote",
    "find_table",
    "read_table",
    "row_hashes",
    "rounded_row_hashes",
    "first_non_number",
    "not_a_number_of",
    "out_of_range",
]

log = logging.getLogger(__name__)

FIRST_DATA_LINE = 2  # line numbers in messages count the header as line 1
_SNIFF_BYTES = 64 * 1024
# a number written with a decimal comma, as spreadsheets save CSV with ';' between fields in
# much of Europe: digits, at most one comma, more digits, an optional exponent
_DECIMAL_COMMA = re.compile(r"[+-]?\d+(,\d+)?([eE][+-]?\d+)?")
_DECIMAL_SHARE = 0.9  # as column types are detected: a stray cell is then named as not a number
# a cell of punctuation alone ('-', '?', '--') stands for "no value": it neither makes nor
# unmakes a column of numbers (a word does: 'S', 'M', 'L' beside '10' and '12' are sizes)
_PLACEHOLDER = re.compile(r"[^\w\s]+")
_C1_CONTROL = re.compile("[\x80-\x9f]")
_THOUSANDS_POINTS = re.compile(r"[+-]?\d{1,3}(\.\d{3})+")
_UNICODE_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
# cells read as missing: empty, spaces only, or one of these words (pandas' list, written out
# here so that it does not change with pandas; 'NA' and 'None' are among them, so a class or
# category of that name is missing too, and the split and build-dataset logs say so)
MISSING_WORDS = frozenset(
    {
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
# day, month and year in some local order (28.11.2026, 11/28/2026, 28-11-26), maybe a time:
# 03/04/2024 is March or April by country, so no reader here guesses which
LOCAL_ORDER_DATE = re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?")
# a number written with a currency sign, '%', thousands separators or a unit after a space
# ("$1,200", "85%", "1.254,87", "79.5 kg"; not codes such as "12A", "1st" or "4WD"): no reader
# here takes it as a number, so the messages say so
DECORATED_NUMBER = re.compile(
    r"[$€£¥]\s*[+-]?\d[\d,.' ]*"
    r"|[+-]?\d[\d,.' ]*\s*%"
    r"|[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?(\s*[^\W\d_]{1,5}\.?)?"
    r"|[+-]?\d+([.,]\d+)?\s+[^\W\d_]{1,5}\.?"
    r"|\([$€£¥]?\s*\d[\d,.' ]*\)"  # accounting's negative: (22.10)
)
_DECORATED_SHARE = 0.9  # of a column's cells, for the column to be such numbers


def nearly_all(matched: pd.Series, cells: pd.Series, share: float) -> bool:
    """Whether ``matched`` holds for at least ``share`` of the written ``cells``, or of them but
    placeholders (punctuation alone, as '-' or '?') while still for at least half of all; the
    placeholders are then named as what they are not."""
    if matched.mean() >= share:
        return True
    kept = ~cells.str.fullmatch(_PLACEHOLDER).astype(bool)
    return bool(matched.mean() >= 0.5 and matched[kept].mean() >= share)


def missing_words_text(found: dict[str, int]) -> str:
    """``attrs["missing_words"]`` of one column for a log line: "3 cells 'NA', 1 cell 'None'"."""
    return ", ".join(f"{counted(n, 'cell')} {w!r}" for w, n in found.items())


def similar_spellings(values: list[str]) -> list[list[str]]:
    """Groups of ``values`` equal but for letter case, spaces, a final '.' or how a number is
    written ('Yes' and 'yes '; '>50K' and '>50K.'; '1' and '1.0'), each sorted: classes, or
    series ids, that are most likely one written two ways."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in values:
        key = " ".join(name.split()).rstrip(".").strip().casefold()
        try:  # '1' and '1.0' are one number; exactly, so two long ids stay two
            number = Decimal(key)
            key = str(number.normalize()) if number.is_finite() else key
        except InvalidOperation:
            pass
        groups[key].append(name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def is_missing_text(cell: str) -> bool:
    """Whether a cell's text reads as a missing value: empty, spaces only, or a
    ``MISSING_WORDS`` word."""
    return not cell.strip() or cell in MISSING_WORDS


def out_of_range(values: pd.Series) -> pd.Series:
    """Numbers no model input can hold: inf ('inf' and 1e400 parse) and beyond float32's range
    (1e39 is finite in float64, inf once a model reads it); NaN is not."""
    with np.errstate(over="ignore"):  # the overflow to inf is what is asked
        as_read = values.to_numpy(dtype=np.float64).astype(np.float32)
    return pd.Series(np.isinf(as_read), index=values.index)


def not_a_number_of(value: float) -> str:
    """What an out-of-range (or NaN: unparsed) value is not, for 'x is not a ...'."""
    if np.isinf(value):
        return "finite number"
    if np.isnan(value):
        return "number"
    return "number a model holds (float32: at most ±3.4e38)"


def first_non_number(cells: pd.Series) -> tuple[int, str] | None:
    """The position of the first cell that is neither empty nor a number a model holds, and
    what it is not (for "'abc' is not a number"); None when every cell is one or empty."""
    values = pd.to_numeric(cells, errors="coerce")
    # 'inf' or 1e39 parse, but no statistic, loss or float32 input holds them
    bad = (values.isna() & cells.notna()) | out_of_range(values)
    if not bad.any():
        return None
    first = int(np.flatnonzero(bad.to_numpy())[0])
    return first, not_a_number_of(values.iloc[first])


def decorated_numbers(cells: pd.Series) -> pd.Series:
    """The cells, of a column that is nearly all numbers written as ``DECORATED_NUMBER``
    matches, that no reader takes as numbers (the messages name the first); empty for any
    other column."""
    written = cells.dropna().str.strip()
    matched = written.str.fullmatch(DECORATED_NUMBER)
    # a decimal comma (850,00 beside 2.351,00) is a plain number of its file; 1,254 is not
    comma = written.str.fullmatch(_DECIMAL_COMMA) & ~matched
    plain = pd.to_numeric(written, errors="coerce").notna() | comma
    decorated = matched & ~plain
    # "812" beside "1,254" is a number of the same column, written without a separator
    if written.empty or not decorated.any() or (decorated | plain).mean() < _DECORATED_SHARE:
        return written.iloc[:0]
    return written[decorated]


def find_table(raw_dir: Path) -> Path:
    """The single table file directly under ``raw_dir`` (hidden files are ignored)."""
    files = table_files(raw_dir)
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise UserError(
            f"{raw_dir}: expected exactly one table file (.csv/.tsv/.parquet), found {found}"
        )
    if not files[0].resolve().is_relative_to(raw_dir.resolve()):
        raise UserError(f"{files[0]}: a symlink to a file outside {raw_dir}: copy the file in")
    return files[0]


def read_table(
    path: Path,
    encoding: str = "utf-8",
    quoting: str = "csv",
    words: bool = True,
    numbers: Collection[str] = (),
) -> pd.DataFrame:
    """All cells as ``str`` or NaN (missing: see :func:`is_missing_text`), columns in file order,
    each row indexed by the line of the file it starts on (the header is line 1; a Parquet
    file's rows count as lines); one-line errors for bad files. ``attrs["missing_words"]``
    counts the cells of each column read as missing for a ``MISSING_WORDS`` word.

    ``encoding`` and ``quoting`` (``csv``: quoted fields; ``none``: quotes are plain characters)
    apply to CSV files. ``words``: whether ``MISSING_WORDS`` are missing (not for texts: a
    message may say "NA", a label be "None"). ``numbers``: columns a model reads as numbers
    (predict): a decimal comma is read there when the cells that are numbers in either notation
    nearly all use it, however many other cells there are (the one typo in a file of two rows
    is then the cell named).
    """
    parquet = path.suffix.lower() in (".parquet", ".pq")
    if parquet:
        frame = _read_parquet(path)
    else:
        quote = csv.QUOTE_MINIMAL if quoting == "csv" else csv.QUOTE_NONE
        frame = _read_csv(path, encoding, quote, words, numbers)
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise UserError(f"{path}: duplicate column names {dupes}: every column needs its own name")
    if len(frame) == 0:
        raise UserError(f"{path}: has a header but no rows")
    if parquet:
        frame.index = FIRST_DATA_LINE + np.arange(len(frame))
    else:
        _refuse_repeated_header(frame, path)
    return frame


def _refuse_repeated_header(frame: pd.DataFrame, path: Path) -> None:
    """A line that repeats the header (files exported in parts and joined) would be a row of
    words: a class named after the target, a non-number in every numeric column."""
    # pandas names an empty header cell "Unnamed: 3"; a name that reads as missing ('NA') is
    # missing in the repeated line too
    named = [c for c in frame.columns if not c.startswith("Unnamed: ") and c not in MISSING_WORDS]
    repeats = np.ones(len(frame), dtype=bool)
    for name in named:
        repeats &= (frame[name].str.strip() == name.strip()).fillna(False).to_numpy(dtype=bool)
    if len(named) > 1 and repeats.any():
        line = frame.index[int(np.flatnonzero(repeats)[0])]
        raise UserError(f"{path}: line {line} repeats the header: remove it (a joined file?)")


def _missing_cells(frame: pd.DataFrame, words: bool = True) -> pd.DataFrame:
    """Cells of spaces only and (``words``) ``MISSING_WORDS`` words as NaN; counts the words per
    column in ``attrs["missing_words"]`` (a class or category named 'NA' or 'None' is read as
    missing, and the logs say so)."""
    found: dict[str, dict[str, int]] = {}
    for name in frame.columns:
        cells = frame[name]
        worded = cells.isin(MISSING_WORDS) if words else pd.Series(False, index=cells.index)
        blank = cells.str.strip() == ""
        if worded.any():
            found[name] = {str(w): int(n) for w, n in sorted(cells[worded].value_counts().items())}
        if (worded | blank).any():
            frame[name] = cells.mask(worded | blank)
    frame.attrs["missing_words"] = found
    return frame


class _Dialect(NamedTuple):
    """How a CSV file is written, as both readers (pandas' and Python's csv) are told."""

    delimiter: str
    quoting: int
    # "a, b, c": a space after every delimiter (as UCI's adult.data is written) is not part of
    # the next cell, and a quote after it still opens a quoted cell
    skipinitialspace: bool

    def reader(self, text: str) -> Iterator[list[str]]:
        return csv.reader(
            io.StringIO(text),
            delimiter=self.delimiter,
            quoting=self.quoting,
            skipinitialspace=self.skipinitialspace,
        )


def _record_starts(text: str, dialect: _Dialect) -> Iterator[tuple[int, list[str] | None]]:
    """Each record of a CSV text (the header first) with the line it starts on: a quoted cell
    with line breaks (the texts of reviews or messages often have them) spans several lines.
    A record Python's csv reader cannot read (a quote never closed, a cell over its 128 KiB
    field limit) comes as None, last."""
    reader = dialect.reader(text)
    line = 1
    try:
        for record in reader:
            yield line, record
            line = reader.line_num + 1
    except csv.Error:
        yield line, None


def _first_lines(text: str, dialect: _Dialect, frame: pd.DataFrame) -> np.ndarray:
    """The line each of ``frame``'s rows starts on. pandas skips blank lines (and lines of
    spaces only), before the header too, so they start no row; a record the csv reader cannot
    take falls back to counting the line breaks inside cells."""
    starts = []
    for line, record in _record_starts(text, dialect):
        if record is None:
            starts = []
            break
        if len(record) > 1 or (record and record[0].strip()):
            starts.append(line)
    if len(starts) == len(frame) + 1:
        return np.asarray(starts[1:], dtype=np.int64)  # the first is the header's
    breaks = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        breaks += frame[name].str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    header = 1 + text.splitlines().index(_header_line(text))
    return header + 1 + np.concatenate([[0], np.cumsum(1 + breaks)[:-1]])


def decode_text(path: Path, encoding: str, advice: str) -> str:
    """The file's text in ``encoding`` (UTF-8: a byte-order mark is not part of it); bytes it
    cannot read are a ``NotDecodable`` naming their line, with ``advice``."""
    raw = path.read_bytes()
    codec = codecs.lookup(encoding).name
    utf8 = codec == "utf-8"
    # spreadsheets' "Unicode text" export is UTF-16; its byte-order mark says which (UTF-32's
    # starts with UTF-16's, so it is asked first)
    unicode = next((name for mark, name in _UNICODE_MARKS if raw.startswith(mark)), None)
    if unicode and not codec.startswith(unicode.lower()):
        raise NotDecodable(f"{path}: is {unicode} (its first bytes say so) ({advice})", unicode)
    if (
        unicode is None
        and b"\x00" in raw[:_SNIFF_BYTES]
        and not codec.startswith(("utf-16", "utf-32"))
    ):
        # no text file holds NUL bytes; UTF-16 without its mark holds one in every other byte
        raise NotDecodable(
            f"{path}: holds NUL bytes: UTF-16 without a byte-order mark? ({advice})", "utf-16"
        )
    try:
        text = raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        name = "UTF-8" if utf8 else encoding
        raise NotDecodable(f"{path}: line {line} is not valid {name} ({advice})") from None
    if codec == "iso8859-1" and (control := _C1_CONTROL.search(text)):
        # Latin-1 reads every byte, but 0x80-0x9F are control codes there: in a Windows file
        # they are quotes, dashes and the euro sign
        line = text.count("\n", 0, control.start()) + 1
        log.warning(
            "%s: line %d holds the control character %r, which Windows files use for quotes, "
            "dashes or €: the file is likely cp1252, not %s",
            path,
            line,
            control.group(),
            encoding,
        )
    return text


def _read_csv(
    path: Path, encoding: str, quoting: int, words: bool, numbers: Collection[str]
) -> pd.DataFrame:
    text = decode_text(path, encoding, "save the file as UTF-8")
    if not text.strip():
        raise UserError(f"{path}: the file is empty (expected a header line and rows)")
    if re.fullmatch(r'"?sep=.?"?', _header_line(text).strip(" \r")):
        # Excel writes it for itself when asked to; no other reader takes it
        raise UserError(
            f"{path}: line 1 is {_header_line(text).strip()!r}, Excel's note of its "
            "delimiter, not a header: delete that line"
        )
    dialect = _sniff_dialect(text[:_SNIFF_BYTES], path, quoting)
    # pandas renames a repeated header to "x.1" silently: check the header as written (the
    # first line that is not blank, as pandas takes it)
    header = next(dialect.reader(_header_line(text)), [])
    named = [c for c in header if c]  # pandas names empty ones "Unnamed: 3"
    if len(set(named)) != len(named):
        dupes = sorted({c for c in named if named.count(c) > 1})
        raise UserError(f"{path}: duplicate column names {dupes}: every column needs its own name")
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=dialect.delimiter,
            dtype=str,
            keep_default_na=False,  # _missing_cells reads missing values, counting the words
            na_values=[""],
            quoting=dialect.quoting,
            skipinitialspace=dialect.skipinitialspace,
        )
    except pd.errors.ParserError as exc:
        raise _parse_error(str(exc).splitlines()[0], text, dialect, path) from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty (expected a header line and rows)") from None
    frame.columns = [str(c) for c in frame.columns]
    frame.index = _first_lines(text, dialect, frame)
    frame = _missing_cells(frame, words)
    # the text reader's check for rows swallowed by a quote splits lines as this dialect does
    frame.attrs["skipinitialspace"] = dialect.skipinitialspace
    # a comma between fields cannot also be a decimal comma (unquoted), so only other files
    return frame if dialect.delimiter == "," else _decimal_commas(frame, path, numbers)


class NotDecodable(UserError):
    """Bytes that the file's encoding cannot read; ``encoding``: the one the file is in, when
    known."""

    def __init__(self, message: str, encoding: str | None = None) -> None:
        super().__init__(message)
        self.encoding = encoding


class UnclosedQuote(UserError):
    """A quote that opens a cell and never closes: the rest of the file would be that cell."""


def _parse_error(message: str, text: str, dialect: _Dialect, path: Path) -> UserError:
    """pandas' tokenizer error, with the line of the file it happened on: pandas counts records
    (a quoted cell with line breaks is one), so its numbers drift from the file's lines."""
    if found := re.search(r"EOF inside string starting at row (\d+)", message):
        line = _record_line(text, dialect, int(found[1]))
        return UnclosedQuote(f"{path}: line {line}: a quote opened here is never closed")
    if found := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        line = _record_line(text, dialect, int(found[2]) - 1)
        advice = (
            f"a cell that holds {dialect.delimiter!r} needs quotes around it"
            if dialect.quoting != csv.QUOTE_NONE
            else f"quotes are plain characters here, so no cell can hold {dialect.delimiter!r}"
        )
        return UserError(
            f"{path}: line {line}: {found[3]} fields where the header has {found[1]} ({advice})"
        )
    return UserError(f"{path}: cannot parse as CSV: {message}")


def _record_line(text: str, dialect: _Dialect, record: int) -> int:
    """The line that record ``record`` (0: the header) starts on; the record that broke pandas
    may break the csv reader too, which then ends the records there."""
    starts = list(itertools.islice(_record_starts(text, dialect), record + 1))
    return starts[-1][0]


def _decimal_commas(frame: pd.DataFrame, path: Path, numbers: Collection[str]) -> pd.DataFrame:
    """Numbers written with a decimal comma read with a point, so that ``3,14`` is a number as
    ``3.14`` is, in the columns whose cells are nearly all such numbers, placeholders aside
    (:func:`nearly_all`; '-' or '?' stay, for the messages to name), and in the ``numbers``
    columns whose numbers nearly all use it; other cells stay as they are. Thousands separators
    (``1.234,5``) are not read: such cells stay text."""
    converted = []
    for name in frame.columns:
        cells = frame[name].str.strip()
        comma = cells.str.contains(",", regex=False).fillna(False).astype(bool)
        if not comma.any():
            continue
        written = cells.str.fullmatch(_DECIMAL_COMMA).fillna(False).astype(bool)
        present = cells.notna()
        if name in numbers:  # words there are mistakes: only the numbers decide the notation
            present &= written | pd.to_numeric(cells, errors="coerce").notna()
        if (written & comma).any() and nearly_all(written[present], cells[present], _DECIMAL_SHARE):
            frame[name] = frame[name].mask(written, cells.str.replace(",", ".", regex=False))
            converted.append(name)
    if converted:
        log.info("%s: numbers with a decimal comma read as such in %s", path.name, converted)
        _name_thousands_points(frame, converted, path)
    return frame


def _name_thousands_points(frame: pd.DataFrame, converted: list[str], path: Path) -> None:
    """In a file that writes decimals with a comma, a point is a thousands separator: 2.351 is
    two thousand, but reads as two. Named (not reread: 2.351 kg is two in other files)."""
    for name in frame.columns:
        if name in converted:
            continue
        dotted = frame[name].dropna().str.strip()
        dotted = dotted[dotted.str.contains(".", regex=False)]
        if len(dotted) and dotted.str.fullmatch(_THOUSANDS_POINTS).all():
            log.warning(
                "%s: column %r holds %r in a file that writes decimals with a comma: read as a "
                "decimal point; if it is a thousands separator, write the number without it",
                path.name,
                name,
                dotted.iloc[0],
            )


def _header_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def _sniff_dialect(head: str, path: Path, quoting: int) -> _Dialect:
    lines = head.splitlines()
    header = _header_line(head)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|").delimiter
        except csv.Error:
            # one column, or a sniffer-defeating quote pattern: the most common candidate
            counts = {d: header.count(d) for d in ",;\t|"}
            best = max(counts, key=lambda d: counts[d])
            delimiter = best if counts[best] else ","
    # as the csv sniffer decides it: every delimiter of the header (outside quoted names) has
    # a space after it
    unquoted = re.sub(r'"[^"]*"', '""', header) if quoting != csv.QUOTE_NONE else header
    between = unquoted.count(delimiter)
    spaced = between > 0 and unquoted.count(delimiter + " ") == between
    return _Dialect(delimiter, quoting, spaced)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise UserError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
    out = {}
    for name in frame.columns:
        column = frame[name]
        text = column.map(_cell_text, na_action="ignore").astype(object)
        out[str(name)] = text.where(column.notna(), np.nan)
    # a typed file's nulls are its missing values, its words are text; spaces only are
    # missing as in a CSV file
    return _missing_cells(pd.DataFrame(out, index=frame.index).reset_index(drop=True), False)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """sha256 of each row's cells in ``columns`` (missing cells hash as a marker no text can equal)."""
    cells = frame[columns].astype(object).where(frame[columns].notna(), None)
    out = []
    for values in cells.itertuples(index=False, name=None):
        joined = "\x1f".join("\x00" if v is None else v for v in values)
        out.append(hashlib.sha256(joined.encode("utf-8")).hexdigest())
    return out


def rounded_row_hashes(frame: pd.DataFrame, columns: list[str], digits: int) -> list[str]:
    """sha256 of each row after rounding every number to ``digits`` significant digits and
    folding text (case, runs of spaces): rows equal after that are near duplicates."""
    rounded = {}
    for name in columns:
        cells = frame[name]
        numbers = pd.to_numeric(cells, errors="coerce")
        text = cells.astype(object).map(
            lambda v: " ".join(str(v).split()).casefold(), na_action="ignore"
        )
        as_number = numbers.map(lambda x: f"{x:.{digits}g}", na_action="ignore")
        rounded[name] = as_number.where(numbers.notna(), text).astype(object)
    return row_hashes(pd.DataFrame(rounded, index=frame.index), columns)
