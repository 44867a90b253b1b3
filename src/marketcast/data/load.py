"""Loading: a source to a frame that satisfies the data contract (see :mod:`marketcast.data`).

Order of work: read the ticker's rows, sort the dates, compute derived features on the whole
history (they are causal, so earlier days only help their warm-up), cut to ``--start`` and
``--end``, drop the warm-up days the cut leaves without feature values, then validate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from marketcast.calendar import FIRST_YEAR, LAST_YEAR
from marketcast.data.features import add_features, derived_features
from marketcast.data.quality import QualityReport, check_prices, quality_summary
from marketcast.data.readers import normalize_name
from marketcast.data.sources import (
    BUILTIN_DEFAULT_START,
    BUILTIN_SOURCES,
    read_all,
    read_source,
)
from marketcast.errors import DataError, listed, os_errors, shown

log = logging.getLogger("marketcast")
# Prices beyond (1/MAX_PRICE, MAX_PRICE) overflow or underflow float64 in the fourth powers
# of the Diebold-Mariano variance.
MAX_PRICE = 1e50


@os_errors
def load_prices(
    source: str | pd.Series | pd.DataFrame = "sp500",
    *,
    ticker: str | None = None,
    start: str | None = None,
    end: str | None = None,
    date_column: str | None = None,
    target: str = "close",
    features: Sequence[str] = (),
    fill: str = "none",
) -> pd.DataFrame:
    """Read daily prices and return a frame satisfying the data contract.

    Parameters
    ----------
    source : str
        ``"sp500"`` (S&P 500 index daily OHLCV 1999-2018, shipped by ``arch``),
        ``"store:TICKER"`` (the download store), or the path of a CSV file (Yahoo, Stooq,
        generic, long or wide layout; ``.gz`` allowed), a Parquet file or a folder of
        per-ticker files. Or prices already in memory: a Series (the target) or a
        DataFrame indexed by date, checked against the same contract as a file.
    ticker : str, optional
        Ticker to keep from a multi-ticker file or folder (a wide file's column).
    start, end : str, optional
        Inclusive ISO date bounds. ``sp500`` starts at 2010-01-01 unless ``start`` is given.
    date_column : str, optional
        Name of the date column, when it is not one of date/timestamp/datetime/time/day.
    target, features : str, sequence of str
        Columns that must be clean (checked here); other columns are kept as they are. A
        feature that is not a column is derived (see :mod:`marketcast.data.features`);
        ``features`` may leave out the target.
    fill : {"none", "ffill", "drop"}
        What to do with NaN or non-positive values in those columns.

    Returns
    -------
    pandas.DataFrame
        Index ``date`` (daily, increasing), float columns, lower-case names.
    """
    if isinstance(source, pd.Series | pd.DataFrame):
        frame, source = frame_from_pandas(source, target), "memory"
    else:
        strict = () if fill != "none" else (target, *features)
        frame = read_source(source, ticker=ticker, date_column=date_column, strict=strict)
    if source in BUILTIN_SOURCES:
        start = start or BUILTIN_DEFAULT_START.get(source)
    frame = prepare_frame(frame, target=target, features=features, start=start, end=end)
    return validate_prices(frame, target=target, features=features, fill=fill)


def frame_from_pandas(data: pd.Series | pd.DataFrame, target: str = "close") -> pd.DataFrame:
    """A Series (named ``target`` here, whatever its name) or a DataFrame indexed by date as
    a frame with lower-case column names and its numeric columns; not yet validated."""
    if isinstance(data, pd.Series):
        data = data.to_frame(target)
    else:
        data = data.rename(columns=normalize_name)
        data = data.loc[:, [pd.api.types.is_numeric_dtype(t) for t in data.dtypes]]
    index = data.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(
            f"the prices are indexed by {type(index).__name__}, not dates; give them a "
            "DatetimeIndex (df.set_index(pd.to_datetime(df['date'])))"
        )
    if index.tz is not None:
        index = index.tz_convert(None)
    if index.hasnans:
        raise DataError("the date index has missing values (NaT); drop those rows")
    frame = data.set_axis(pd.DatetimeIndex(index.normalize(), name="date"))
    return frame.astype("float64")


def prepare_frame(frame: pd.DataFrame, *, target: str, features: Sequence[str],
                  start: str | None, end: str | None) -> pd.DataFrame:
    """One ticker's rows as read, made ready for :func:`validate_prices`: dates sorted, the
    features that are not columns derived on the whole history, ``start`` to ``end`` kept,
    and the leading days on which a derived feature has no value yet dropped."""
    frame = _sort_dates(frame)
    # The target is a column, never derived: a missing one is the contract's error.
    derived = derived_features([f for f in features if f != target], frame.columns)
    frame = add_features(frame, derived, price=target)
    frame = _select_dates(frame, start, end)
    return _drop_warmup(frame, derived)


def validate_prices(
    frame: pd.DataFrame,
    *,
    target: str = "close",
    features: Sequence[str] = (),
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
        wide = " (a file with one column per ticker needs --ticker NAME)" \
            if missing[0] == "close" else ""
        raise DataError(
            f"column {shown(missing[0])} not found; the data has: {listed(frame.columns)}. "
            f"Pass --target/--features with one of those{wide}"
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


@os_errors
def check_data(
    source: str = "sp500", *, ticker: str | None = None, start: str | None = None,
    end: str | None = None, date_column: str | None = None, target: str = "close",
) -> QualityReport:
    """Run every check on one ticker of ``source``, or on all of them without ``ticker``."""
    if ticker is None:
        frames = read_all(source, date_column=date_column)
    else:
        frames = {ticker.upper(): read_source(source, ticker=ticker, date_column=date_column)}
    rows = []
    for name, frame in frames.items():
        frame = frame[date_mask(frame, start, end)]
        if frame.empty:
            continue
        for check, dates in check_prices(frame, target).items():
            rows.extend((name, check, d) for d in dates)
    findings = pd.DataFrame(rows, columns=["ticker", "check", "date"])
    return QualityReport(findings, tuple(frames))


def summarize(frame: pd.DataFrame, target: str | None = None) -> dict:
    """Rows, date range, columns, missing values, gaps against the NYSE calendar and the
    quality checks (``quality``: count and first dates per check)."""
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
        "quality": quality_summary(frame, target),
    }


def data_sha256(frame: pd.DataFrame) -> str:
    """Hash of dates, column names and values: identifies the exact training data."""
    digest = hashlib.sha256()
    digest.update(",".join(frame.columns).encode())
    digest.update(frame.index.values.astype("datetime64[ns]").astype(np.int64).tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


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


def parse_date(value: str | None, name: str) -> pd.Timestamp | None:
    """``--start``/``--end`` as a timestamp; a :class:`DataError` naming the flag if unreadable."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:  # "nan" and "NaT" parse as no date at all
        raise DataError(f"--{name} {shown(value)} is not a date; use YYYY-MM-DD") from None
    return stamp


def date_mask(frame: pd.DataFrame, start: str | None, end: str | None) -> np.ndarray:
    """Rows dated from ``start`` to ``end`` inclusive (ISO dates; None leaves a side open)."""
    first, last = parse_date(start, "start"), parse_date(end, "end")
    mask = np.ones(len(frame), dtype=bool)
    if first is not None:
        mask &= frame.index >= first
    if last is not None:
        mask &= frame.index <= last
    return mask


def _select_dates(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    mask = date_mask(frame, start, end)
    if not mask.any():
        if frame.empty:
            raise DataError("the data holds no rows; check the file and the --ticker")
        raise DataError(
            f"no rows between {start or 'the start'} and {end or 'the end'}; the data covers "
            f"{frame.index[0].date()} to {frame.index[-1].date()}"
        )
    return frame.loc[mask]


def _drop_warmup(frame: pd.DataFrame, derived: Sequence[str]) -> pd.DataFrame:
    """Drop the leading days on which a derived feature has no value yet."""
    if not derived:
        return frame
    firsts = [frame[name].first_valid_index() for name in derived]
    if any(first is None for first in firsts):
        name = derived[firsts.index(None)]
        raise DataError(
            f"feature {shown(name)} has no value in the {len(frame)} days selected (too few days "
            "for its window); use more data or a shorter window"
        )
    first = max(firsts)
    if first > frame.index[0]:
        log.warning("features need warm-up days: the data used starts on %s", first.date())
    return frame.loc[first:]


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
