"""Price data: reading sources and the one data contract.

The price frame every other module receives satisfies this contract, enforced once by
:func:`validate_prices`:

- a ``DatetimeIndex`` named ``date``, timezone-naive, strictly increasing, unique, within
  the years of the NYSE calendar (1886 to 2199);
- lower-case column names (``"Adj Close"`` becomes ``adj_close``), float64 values;
- the target and the feature columns hold finite values with no NaN; the target's lie
  between ``1 / MAX_PRICE`` and ``MAX_PRICE``.

Downstream code trusts the contract and does not check it again.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.calendar import FIRST_YEAR, LAST_YEAR
from marketcast.errors import DataError

log = logging.getLogger("marketcast")

BUILTIN_SOURCES = ("sp500",)
# sp500 is 1999-2018; the default job uses the post-crisis decade.
BUILTIN_DEFAULT_START = {"sp500": "2010-01-01"}
DATE_NAMES = ("date", "timestamp", "datetime", "time", "day")
TICKER_NAMES = ("ticker", "name", "symbol")
# Prices beyond (1/MAX_PRICE, MAX_PRICE) overflow or underflow float64 in the fourth powers
# of the Diebold-Mariano variance.
MAX_PRICE = 1e50
# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
WIDE_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
             (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def load_prices(
    source: str = "sp500",
    *,
    ticker: str | None = None,
    start: str | None = None,
    end: str | None = None,
    date_column: str | None = None,
    target: str = "close",
    features: Sequence[str] = ("close",),
    fill: str = "none",
) -> pd.DataFrame:
    """Read daily prices and return a frame satisfying the data contract.

    Parameters
    ----------
    source : str
        ``"sp500"`` (S&P 500 index daily OHLCV 1999-2018, shipped by ``arch``) or the path of
        a CSV file (Yahoo, Stooq or generic layout; ``.gz`` allowed; long multi-ticker files
        with a ticker/Name/symbol column).
    ticker : str, optional
        Ticker to keep from a multi-ticker file.
    start, end : str, optional
        Inclusive ISO date bounds. ``sp500`` starts at 2010-01-01 unless ``start`` is given.
    date_column : str, optional
        Name of the date column, when it is not one of date/timestamp/datetime/time/day.
    target, features : str, sequence of str
        Columns that must be clean (checked here); other columns are kept as they are.
    fill : {"none", "ffill", "drop"}
        What to do with NaN or non-positive values in those columns.

    Returns
    -------
    pandas.DataFrame
        Index ``date`` (daily, increasing), float columns, lower-case names.
    """
    if source in BUILTIN_SOURCES:
        frame = _read_builtin(source)
        start = start or BUILTIN_DEFAULT_START.get(source)
    else:
        strict = () if fill != "none" else (target, *features)
        frame = _read_csv(Path(source), ticker=ticker, date_column=date_column, strict=strict)
    frame = _sort_dates(frame)
    frame = _select_dates(frame, start, end)
    return validate_prices(frame, target=target, features=features, fill=fill)


def validate_prices(
    frame: pd.DataFrame,
    *,
    target: str = "close",
    features: Sequence[str] = ("close",),
    fill: str = "none",
) -> pd.DataFrame:
    """Enforce the data contract on a frame indexed by date; return a clean copy."""
    frame = _sort_dates(frame)
    if frame.empty:
        raise DataError("no rows left to use; check the file and the --start/--end dates")
    first, last = frame.index[0], frame.index[-1]
    if first.year < FIRST_YEAR or last.year >= LAST_YEAR:
        raise DataError(
            f"dates run from {first.date()} to {last.date()}, outside the NYSE calendar "
            f"({FIRST_YEAR} to {LAST_YEAR - 1}); check the date column or pass --start/--end"
        )
    used = list(dict.fromkeys([target, *features]))
    missing = [c for c in used if c not in frame.columns]
    if missing:
        raise DataError(
            f"column {missing[0]!r} not found; the data has: {', '.join(frame.columns)}. "
            "Pass --target/--features with one of those"
        )
    frame = frame.astype("float64").replace([np.inf, -np.inf], np.nan)
    bad = frame[used].isna()
    bad[target] |= frame[target] <= 0
    if bad.to_numpy().any():
        frame = _apply_fill(frame, bad, fill, target)
    low, high = frame[target].min(), frame[target].max()
    if high >= MAX_PRICE or low <= 1 / MAX_PRICE:
        raise DataError(
            f"{target} runs from {low:.3g} to {high:.3g}; marketcast handles prices between "
            f"{1 / MAX_PRICE:.0e} and {MAX_PRICE:.0e} (error statistics would overflow or "
            "vanish); rescale the column"
        )
    return frame


def summarize(frame: pd.DataFrame) -> dict:
    """Rows, date range, columns, missing values and gaps against the NYSE calendar."""
    from marketcast.calendar import nyse_sessions

    first, last = frame.index[0], frame.index[-1]
    sessions = nyse_sessions(first, last)
    missing_sessions = sessions.difference(frame.index)
    gaps = np.diff(frame.index.values).astype("timedelta64[D]").astype(int)
    return {
        "rows": int(len(frame)),
        "start": first.date().isoformat(),
        "end": last.date().isoformat(),
        "columns": list(frame.columns),
        "missing_values": {c: int(n) for c, n in frame.isna().sum().items()},
        "missing_nyse_sessions": int(len(missing_sessions)),
        "first_missing_sessions": [d.date().isoformat() for d in missing_sessions[:5]],
        "largest_gap_days": int(gaps.max()) if len(gaps) else 0,
    }


def data_sha256(frame: pd.DataFrame) -> str:
    """Hash of dates, column names and values: identifies the exact training data."""
    digest = hashlib.sha256()
    digest.update(",".join(frame.columns).encode())
    digest.update(frame.index.values.astype("datetime64[ns]").astype(np.int64).tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def _read_builtin(source: str) -> pd.DataFrame:
    from arch.data import sp500

    frame = sp500.load()
    frame.columns = [_normalize_name(c) for c in frame.columns]
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame


def _read_csv(
    path: Path, ticker: str | None, date_column: str | None, strict: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a CSV into a date-indexed float frame; text in a ``strict`` column is an error."""
    if not path.is_file():
        raise DataError(
            f"data file {path} not found; pass an existing CSV path or --data sp500 "
            "for the bundled S&P 500 data"
        )
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty; pass a CSV file with a header and daily rows")
    try:
        raw = pd.read_csv(io.StringIO(text), sep=_sniff_delimiter(text), dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path} is not a readable CSV ({first}); check the file") from None
    raw.columns = [_normalize_name(c) for c in raw.columns]
    if raw.columns.duplicated().any():
        dup = raw.columns[raw.columns.duplicated()][0]
        raise DataError(f"{path} has two columns named {dup!r}; rename one")
    raw = _pick_ticker(raw, ticker, path)
    date_col = _find_date_column(raw, date_column, path)
    index = _parse_dates(raw[date_col], path)
    columns = {}
    for name in raw.columns.drop(date_col):
        values = pd.to_numeric(raw[name].str.replace(",", "", regex=False).str.strip(),
                               errors="coerce")
        is_text = values.isna() & raw[name].notna() & (raw[name].str.strip() != "")
        if is_text.all() and len(raw):
            continue  # a text column (exchange, currency...): not a price
        if is_text.any() and name in strict:
            row = int(np.argmax(is_text.to_numpy()))
            raise DataError(
                f"{name} has {int(is_text.sum())} non-numeric values (first "
                f"{raw[name].iloc[row]!r} on {index[row].date()}); clean the file or pass "
                "--fill ffill or --fill drop"
            )
        columns[name] = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(columns, index=pd.DatetimeIndex(index, name="date"))


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


