"""The local download store: one Parquet file per ticker, written atomically.

``<store>/<TICKER>.parquet`` holds the columns ``date, open, high, low, close, adj_close,
volume`` (Yahoo's ``close`` is split-adjusted, ``adj_close`` also dividend-adjusted) and, in
the Parquet key-value metadata under ``marketcast``, JSON: the ticker, the source and one
entry per download (UTC time, dates asked for, rows added); :mod:`~.parquet` checks both on
every read and write. Nothing is pickled.

Updates are incremental: only the days before the first and after the last stored day are
fetched, each range starting on the stored edge day. If that edge day's prices changed at
the source, history was restated (a split or dividend re-adjusted every earlier price), so
the whole range is fetched again instead of stitching two adjustments together.

The store is ``$MARKETCAST_STORE`` if set, else ``marketcast/store`` under the user's cache
directory; ``--store`` chooses another.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import pandas as pd

from marketcast.data.parquet import (
    COLUMNS,
    FORMAT_VERSION,
    MAX_LOG,
    TICKER,
    read_parquet,
    write_parquet,
)
from marketcast.data.readers import normalize_name
from marketcast.errors import ConfigError, DataError, listed, os_errors, shown

log = logging.getLogger("marketcast")

STORE_ENV = "MARKETCAST_STORE"
# First day asked for a ticker the store does not hold yet, when --start is not given.
DEFAULT_START = "2000-01-01"
# A stored edge day whose close differs by more than this when fetched again: restated.
RESTATE_TOLERANCE = 1e-6

# fetch(ticker, first_day, last_day) -> frame of daily prices, both days inclusive.
Fetch = Callable[[str, pd.Timestamp, pd.Timestamp], pd.DataFrame]


@dataclass(frozen=True)
class DownloadReport:
    """What one ticker's download did to its store file."""

    ticker: str
    path: Path
    rows_added: int
    start: str | None  # first and last stored day afterwards
    end: str | None
    refetched: bool  # history was restated, so every row was fetched again


def default_store() -> Path:
    """``$MARKETCAST_STORE``, else ``marketcast/store`` in the user's cache directory."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("marketcast")) / "store"


def store_file(ticker: str, store: str | Path | None = None) -> Path:
    """Path of ``ticker``'s Parquet file; the ticker must be a plain symbol."""
    ticker = ticker.strip().upper()
    if not TICKER.fullmatch(ticker):
        raise DataError(
            f"{shown(ticker)} is not a ticker symbol; use letters, digits and . ^ = _ - only "
            "(e.g. AAPL, BRK-B, ^GSPC)"
        )
    return Path(store).expanduser() / f"{ticker}.parquet" if store else \
        default_store() / f"{ticker}.parquet"


def read_stored(ticker: str, store: str | Path | None = None) -> tuple[pd.DataFrame, dict]:
    """Frame (indexed by date) and metadata of a stored ticker."""
    path = store_file(ticker, store)
    if not path.is_file():
        raise DataError(
            f"{ticker.upper()} is not in the store {path.parent}; run "
            f"`marketcast data download {ticker.upper()}` first"
        )
    return read_parquet(path, ticker.strip().upper())


@os_errors
def list_store(store: str | Path | None = None) -> pd.DataFrame:
    """``ticker, start, end, rows, source, downloaded``: one row per stored ticker."""
    folder = Path(store).expanduser() if store else default_store()
    rows = []
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        frame, meta = read_parquet(path)
        last = (meta.get("downloads") or [{}])[-1]
        rows.append({
            "ticker": meta.get("ticker", path.stem),
            "start": frame.index.min().date().isoformat() if len(frame) else None,
            "end": frame.index.max().date().isoformat() if len(frame) else None,
            "rows": len(frame),
            "source": meta.get("source"),
            "downloaded": last.get("at"),
        })
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "rows", "source", "downloaded"])


