"""CSV text to frames: encodings, delimiters, column names, dates and numbers.

The layout-level decisions (which ticker, long or wide, a folder) live in
:mod:`marketcast.data.sources`; this module only turns one text table into a date-indexed
float frame. Dates may still repeat or be out of order here: the contract is enforced later.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.errors import DataError, listed

DATE_NAMES = ("date", "timestamp", "datetime", "time", "day")
TICKER_NAMES = ("ticker", "name", "symbol")
# The first column of a CSV written by pandas' `to_csv()` with an unnamed index, normalised.
PANDAS_INDEX = "unnamed:_0"
# What pandas reads as missing by default; every column but a ticker column gets it, so that
# tickers named "NA" (Nasdaq's) or "NULL" stay names.
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
DELIMITERS = (",", ";", "\t", "|")
# Limits on what is read, checked as the bytes arrive: text (decompressed) size, line length
# and header columns. The bundled 505-ticker file is 29 MB with lines under 100 bytes.
MAX_BYTES = 256 << 20
MAX_LINE = 1 << 20
MAX_COLUMNS = 5_000
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
             (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_table(path: Path) -> pd.DataFrame:
    """Every cell of a CSV (``.gz`` allowed) as text, with normalised column names."""
    if not path.is_file():
        raise DataError(
            f"data file {path} not found; pass an existing CSV path or --data sp500 "
            "for the bundled S&P 500 data"
        )
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty; pass a CSV file with a header and daily rows")
    try:
        raw = pd.read_csv(io.StringIO(text), sep=_sniff_delimiter(text), dtype=str,
                          keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path} is not a readable CSV ({first}); check the file") from None
    raw.columns = [normalize_name(c) for c in raw.columns]
    if raw.columns.duplicated().any():
        dup = raw.columns[raw.columns.duplicated()][0]
        raise DataError(f"{path} has two columns named {dup!r}; rename one")
    names = ticker_column(raw)
    for column in raw.columns:
        if column != names:
            raw[column] = raw[column].mask(raw[column].isin(NA_STRINGS))
    return raw


def to_frame(
    raw: pd.DataFrame, path: Path, date_column: str | None = None, strict: Sequence[str] = ()
) -> pd.DataFrame:
    """Text table -> float frame indexed by ``date``; text in a ``strict`` column is an error.

    Columns that hold only text (exchange, currency, ticker...) are dropped: not prices.
    """
    date_col = find_date_column(raw, date_column, path)
    index = _parse_dates(raw[date_col], path)
    columns = {}
    for name in raw.columns.drop(date_col):
        text = raw[name]
        values = pd.to_numeric(text.str.replace(",", "", regex=False).str.strip(),
                               errors="coerce")
        is_text = values.isna() & text.notna() & (text.str.strip() != "")
        if is_text.all() and len(raw):
            continue
        if is_text.any() and name in strict:
            row = int(np.argmax(is_text.to_numpy()))
            raise DataError(
                f"{name} has {int(is_text.sum())} non-numeric values (first "
                f"{text.iloc[row]!r} on {index[row].date()}); clean the file or pass "
                "--fill ffill or --fill drop"
            )
        columns[name] = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(columns, index=pd.DatetimeIndex(index, name="date"))


def normalize_name(name: object) -> str:
    """``"Adj Close"`` -> ``adj_close``, ``<CLOSE>`` -> ``close``."""
    name = str(name).strip().strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def ticker_column(raw: pd.DataFrame) -> str | None:
    """The column naming each row's ticker in a long file, if there is one."""
    return next((c for c in TICKER_NAMES if c in raw.columns), None)