def _normalize_name(name: object) -> str:
    name = str(name).strip().strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def _pick_ticker(raw: pd.DataFrame, ticker: str | None, path: Path) -> pd.DataFrame:
    col = next((c for c in TICKER_NAMES if c in raw.columns), None)
    if col is None:
        if ticker is not None:
            raise DataError(
                f"--ticker {ticker} given but {path} has no ticker/Name/symbol column; "
                "drop --ticker for a single-ticker file"
            )
        return raw
    names = raw[col].fillna("").str.strip()
    tickers = pd.unique(names)
    if ticker is None:
        if len(tickers) == 1:
            return raw.drop(columns=col)
        shown = ", ".join(sorted(map(str, tickers))[:8])
        raise DataError(
            f"{path} holds {len(tickers)} tickers ({shown}, ...); pass --ticker to choose one"
        )
    keep = names.str.upper() == ticker.strip().upper()
    if not keep.any():
        close = [t for t in sorted(map(str, tickers)) if t.upper().startswith(ticker[:1].upper())]
        hint = f" (e.g. {', '.join(close[:5])})" if close else ""
        raise DataError(f"ticker {ticker!r} not in {path}{hint}; run `marketcast data` to list")
    return raw.loc[keep].drop(columns=col).reset_index(drop=True)


