"""Where prices come from and how a file is laid out.

Sources: the built-in ``sp500``, ``store:TICKER`` (the local download store), a Parquet file,
a CSV file, or a folder of per-ticker files. CSV layouts:

- *single*: one ticker, a date column and price columns (Yahoo, Stooq, generic);
- *long*: many tickers stacked, with a ``ticker``/``Name``/``symbol`` column;
- *wide*: one column per ticker (adjusted closes); ``--ticker AAPL`` makes that column
  ``close``, trimmed to the days the ticker has values.

A folder holds one file per ticker, named after it (``AAPL.csv``, ``AAPL_data.csv``,
``aapl.us.txt``, ``AAPL.parquet``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from marketcast.data import store
from marketcast.data.readers import (
    find_date_column,
    normalize_name,
    read_table,
    ticker_column,
    to_frame,
)
from marketcast.errors import DataError, NotMultiTicker, os_errors

BUILTIN_SOURCES = ("sp500",)
# sp500 is 1999-2018; the default job uses the post-crisis decade.
BUILTIN_DEFAULT_START = {"sp500": "2010-01-01"}
STORE_PREFIX = "store:"
FOLDER_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".parquet")
# A file with one of these columns holds one ticker's prices, not one column per ticker.
PRICE_NAMES = ("close", "adj_close", "open", "high", "low", "price")


# Frames already read, by (source, TICKER): see :func:`preloaded`.
_PRELOADED: dict[tuple[str, str], pd.DataFrame] = {}


@contextlib.contextmanager
def preloaded(source: str, frames: dict[str, pd.DataFrame]) -> Iterator[None]:
    """Within the block, :func:`read_source` of a ticker of ``source`` returns its frame in
    ``frames`` (``{ticker: frame}`` as :func:`read_many` reads them) instead of reading the
    source again: a batch job's rows, read once by the driver."""
    keys = {(source, ticker.strip().upper()): frame for ticker, frame in frames.items()}
    _PRELOADED.update(keys)
    try:
        yield
    finally:
        for key in keys:
            _PRELOADED.pop(key, None)


def read_source(
    source: str, *, ticker: str | None = None, date_column: str | None = None,
    strict: Sequence[str] = (),
) -> pd.DataFrame:
    """One ticker's prices as a float frame indexed by date, not yet checked or sorted.

    ``strict`` names columns in which text (rather than a number) is an error.
    """
    if ticker is not None and (source, ticker.strip().upper()) in _PRELOADED:
        return _PRELOADED[(source, ticker.strip().upper())].copy()
    if source in BUILTIN_SOURCES:
        if ticker is not None or date_column is not None:
            flag = "--ticker" if ticker is not None else "--date-column"
            raise DataError(f"--data {source} is one built-in series; {flag} applies to a "
                            f"file: drop {flag}, or pass --data FILE")
        return _read_builtin(source)
    if source.startswith(STORE_PREFIX):
        name = source[len(STORE_PREFIX):]
        if not name:
            raise DataError("--data store: needs a ticker, e.g. --data store:AAPL")
        if ticker is not None and ticker.strip().upper() != name.strip().upper():
            raise DataError(f"--data {source} already names the ticker; drop --ticker {ticker}")
        return store.read_stored(name)[0]
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_folder_file(path, ticker, date_column, strict)
    if path.name.lower().endswith(".parquet"):
        return _no_ticker_column(store.read_parquet(path)[0], ticker, path)
    return _pick(read_table(path), ticker, path, date_column, strict)


def read_all(source: str, *, date_column: str | None = None) -> dict[str, pd.DataFrame]:
    """Every ticker of a source as ``{ticker: frame}``; a single-ticker source gives one."""
    frames, errors = read_many(source, date_column=date_column)
    if errors:
        raise DataError(next(iter(errors.values())))
    return frames


