"""Parquet price files, read as input: any file's dates and number columns, and the store's
own files checked field by field against what the store writes.

A store file (:mod:`marketcast.data.store`) holds the float columns :data:`COLUMNS` and a
timestamp column ``date`` (strictly increasing), and under the Parquet key-value metadata
``marketcast`` the JSON object::

    {"format_version": 1, "ticker": "AAPL", "source": "Yahoo Finance via yfinance 0.2.54",
     "downloads": [{"at": "2025-01-31T14:25:01+00:00", "start": "2000-01-01",
                    "end": "2025-01-31", "rows_added": 6300, "refetched": false}, ...]}

Anything else there (another key, a type, a date that does not parse, a ticker that is no
symbol, a log longer than the store keeps) is one :class:`DataError` naming the file and
the field. The frame is held to the same rules when written and when read: a file the
store writes is one it reads back. NaN (a day the source left blank) stays for the data
contract and ``--fill``; an infinite or negative value, a text column or a repeated or
unsorted date is no download's. Parquet's ``pandas`` metadata is never used: it is
unchecked JSON that pandas would trust.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.data.readers import DATE_NAMES, MAX_COLUMNS, normalize_name
from marketcast.errors import DataError, FieldCheck, shown
from marketcast.files import follow_umask, sync_file

META_KEY = b"marketcast"
FORMAT_VERSION = 1
COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
TICKER = re.compile(r"[A-Za-z0-9^][A-Za-z0-9.^=_-]{0,31}")
# Downloads remembered per ticker; older entries are dropped to keep the footer small.
MAX_LOG = 100
# Longest metadata value read (a full log is about 15 kB) and longest source name.
MAX_META_BYTES = 1 << 20
MAX_SOURCE = 200
META_KEYS = {"format_version", "ticker", "source", "downloads"}
LOG_KEYS = {"at", "start", "end", "rows_added", "refetched"}
# Rows read from one file: 200 years of days for 500 tickers, with room to spare.
MAX_ROWS = 50_000_000
# The column pandas gives an unnamed index it saves.
PANDAS_INDEX = "__index_level_0__"


# What to do about a store file that breaks the rules: read, and about to be written.
READ_ADVICE = "it was edited or not written by marketcast: delete it and download it again"
WRITE_ADVICE = "nothing was written: the source sent what the store does not keep"


class _Fields(FieldCheck):
    """Checks of one store file."""

    def __init__(self, where: object, advice: str = READ_ADVICE):
        super().__init__(where, DataError, advice)

    def day(self, value, field: str, parse=dt.date.fromisoformat) -> None:
        try:
            if not isinstance(value, str) or len(value) > 40:
                raise ValueError
            parse(value)
        except ValueError:
            self.fail(field, f"is {shown(value)}, not an ISO date")


def validate_store_meta(meta: object, where: object, advice: str = READ_ADVICE) -> dict:
    """Check the ``marketcast`` metadata of a store file; return it."""
    check = _Fields(where, advice)
    meta = check.table(meta, f"metadata {META_KEY.decode()!r}", META_KEYS)
    if meta["format_version"] != FORMAT_VERSION or isinstance(meta["format_version"], bool):
        check.fail("format_version", f"is {shown(meta['format_version'])}, not "
                   f"{FORMAT_VERSION}")
    if not isinstance(meta["ticker"], str) or not TICKER.fullmatch(meta["ticker"]):
        check.fail("ticker", f"is {shown(meta['ticker'])}, not a ticker symbol")
    if not isinstance(meta["source"], str) or not 0 < len(meta["source"]) <= MAX_SOURCE:
        check.fail("source", f"is {shown(meta['source'])}, not a name of at most "
                   f"{MAX_SOURCE} characters")
    log = meta["downloads"]
    if not isinstance(log, list) or len(log) > MAX_LOG:
        check.fail("downloads", f"must be a list of at most {MAX_LOG} downloads")
    for i, entry in enumerate(log):
        field = f"downloads[{i}]"
        check.table(entry, field, LOG_KEYS)
        check.day(entry["at"], f"{field}.at", dt.datetime.fromisoformat)
        check.day(entry["start"], f"{field}.start")
        check.day(entry["end"], f"{field}.end")
        added = entry["rows_added"]
        if not isinstance(added, int) or isinstance(added, bool) or not 0 <= added < 10**9:
            check.fail(f"{field}.rows_added", f"is {shown(added)}, not a count of rows")
        if not isinstance(entry["refetched"], bool):
            check.fail(f"{field}.refetched", f"is {shown(entry['refetched'])}, not true "
                       "or false")
    return meta


def check_store_frame(frame: pd.DataFrame, where: object,
                      advice: str = READ_ADVICE) -> pd.DataFrame:
    """The rules of a store file's rows (see the module docstring); return the frame."""
    check = _Fields(where, advice)
    unknown = [c for c in frame.columns if c not in COLUMNS]
    if unknown:
        check.fail(f"column {shown(unknown[0])}", f"is not one of {', '.join(COLUMNS)}")
    if "close" not in frame.columns:
        check.fail("column 'close'", "is missing")
    for name in frame.columns:
        if frame[name].dtype != np.float64:
            check.fail(f"column {name!r}", f"holds {frame[name].dtype} values, not floats")
        values = frame[name].to_numpy()
        if np.isinf(values).any() or (values < 0).any():
            row = int(np.argmax(np.isinf(values) | (values < 0)))
            check.fail(f"column {name!r}", f"holds {values[row]} on "
                       f"{frame.index[row].date()}, not a price (finite, not negative)")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.hasnans:
        check.fail("column 'date'", "holds a value that is not a date")
    if len(index) > 1 and not (np.diff(index.asi8) > 0).all():
        row = int(np.argmax(np.diff(index.asi8) <= 0)) + 1
        check.fail("column 'date'", f"is not strictly increasing ({index[row].date()} "
                   f"follows {index[row - 1].date()})")
    return frame