def _find_date_column(raw: pd.DataFrame, date_column: str | None, path: Path) -> str:
    if date_column is not None:
        name = _normalize_name(date_column)
        if name not in raw.columns:
            raise DataError(
                f"date column {date_column!r} not in {path}; columns: {', '.join(raw.columns)}"
            )
        return name
    for name in DATE_NAMES:
        if name in raw.columns:
            return name
    raise DataError(
        f"{path} has no date column (looked for {', '.join(DATE_NAMES)}); "
        "pass --date-column NAME"
    )


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


def _sort_dates(frame: pd.DataFrame) -> pd.DataFrame:
    index = frame.index
    if not index.is_monotonic_increasing:
        if index.is_monotonic_decreasing:
            log.warning("dates run newest-first; sorted them oldest-first")
        else:
            log.warning("dates were out of order; sorted them")
        frame = frame.sort_index(kind="stable")
    dups = frame.index[frame.index.duplicated()]
    if len(dups):
        shown = ", ".join(d.date().isoformat() for d in dups.unique()[:5])
        raise DataError(
            f"{len(dups.unique())} dates appear more than once (first: {shown}); "
            "remove the duplicate rows, or pass --ticker for a multi-ticker file"
        )
    return frame


def _select_dates(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    if frame.empty:
        return frame  # validate_prices says so
    bounds = {}
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        try:
            bounds[name] = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise DataError(f"--{name} {value!r} is not a date; use YYYY-MM-DD") from None
    mask = np.ones(len(frame), dtype=bool)
    if "start" in bounds:
        mask &= frame.index >= bounds["start"]
    if "end" in bounds:
        mask &= frame.index <= bounds["end"]
    if not mask.any():
        raise DataError(
            f"no rows between {start or 'the start'} and {end or 'the end'}; the data covers "
            f"{frame.index[0].date()} to {frame.index[-1].date()}"
        )
    return frame.loc[mask]


def _apply_fill(frame: pd.DataFrame, bad: pd.DataFrame, fill: str, target: str) -> pd.DataFrame:
    first_col = bad.any().idxmax()
    n_bad = int(bad[first_col].sum())
    first_date = frame.index[bad[first_col].to_numpy()][0].date()
    if fill == "none":
        what = "NaN or non-positive" if first_col == target else "missing"
        raise DataError(
            f"{first_col} has {n_bad} {what} values (first on {first_date}); "
            "pass --fill ffill or --fill drop, or clean the file"
        )
    frame = frame.mask(bad)
    if fill == "ffill":
        frame = frame.ffill()
    used = bad.columns
    frame = frame.dropna(subset=list(used))
    log.warning("%s: %d bad values handled by --fill %s", first_col, n_bad, fill)
    if frame.empty:
        raise DataError(f"no clean rows left after --fill {fill}; check the file")
    return frame