@os_errors
def download(
    tickers: Sequence[str], start: str | None = None, end: str | None = None,
    store: str | Path | None = None, fetch: Fetch | None = None, source: str | None = None,
) -> list[DownloadReport]:
    """Bring each ticker's store file up to date for ``start`` .. ``end`` (inclusive).

    Parameters
    ----------
    tickers : sequence of str
        Ticker symbols, e.g. ``["AAPL", "^GSPC"]``.
    start, end : str, optional
        ISO dates. ``start`` defaults to the stored first day (2000-01-01 for a new
        ticker), ``end`` to today.
    store : path, optional
        Store folder; default :func:`default_store`.
    fetch : callable, optional
        ``fetch(ticker, first_day, last_day) -> frame``; default Yahoo through yfinance.
    source : str, optional
        Name recorded as the source; default names ``fetch``.
    """
    if not tickers:
        raise DataError("name at least one ticker, e.g. `marketcast data download AAPL`")
    paths = [store_file(t, store) for t in tickers]  # every symbol checked before any fetch
    if fetch is None:
        fetch, source = yahoo_fetch, source or _yahoo_source()
    source = source or getattr(fetch, "__name__", "custom fetch")
    first, last = _date(start, "start"), _date(end, "end")
    today = pd.Timestamp(dt.date.today())
    return [_update(t.strip().upper(), p, first, last or today, fetch, source)
            for t, p in zip(tickers, paths, strict=True)]


def missing_ranges(
    stored: pd.DatetimeIndex | None, start: pd.Timestamp, end: pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Day ranges to fetch so the store covers ``start`` .. ``end``; each starts or ends on
    the stored edge day it extends, so a restated history can be noticed."""
    if stored is None or stored.empty:
        return [(start, end)]
    ranges = []
    if start < stored[0]:
        ranges.append((start, stored[0]))
    if end > stored[-1]:
        ranges.append((stored[-1], end))
    return ranges


def _update(ticker: str, path: Path, start: pd.Timestamp | None, end: pd.Timestamp,
            fetch: Fetch, source: str) -> DownloadReport:
    """Read, merge and write ``ticker``'s file under its lock: two downloads of one ticker
    at once take turns, and each keeps the other's rows and log entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path.with_name(f".{path.name}.lock"))
        with lock:
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)  # a killed writer's: writers hold this lock
            return _merge(ticker, path, start, end, fetch, source)
    except OSError as exc:
        raise DataError(f"cannot write to the store {path.parent} ({exc.strerror or exc}); "
                        "pass a writable folder with --store") from None


def _merge(ticker: str, path: Path, start: pd.Timestamp | None, end: pd.Timestamp,
           fetch: Fetch, source: str) -> DownloadReport:
    old, meta = read_parquet(path, ticker) if path.is_file() else (None, {})
    start = start if start is not None else (
        old.index[0] if old is not None and len(old) else pd.Timestamp(DEFAULT_START))
    if start > end:
        raise DataError(f"--start {start.date()} is after --end {end.date()}; swap them")
    ranges = missing_ranges(None if old is None else old.index, start, end)
    if not ranges:
        return _report(ticker, path, old, 0, False)
    new = pd.concat([_clean(fetch(ticker, a, b), ticker) for a, b in ranges])
    new = new[~new.index.duplicated(keep="last")].sort_index()
    refetched = old is not None and _restated(old, new)
    if refetched:
        log.warning("%s: the source restated its history (split or dividend); fetching "
                    "every stored day again", ticker)
        first, last = min(start, old.index[0]), max(end, old.index[-1])
        combined = _clean(fetch(ticker, first, last), ticker)
    elif old is not None:
        combined = pd.concat([old, new[~new.index.isin(old.index)]]).sort_index()
    else:
        combined = new
    if combined.empty:
        raise DataError(
            f"the source returned no prices for {ticker} from {start.date()} to {end.date()}; "
            "check the ticker symbol, the dates and the network connection"
        )
    added = len(combined) - (0 if old is None or refetched else len(old))
    log_entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "start": start.date().isoformat(), "end": end.date().isoformat(),
                 "rows_added": int(added), "refetched": bool(refetched)}
    meta = {"format_version": FORMAT_VERSION, "ticker": ticker, "source": source,
            "downloads": [*meta.get("downloads", []), log_entry][-MAX_LOG:]}
    write_parquet(path, combined, meta)
    return _report(ticker, path, combined, added, refetched)