def read_parquet(path: Path, ticker: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Any Parquet price file: its number columns as floats indexed by ``date``, and our
    metadata (``{}`` for a file the store did not write). A file with our metadata is a
    store file and held to its rules, and to hold ``ticker`` when one is given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:  # the footer first: sizes and metadata
            size = parquet.metadata
            if size.num_columns > MAX_COLUMNS or size.num_rows > MAX_ROWS:
                raise DataError(f"{path} has {size.num_rows:,} rows and {size.num_columns:,} "
                                f"columns, more than the {MAX_ROWS:,} rows or {MAX_COLUMNS:,} "
                                "columns marketcast reads; keep the price columns and days")
            raw = (parquet.schema_arrow.metadata or {}).get(META_KEY)
            meta = None if raw is None else _meta_json(raw, path)
            table = parquet.read()
        # The pandas metadata is not ours: dropped, since pyarrow parses it even when told to
        # ignore it (a crafted one crashed that parser).
        table = table.replace_schema_metadata({
            k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"})
        frame = table.to_pandas(ignore_metadata=True)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet ({shown(str(exc), 200)}); "
                        "download it again") from None
    frame.columns = [normalize_name(c) for c in frame.columns]
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()][0]
        raise DataError(f"{path} has two columns named {shown(dup)}; rename one")
    if meta is None:
        return _foreign_frame(frame, path), {}
    validate_store_meta(meta, path)
    if ticker is not None and meta["ticker"] != ticker:
        _Fields(path).fail("ticker", f"is {shown(meta['ticker'])}, not {ticker}")
    if "date" not in frame.columns or not pd.api.types.is_datetime64_any_dtype(frame["date"]):
        _Fields(path).fail("column 'date'", "is missing or holds no timestamps")
    index = _naive(pd.DatetimeIndex(frame.pop("date")))
    return check_store_frame(frame.set_axis(index), path), meta


def _meta_json(raw: bytes, path: Path) -> object:
    if len(raw) > MAX_META_BYTES:
        _Fields(path).fail(f"metadata {META_KEY.decode()!r}",
                           f"is {len(raw)} bytes, more than {MAX_META_BYTES}")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        _Fields(path).fail(f"metadata {META_KEY.decode()!r}", "is not JSON")


def _foreign_frame(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A file marketcast did not write: its dates, and its number columns as floats (text
    columns dropped, as those of a CSV); the data contract checks the rest."""
    date = next((c for c in (*DATE_NAMES, PANDAS_INDEX) if c in frame.columns), None)
    if date is None:
        raise DataError(f"{path} has no date column (looked for {', '.join(DATE_NAMES)}); "
                        "write it with a 'date' column")
    values = frame.pop(date)
    if not (pd.api.types.is_datetime64_any_dtype(values) or values.dtype == object
            or pd.api.types.is_string_dtype(values)):
        raise DataError(f"{path}: column {date!r} holds {values.dtype} values, not dates; "
                        "write dates or YYYY-MM-DD text")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values, format="mixed"))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path}: column {date!r} holds a value that is not a date "
                        f"({shown(str(exc), 120)}); fix the file") from None
    if index.hasnans:
        raise DataError(f"{path}: column {date!r} has missing dates; drop those rows")
    numeric = frame.select_dtypes("number").astype(np.float64)
    return numeric.set_axis(_naive(index))


def _naive(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = index.tz_convert(None) if index.tz is not None else index
    return pd.DatetimeIndex(index.normalize(), name="date")


def write_parquet(path: Path, frame: pd.DataFrame, meta: dict) -> None:
    """Write a store file through a temporary file and rename: readers never see half a
    file, and never a file the store would refuse to read back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    validate_store_meta(meta, path, WRITE_ADVICE)
    check_store_frame(frame, path, WRITE_ADVICE)
    table = pa.Table.from_pandas(frame.rename_axis("date").reset_index(), preserve_index=False)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        sync_file(Path(tmp))
        follow_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

