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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.errors import DataError

DATE_NAMES = ("date", "timestamp", "datetime", "time", "day")
TICKER_NAMES = ("ticker", "name", "symbol")
# The first column of a CSV written by pandas' `to_csv()` with an unnamed index, normalised.
PANDAS_INDEX = "unnamed:_0"
# What pandas reads as missing by default; every column but a ticker column gets it, so that
# tickers named "NA" (Nasdaq's) or "NULL" stay names.
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
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
                f"date column {date_column!r} not in {path}; columns: {', '.join(raw.columns)}"
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
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}; check the file is a CSV or .csv.gz") from None
    # UTF-16 and UTF-32 text is full of NUL bytes: recognise it by its BOM first.
    wide = next((e for bom, e in WIDE_BOMS if data.startswith(bom)), None)
    if wide is None and b"\x00" in data[:4096]:
        raise DataError(f"{path} is a binary file, not a CSV; export the prices as CSV")
    try:
        return data.decode(wide or "utf-8-sig")
    except UnicodeDecodeError:
        if wide is not None:
            raise DataError(f"{path} is not valid {wide} text; save it as UTF-8") from None
        return data.decode("latin-1")  # every byte is a latin-1 character


def _sniff_delimiter(text: str) -> str:
    header = text.lstrip().splitlines()[0]
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
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
