"""Many tickers at once: a long multi-ticker file read once, and one pooled window array.

A *panel* is a dict of per-ticker :class:`~marketcast.pipeline.series.Series`, each validated by
:func:`marketcast.data.validate_prices` and long enough for the split; tickers that are not
are recorded in ``skipped`` with the reason, never silently dropped.

Pooling for the global model: each ticker's inputs are scaled by its own
:class:`~marketcast.models.windows.WindowTransform`, fitted on that ticker's training rows only, and
the scaled rows *before its test period* are concatenated into one ``(N, F)`` float32 array.
Window origins are global row indices into that array; each ticker's origins stay inside its
own block, so no window crosses a ticker boundary and no window is ever copied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.config import Config
from marketcast.data import validate_prices
from marketcast.data.load import parse_date, prepare_frame
from marketcast.data.readers import DATE_NAMES, TICKER_NAMES
from marketcast.errors import DataError, MarketcastError
from marketcast.models.windows import Split, WindowTransform
from marketcast.pipeline.series import Series, series_from_frame, split_series

log = logging.getLogger("marketcast")

# What pandas reads as missing by default; kept for every column but the ticker's.
NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


@dataclass
class Panel:
    """Validated series per ticker (file order), their splits, and the tickers left out."""

    series: dict[str, Series]
    splits: dict[str, Split]
    skipped: dict[str, str]  # ticker -> why it was left out

    @property
    def tickers(self) -> list[str]:
        return list(self.series)


@dataclass
class Pooled:
    """Scaled rows before each ticker's test period, stacked into one array.

    ``Z`` is (N, F) float32; ticker ``k`` owns rows ``starts[k]:starts[k+1]``.
    ``train_origins`` and ``val_origins`` are global row indices (int64).
    """

    Z: np.ndarray
    starts: np.ndarray
    transforms: dict[str, WindowTransform]
    train_origins: np.ndarray
    val_origins: np.ndarray


def parse_tickers(tickers: Sequence[str]) -> list[str] | None:
    """``("all",)`` -> None (every ticker); otherwise the upper-cased, de-duplicated list."""
    names = [t.strip().upper() for t in tickers if t.strip()]
    if not names:
        raise DataError("--tickers is empty; pass `all` or a comma-separated list")
    if "ALL" in names:
        return None
    return list(dict.fromkeys(names))


def read_long(source: str | Path) -> tuple[pd.DataFrame, str]:
    """Read a long file (one row per ticker and day) once; return it with its ticker column.

    Column names are lower-cased; the date column is parsed and named ``date``.
    """
    path = Path(source)
    if not path.is_file():
        raise DataError(f"data file {path} not found; pass the path of a long multi-ticker CSV")
    try:
        header = pd.read_csv(path, nrows=0).columns
        # Ticker names are text: "NA" (Nasdaq's ticker) or "NULL" must not become NaN.
        names = [c for c in header if str(c).strip().lower().replace(" ", "_") in TICKER_NAMES]
        raw = pd.read_csv(path, dtype={c: str for c in names}, keep_default_na=False,
                          na_values={c: NA_STRINGS for c in header if c not in names})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path} is not a readable CSV ({exc}); check the file") from None
    raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
    ticker_col = next((c for c in TICKER_NAMES if c in raw.columns), None)
    date_col = next((c for c in DATE_NAMES if c in raw.columns), None)
    if ticker_col is None or date_col is None:
        raise DataError(
            f"{path} is not a long multi-ticker file: it needs a date column and a "
            f"ticker/Name/symbol column; it has {', '.join(raw.columns)}"
        )
    dates = pd.to_datetime(raw[date_col], errors="coerce")
    if dates.isna().any():
        row = int(np.argmax(dates.isna().to_numpy()))
        raise DataError(f"{path}: cannot read {raw[date_col].iloc[row]!r} as a date "
                        f"(data row {row + 1}); use ISO dates")
    raw[date_col] = dates
    return raw.rename(columns={date_col: "date"}), ticker_col


def load_panel(config: Config, tickers: Sequence[str] | None = None) -> Panel:
    """Every requested ticker of the long file ``config.data.source``, validated and split.

    ``tickers`` None takes every ticker in the file. A requested ticker missing from the
    file, failing the data contract, or too short for the split is recorded in ``skipped``.
    Raises :class:`DataError` when no ticker is usable.
    """
    d = config.data
    raw, ticker_col = read_long(d.source)
    names = raw[ticker_col].astype(str).str.strip().str.upper()
    groups = {name: rows for name, rows in raw.groupby(names, sort=False).groups.items()}
    unnamed = groups.pop("", None)
    wanted = list(groups) if tickers is None else list(tickers)
    parse_date(d.start, "start"), parse_date(d.end, "end")  # a bad date fails every ticker
    notes = _OncePerKind()
    log.addFilter(notes)
    try:
        series, splits, skipped = _load_tickers(raw, groups, wanted, ticker_col, config)
    finally:
        log.removeFilter(notes)
        notes.say()
    if unnamed is not None:
        skipped["(no ticker)"] = f"{len(unnamed)} rows of {d.source} have an empty ticker"
    if not series:
        reasons = "; ".join(f"{t}: {why}" for t, why in list(skipped.items())[:3])
        raise DataError(f"no usable ticker in {d.source} ({reasons})")
    return Panel(series, splits, skipped)


def _load_tickers(raw, groups, wanted, ticker_col, config) -> tuple[dict, dict, dict]:
    """Each wanted ticker validated and split (series, splits), or why not (skipped)."""
    d = config.data
    numeric = [c for c in raw.columns if c not in ("date", ticker_col)]
    series, splits, skipped = {}, {}, {}
    for ticker in wanted:
        if ticker not in groups:
            skipped[ticker] = f"not in {d.source}"
            continue
        rows = raw.loc[groups[ticker]]
        frame = rows[numeric].apply(pd.to_numeric, errors="coerce")
        frame.index = pd.DatetimeIndex(rows["date"], name="date")
        try:
            frame = prepare_frame(frame, target=d.target, features=d.features, start=d.start,
                                  end=d.end)
            frame = validate_prices(frame, target=d.target, features=d.features, fill=d.fill)
            one = series_from_frame(frame, d.target, d.features)
            splits[ticker] = split_series(one, config)
            series[ticker] = one
        except MarketcastError as exc:
            skipped[ticker] = str(exc)
    return series, splits, skipped


class _OncePerKind(logging.Filter):
    """Holds back the per-ticker data notes (dates sorted, warm-up days dropped); ``say``
    then logs each kind once, with the number of tickers it concerned."""

    def __init__(self):
        super().__init__()
        self.kinds: dict[str, list[logging.LogRecord]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        self.kinds.setdefault(str(record.msg), []).append(record)
        return False

    def say(self) -> None:
        for records in self.kinds.values():
            more = f" (and {len(records) - 1} more tickers)" if len(records) > 1 else ""
            log.warning("%s%s", records[0].getMessage(), more)


def pool(panel: Panel, config: Config) -> Pooled:
    """Scale each ticker on its own training rows and stack the rows before its test period.

    Memory: one float32 array of (rows before test, summed over tickers) x F, plus the
    origin index arrays; windows are gathered per batch by :func:`marketcast.nn.train.fit_network`.
    """
    m = config.model
    blocks, transforms, train, val = [], {}, [], []
    start = 0
    starts = [0]
    for ticker, one in panel.series.items():
        split = panel.splits[ticker]
        seen = one.head(split.test_start)
        transform = WindowTransform(m.lookback, m.horizon, m.target_transform)
        transform.fit(seen.y, seen.X, n_train=split.n_train)
        blocks.append(transform.inputs(seen.y, seen.X))
        transforms[ticker] = transform
        train.append(transform.origins(0, split.n_train) + start)
        if split.n_val:
            val.append(transform.origins(split.n_train, split.test_start) + start)
        start += split.test_start
        starts.append(start)
    empty = np.empty(0, dtype=np.int64)
    return Pooled(
        Z=np.concatenate(blocks),
        starts=np.asarray(starts, dtype=np.int64),
        transforms=transforms,
        train_origins=np.concatenate(train) if train else empty,
        val_origins=np.concatenate(val) if val else empty,
    )
