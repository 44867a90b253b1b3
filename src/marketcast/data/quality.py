"""Data quality checks: what looks wrong in a price file, with the dates.

Each check flags dates; nothing is changed. Thresholds were set on the 505 tickers of
``all_stocks_5yr`` (2013-2018) so that the known defects are found and clean tickers stay
quiet; a real crash can still show up as a ``jump``, because one day of prices cannot tell
a spin-off from a collapse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketcast.calendar import nyse_sessions

log = logging.getLogger("marketcast")

CHECKS = {
    "duplicate_dates": "a date appears more than once",
    "missing_sessions": "an NYSE session between the first and last date has no row",
    "non_sessions": "a row falls on a day the NYSE was closed",
    "missing_values": "a price or volume is NaN, or a price is not positive",
    "zero_volume": "volume is 0",
    "ohlc": "high < low, or open or close outside [low, high]",
    "outlier": "the close moves at least 15% and 10 typical moves of the preceding 20 days, "
               "and the next day reverts most of it: a bad print",
    "split": "a one-day close ratio within 3% of 2, 3, 4, 5 or 10 (or 1/2, 1/3...) that does "
             "not revert: probably an unadjusted split",
    "jump": "a one-day move beyond 40% (|log return| > 0.4) that neither reverts nor looks "
            "like a split: an unadjusted spin-off or other corporate action, or a real crash",
    "stale": "the close repeats unchanged on 5 or more consecutive rows",
}
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
OUTLIER_MIN_MOVE = 0.15  # log return
OUTLIER_SIGMAS = 10.0  # robust daily standard deviations of the preceding days
SIGMA_WINDOW = 20
REVERT_SHARE = 0.25  # at most this much of the move left after the next day
SPLIT_RATIOS = (2, 3, 4, 5, 10)
SPLIT_TOLERANCE = 0.03
JUMP_MOVE = 0.4
STALE_RUN = 5
SHOWN_DATES = 10


@dataclass(frozen=True)
class QualityReport:
    """Findings of :func:`check_data`: a long table ``ticker, check, date`` and the
    tickers checked."""

    findings: pd.DataFrame
    tickers: tuple[str, ...]

    def summary(self, shown: int = SHOWN_DATES) -> list[dict]:
        """One row per ticker and failed check: ``ticker, check, count, dates`` (text)."""
        rows = []
        order = {name: i for i, name in enumerate(CHECKS)}
        groups = self.findings.groupby(["ticker", "check"], sort=False)["date"]
        for (ticker, check), dates in sorted(groups, key=lambda g: (g[0][0], order[g[0][1]])):
            text = ", ".join(d.date().isoformat() for d in dates.iloc[:shown])
            if len(dates) > shown:
                text += f" ... +{len(dates) - shown} more"
            rows.append({"ticker": ticker, "check": check, "count": len(dates), "dates": text})
        return rows


def check_prices(frame: pd.DataFrame, price: str | None = None) -> dict[str, pd.DatetimeIndex]:
    """Dates flagged by every check in :data:`CHECKS` (empty when clean).

    Parameters
    ----------
    frame : pandas.DataFrame
        Daily prices indexed by date, in any order; duplicates allowed (they are a finding).
    price : str, optional
        Column for the move-based checks; default ``close``, else the first column.
    """
    frame = frame.sort_index(kind="stable")
    found = {name: pd.DatetimeIndex([], name="date") for name in CHECKS}
    dup = frame.index.duplicated()
    found["duplicate_dates"] = frame.index[dup].unique()
    frame = frame[~dup]
    if frame.empty:
        return found
    sessions = nyse_sessions(frame.index[0], frame.index[-1])
    found["missing_sessions"] = sessions.difference(frame.index)
    found["non_sessions"] = frame.index.difference(sessions)
    prices = frame[[c for c in PRICE_COLUMNS if c in frame.columns]]
    bad = prices.isna() | (prices <= 0)
    if "volume" in frame.columns:
        bad["volume"] = frame["volume"].isna() | (frame["volume"] < 0)
        found["zero_volume"] = frame.index[frame["volume"].to_numpy() == 0]
    found["missing_values"] = frame.index[bad.any(axis=1).to_numpy()]
    if {"open", "high", "low", "close"} <= set(frame.columns):
        found["ohlc"] = frame.index[_ohlc_broken(frame, bad)]
    price = price if price in frame.columns else "close" if "close" in frame.columns \
        else frame.columns[0]
    p = frame[price]
    found.update(_move_checks(p[(p > 0) & np.isfinite(p)]))
    return found


def quality_summary(frame: pd.DataFrame, price: str | None = None) -> dict:
    """JSON-ready ``{check: {"count": n, "dates": [first ISO dates]}}`` for every check."""
    return {
        name: {"count": int(len(dates)),
               "dates": [d.date().isoformat() for d in dates[:SHOWN_DATES]]}
        for name, dates in check_prices(frame, price).items()
    }


def describe(summary: dict) -> str | None:
    """One line naming each failed check with its count and first date, or None if clean."""
    parts = [f"{name} {v['count']} (first {v['dates'][0]})"
             for name, v in summary.items() if v["count"]]
    return ", ".join(parts) or None


def note_quality(frame: pd.DataFrame, price: str | None = None) -> None:
    """Log one note naming the checks the data fails (nothing when it is clean)."""
    line = describe(quality_summary(frame, price))
    if line:
        log.warning("data check: %s; `marketcast data check` lists the dates", line)


def _ohlc_broken(frame: pd.DataFrame, bad: pd.DataFrame) -> np.ndarray:
    o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    # A relative hair of slack: decimal prices stored as floats must not trip the check.
    tol = 1e-9 * np.abs(h)
    broken = (h < lo - tol) | (o > h + tol) | (o < lo - tol) | (c > h + tol) | (c < lo - tol)
    usable = ~bad[["open", "high", "low", "close"]].any(axis=1).to_numpy()
    return broken & usable


def _move_checks(p: pd.Series) -> dict[str, pd.DatetimeIndex]:
    if len(p) < 2:
        return {}
    returns = np.log(p).diff()
    r = returns.to_numpy()
    r_next = np.append(r[1:], np.nan)
    sigma = _recent_sigma(returns)
    with np.errstate(invalid="ignore"):
        size = np.abs(r)
        reverts = (np.sign(r_next) == -np.sign(r)) & (np.abs(r + r_next) <= REVERT_SHARE * size)
        outlier = (size >= np.maximum(OUTLIER_MIN_MOVE, OUTLIER_SIGMAS * sigma)) & reverts
        after_outlier = np.append(False, outlier[:-1])
        ratio = np.exp(r)
        near = np.zeros(len(r), dtype=bool)
        for k in SPLIT_RATIOS:
            for target in (k, 1 / k):
                near |= np.abs(ratio / target - 1) <= SPLIT_TOLERANCE
        split = near & ~outlier & ~after_outlier & ~reverts
        jump = (size > JUMP_MOVE) & ~outlier & ~after_outlier & ~split
    values = p.to_numpy()
    same = np.append(False, values[1:] == values[:-1])
    run_id = np.cumsum(~same)
    run_length = np.bincount(run_id)[run_id]
    stale = same & (run_length >= STALE_RUN)
    index = p.index
    return {"outlier": index[outlier], "split": index[split], "jump": index[jump],
            "stale": index[stale]}


def _recent_sigma(returns: pd.Series) -> np.ndarray:
    """Robust daily volatility of the returns before each day (1.4826 x median |return|).

    Recent, not whole-history: a 15% swing that reverts is a bad print in a calm month but
    an ordinary day in a crash (banks in 2008, everything in March 2020).
    """
    scaled = 1.4826 * returns.abs()
    recent = scaled.shift(1).rolling(SIGMA_WINDOW, min_periods=SIGMA_WINDOW // 3).median()
    return recent.fillna(scaled.median()).fillna(0.0).to_numpy()