def _restated(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """True when a day held by both differs in close or adj_close beyond rounding."""
    both = old.index.intersection(new.index)
    for column in ("close", "adj_close"):
        if column in old.columns and column in new.columns and len(both):
            a, b = old.loc[both, column].to_numpy(), new.loc[both, column].to_numpy()
            if np.any(np.abs(a - b) > RESTATE_TOLERANCE * np.abs(a)):
                return True
    return False


def _clean(raw: pd.DataFrame | None, ticker: str) -> pd.DataFrame:
    """A fetched frame -> float columns of :data:`COLUMNS` indexed by a naive ``date``."""
    if raw is None or raw.empty:
        return pd.DataFrame(columns=list(COLUMNS), dtype=np.float64,
                            index=pd.DatetimeIndex([], name="date"))
    frame = raw.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        # yfinance labels columns (Price, Ticker) unless told not to; keep the price level.
        frame.columns = frame.columns.get_level_values(0)
    frame.columns = [normalize_name(c) for c in frame.columns]
    if "close" not in frame.columns:
        raise DataError(f"the download of {ticker} has no close prices "
                        f"(columns: {listed(frame.columns)}); try again later")
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize(None) if index.tz is not None else index
    frame = frame[[c for c in COLUMNS if c in frame.columns]].astype(np.float64)
    frame.index = pd.DatetimeIndex(index.normalize(), name="date")
    frame = frame.dropna(how="all")
    return frame[~frame.index.duplicated(keep="last")].sort_index()


def _report(ticker: str, path: Path, frame: pd.DataFrame | None, added: int,
            refetched: bool) -> DownloadReport:
    has = frame is not None and len(frame) > 0
    return DownloadReport(ticker, path, int(added),
                          frame.index[0].date().isoformat() if has else None,
                          frame.index[-1].date().isoformat() if has else None, refetched)


def _date(value: str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise DataError(f"--{name} {shown(value)} is not a date; use YYYY-MM-DD")
    return stamp.normalize()


def yahoo_fetch(ticker: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Daily prices of ``ticker`` from Yahoo Finance (yfinance), ``start`` to ``end`` inclusive.

    yfinance reports most failures (unknown ticker, no connection) by printing them and
    returning an empty frame; :func:`download` then says no prices came back.
    """
    yf = _yfinance()
    from yfinance.exceptions import YFException

    try:
        with warnings.catch_warnings():
            # yfinance trips pandas deprecation warnings of its own; they are not ours.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return yf.download(
                ticker, start=start.strftime("%Y-%m-%d"),
                # yfinance's end is exclusive.
                end=(end + pd.Timedelta(days=1)).strftime("%Y-%m-%d"), interval="1d",
                auto_adjust=False, actions=False, progress=False, threads=False,
                multi_level_index=False,
            )
    except (OSError, ValueError, RuntimeError, YFException) as exc:
        raise DataError(f"downloading {ticker} failed ({exc}); check the connection and "
                        "the ticker, then try again") from None


def _yahoo_source() -> str:
    from importlib.metadata import version

    _yfinance()  # says how to install it when missing, before anything is fetched
    return f"Yahoo Finance via yfinance {version('yfinance')}"


def _yfinance():
    try:
        import yfinance
    except ImportError:
        raise ConfigError(
            'downloading needs the optional yfinance package: pip install "marketcast[download]"'
        ) from None
    return yfinance