def find_date_column(raw: pd.DataFrame, date_column: str | None, path: Path) -> str:
    if date_column is not None:
        name = normalize_name(date_column)
        if name not in raw.columns:
            raise DataError(
                f"date column {date_column!r} not in {path}; columns: {listed(raw.columns)}"
            )
        return name
    for name in DATE_NAMES:
        if name in raw.columns:
            return name
    # pandas' `to_csv()` writes an unnamed index first, read back as "Unnamed: 0".
    if len(raw.columns) and raw.columns[0] in ("", PANDAS_INDEX):
        return raw.columns[0]
    raise DataError(
        f"{path} has no date column (looked for {', '.join(DATE_NAMES)}); "
        "pass --date-column NAME"
    )


def _read_text(path: Path) -> str:
    """The text of ``path``, read in blocks (gzip decompressed as it streams) and refused as
    soon as it breaks a limit: a gzip bomb or a one-line file never fills the memory."""
    try:
        data = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}; check the file is a CSV or .csv.gz") from None
    wide = next((e for bom, e in WIDE_BOMS if data.startswith(bom)), None)
    try:
        return data.decode(wide or "utf-8-sig")
    except UnicodeDecodeError:
        if wide is not None:
            raise DataError(f"{path} is not valid {wide} text; save it as UTF-8") from None
        return data.decode("latin-1")  # every byte is a latin-1 character


def _read_bytes(path: Path) -> bytearray:
    with open(path, "rb") as raw:
        packed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if packed else raw
        what = " once decompressed" if packed else ""
        data, line = bytearray(), 0
        while block := stream.read(1 << 20):
            if not data:
                # UTF-16 and UTF-32 text is full of NUL bytes: recognise it by its BOM.
                wide = any(block.startswith(bom) for bom, _ in WIDE_BOMS)
                if not wide and b"\x00" in block[:4096]:
                    raise DataError(f"{path} is a binary file{what}, not a CSV; export the "
                                    "prices as CSV")
            if len(data) + len(block) > MAX_BYTES:
                raise DataError(f"{path} is over {MAX_BYTES >> 20} MB{what}, the most "
                                "marketcast reads; cut it to the dates and tickers you need")
            line = _check_lines(block, line, path)
            data += block
    _check_columns(data, path)
    return data


def _check_lines(block: bytes, line: int, path: Path) -> int:
    """Length of the line still open after ``block``, given the one open before it; a
    line over :data:`MAX_LINE` bytes is an error."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    longest = max(line + (ends[0] if len(ends) else len(block)),
                  int(np.diff(ends).max()) - 1 if len(ends) > 1 else 0)
    if longest > MAX_LINE:
        raise DataError(f"{path} has a line over {MAX_LINE:,} bytes, the most marketcast "
                        "reads; check the file is a CSV of daily rows")
    return len(block) - ends[-1] - 1 if len(ends) else line + len(block)


def _check_columns(data: bytearray, path: Path) -> None:
    header = bytes(data[: data.find(b"\n") if b"\n" in data[:MAX_LINE + 1] else MAX_LINE])
    columns = 1 + max(header.count(d.encode()) for d in DELIMITERS)
    if columns > MAX_COLUMNS:
        raise DataError(f"{path} has {columns:,} columns, over the {MAX_COLUMNS:,} marketcast "
                        "reads; keep the columns (or tickers) you need")


def _sniff_delimiter(text: str) -> str:
    header = text.lstrip()[: MAX_LINE + 2].splitlines()[0]
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _parse_dates(values: pd.Series, path: Path) -> pd.DatetimeIndex:
    values = values.str.strip()
    # Stooq's bulk files write dates as YYYYMMDD.
    fmt = "%Y%m%d" if values.str.fullmatch(r"\d{8}").all() else None
    with warnings.catch_warnings():
        # Mixed formats fall back to dateutil row by row, with a warning we don't pass on:
        # a row that still fails is reported below.
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
    if parsed.isna().any():
        row = int(np.argmax(parsed.isna().to_numpy()))
        raise DataError(
            f"{path}: cannot read {values.iloc[row]!r} as a date (data row {row + 1}); "
            "use ISO dates like 2018-01-31 or pass --date-column"
        )
    return pd.DatetimeIndex(parsed.dt.tz_convert(None).dt.normalize())