def read_many(
    source: str, tickers: Sequence[str] | None = None, *, date_column: str | None = None,
    strict: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The frames of ``tickers`` (None: every one) of a single, long, wide or folder source,
    read once, and why each ticker that could not be read was not.

    Tickers match case-insensitively and are returned as asked (upper-cased when None); each
    one is read exactly as :func:`read_source` reads it alone (``strict`` columns refuse
    text). A requested ticker missing from the source is in the errors.
    """
    if source in BUILTIN_SOURCES or source.startswith(STORE_PREFIX):
        texts = {source.removeprefix(STORE_PREFIX).upper(): lambda: read_source(source)}
    else:
        texts = _ticker_readers(Path(source).expanduser(), date_column, strict)
    wanted = list(texts) if tickers is None else [t.strip().upper() for t in tickers]
    frames, errors = {}, {}
    for ticker in wanted:
        if ticker not in texts:
            errors[ticker] = f"not in {source}"
            continue
        try:
            frames[ticker] = texts[ticker]()
        except DataError as exc:
            errors[ticker] = str(exc)
    return frames, errors


def _ticker_readers(path: Path, date_column: str | None, strict: Sequence[str]) -> dict:
    """``{TICKER: () -> frame}`` for every ticker of a file or folder (upper-cased names)."""
    if path.is_dir():
        return {label.upper(): (lambda f=file: _read_one_file(f, date_column, strict))
                for label, file in _folder_files(path).items()}
    if path.name.lower().endswith(".parquet"):
        return {_file_label(path).upper(): lambda: store.read_parquet(path)[0]}
    raw = read_table(path)
    col = ticker_column(raw)
    if col is not None:
        names = raw[col].fillna("").str.strip().str.upper()
        groups = raw.drop(columns=col).groupby(names.to_numpy(), sort=False)
        return {str(t): (lambda rows=rows: to_frame(rows.reset_index(drop=True), path,
                                                    date_column, strict))
                for t, rows in groups}
    if any(name in raw.columns for name in PRICE_NAMES):
        return {_file_label(path).upper(): lambda: to_frame(raw, path, date_column, strict)}
    date_col = find_date_column(raw, date_column, path)
    return {c.upper(): (lambda c=c: _trim(to_frame(raw[[date_col, c]], path, date_col,
                                                    (c,) if "close" in strict else ())
                                           .rename(columns={c: "close"})))
            for c in raw.columns if c != date_col}


def ticker_names(source: str, *, date_column: str | None = None) -> list[str]:
    """The (upper-cased) tickers of a source, without reading anyone's prices."""
    if source in BUILTIN_SOURCES or source.startswith(STORE_PREFIX):
        return [source.removeprefix(STORE_PREFIX).upper()]
    return [t for t in _ticker_readers(Path(source).expanduser(), date_column, ()) if t]


@os_errors
def list_tickers(source: str, *, date_column: str | None = None) -> pd.DataFrame:
    """``ticker, start, end, rows``: one row per ticker of a source."""
    rows = [
        {"ticker": ticker, "start": frame.index.min().date().isoformat(),
         "end": frame.index.max().date().isoformat(), "rows": len(frame)}
        for ticker, frame in sorted(read_all(source, date_column=date_column).items())
        if len(frame)
    ]
    return pd.DataFrame(rows, columns=["ticker", "start", "end", "rows"])


def _read_builtin(source: str) -> pd.DataFrame:
    from arch.data import sp500

    frame = sp500.load()
    frame.columns = [normalize_name(c) for c in frame.columns]
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return frame


def _pick(raw: pd.DataFrame, ticker: str | None, path: Path, date_column: str | None,
          strict: Sequence[str]) -> pd.DataFrame:
    """The frame of ``ticker`` from a single, long or wide table."""
    col = ticker_column(raw)
    if col is not None:
        return to_frame(_pick_long(raw, col, ticker, path), path, date_column, strict)
    if ticker is None:
        return to_frame(raw, path, date_column, strict)
    name = normalize_name(ticker)
    if name not in raw.columns or name in PRICE_NAMES:
        raise NotMultiTicker(
            f"--ticker {ticker} given but {path} has neither a ticker/Name/symbol column nor "
            f"a column named {ticker}; drop --ticker for a single-ticker file"
        )
    date_col = find_date_column(raw, date_column, path)
    frame = to_frame(raw[[date_col, name]], path, date_col, (name,) if "close" in strict else ())
    return _trim(frame.rename(columns={name: "close"}))


def _pick_long(raw: pd.DataFrame, col: str, ticker: str | None, path: Path) -> pd.DataFrame:
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
        raise DataError(
            f"ticker {ticker!r} not in {path}{hint}; `marketcast data list --data {path}` "
            "lists them"
        )
    return raw.loc[keep].drop(columns=col).reset_index(drop=True)


def _trim(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the days from a ticker's first to its last value (listing to delisting)."""
    valid = frame.index[frame["close"].notna()]
    if valid.empty:
        return frame.iloc[:0]
    return frame[(frame.index >= valid.min()) & (frame.index <= valid.max())]


def _no_ticker_column(frame: pd.DataFrame, ticker: str | None, path: Path) -> pd.DataFrame:
    if ticker is not None and ticker.upper() != _file_label(path).upper():
        raise DataError(f"{path} holds {_file_label(path)}, not {ticker}; drop --ticker")
    return frame


def _folder_files(folder: Path) -> dict[str, Path]:
    """``{ticker: file}`` for the price files of a folder, ticker taken from the name."""
    files = {}
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.name.lower().endswith(FOLDER_SUFFIXES):
            label = _file_label(file)
            if label.upper() in (k.upper() for k in files):
                raise DataError(f"{folder} holds two files for {label}; keep one")
            files[label] = file
    if not files:
        raise DataError(
            f"folder {folder} holds no price files ({', '.join(FOLDER_SUFFIXES)}); "
            "pass a folder of per-ticker files or a single file"
        )
    return files


def _file_label(path: Path) -> str:
    """Ticker named by a file: ``AAPL_data.csv`` and ``AAPL.csv.gz`` are both AAPL."""
    name = path.name
    for suffix in sorted(FOLDER_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.split("_", 1)[0] or name


def _read_folder_file(folder: Path, ticker: str | None, date_column: str | None,
                      strict: Sequence[str]) -> pd.DataFrame:
    files = _folder_files(folder)
    if ticker is None:
        if len(files) > 1:
            shown = ", ".join(list(files)[:8])
            raise DataError(
                f"folder {folder} holds {len(files)} tickers ({shown}, ...); pass --ticker"
            )
        (file,) = files.values()
    else:
        matches = [f for label, f in files.items() if label.upper() == ticker.strip().upper()]
        if not matches:
            raise DataError(
                f"no file for ticker {ticker!r} in {folder}; "
                f"`marketcast data list --data {folder}` lists them"
            )
        file = matches[0]
    return _read_one_file(file, date_column, strict)


def _read_one_file(file: Path, date_column: str | None, strict: Sequence[str] = ()):
    if file.name.lower().endswith(".parquet"):
        return store.read_parquet(file)[0]
    return _pick(read_table(file), None, file, date_column, strict)
