"""Causal features: the value on day t uses prices up to and including day t, never after.

A feature name that is a column of the data (``close``, ``volume``, ``open``...) is that
column. Otherwise it is derived from ``p``, the target column (``close`` by default):

=================  ==================================================================
``log_return``     ``log(p_t / p_{t-1})``
``range``          ``(high_t - low_t) / close_t``: the day's range as a share of price
``volatilityN``    standard deviation of the last N daily log returns (``volatility20``)
``rsiN``           Wilder's relative strength index over N days, 0 to 100 (``rsi14``)
``macd``           ``(EMA12(p) - EMA26(p)) / p_t``: the MACD line as a share of price, so
                   it keeps one scale while the price level drifts
``sma_ratioN``     ``p_t / mean(p_{t-N+1} .. p_t)`` (``sma_ratio20``)
=================  ==================================================================

Rolling windows look back only and exponential averages are recursive (pandas
``adjust=False``), which is what makes every feature causal. A derived feature is NaN on its
first days (its warm-up); :func:`marketcast.data.load_prices` computes features on the whole
file before cutting to ``--start``, so the warm-up uses earlier history when there is some.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from marketcast.errors import DataError, listed, shown

# name -> whether it takes a window length N
DERIVED = {"log_return": False, "range": False, "macd": False,
           "volatility": True, "rsi": True, "sma_ratio": True}
MACD_FAST, MACD_SLOW = 12, 26


def derived_features(names: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The names that are not columns of the data and so must be computed (checked)."""
    derived = [n for n in dict.fromkeys(names) if n not in columns]
    for name in derived:
        _parse(name, columns)
    return derived


def add_features(frame: pd.DataFrame, names: Sequence[str], price: str = "close"
                 ) -> pd.DataFrame:
    """``frame`` plus one column per derived feature in ``names`` (columns are kept as they are).

    Parameters
    ----------
    frame : pandas.DataFrame
        Daily prices indexed by date, oldest first.
    names : sequence of str
        Feature names, e.g. ``["close", "volume", "rsi14"]``.
    price : str
        Column the price-based features are computed from (the target).

    Returns
    -------
    pandas.DataFrame
        A new frame; a derived column holds NaN on its warm-up days.
    """
    new = {}
    for name in derived_features(names, frame.columns):
        new[name] = compute_feature(frame, name, price)
    return frame.assign(**new) if new else frame


def compute_feature(frame: pd.DataFrame, name: str, price: str = "close") -> pd.Series:
    """One derived feature as a series aligned with ``frame``."""
    base, n = _parse(name, frame.columns)
    if base == "range":
        missing = [c for c in ("high", "low", "close") if c not in frame.columns]
        if missing:
            raise DataError(f"feature 'range' needs high, low and close; the data lacks "
                            f"{', '.join(missing)}. Drop 'range' from --features")
        return (frame["high"] - frame["low"]) / frame["close"]
    if price not in frame.columns:
        raise DataError(f"feature {shown(name)} is computed from {shown(price)}, which the "
                        "data lacks")
    p = frame[price]
    returns = np.log(p / p.shift(1))
    if base == "log_return":
        return returns
    if base == "volatility":
        return returns.rolling(n, min_periods=n).std()
    if base == "sma_ratio":
        return p / p.rolling(n, min_periods=n).mean()
    if base == "macd":
        fast = p.ewm(span=MACD_FAST, adjust=False, min_periods=MACD_SLOW).mean()
        slow = p.ewm(span=MACD_SLOW, adjust=False, min_periods=MACD_SLOW).mean()
        return (fast - slow) / p
    return _rsi(p, n)


def _rsi(p: pd.Series, n: int) -> pd.Series:
    """Wilder's RSI: exponential averages of gains and losses with alpha = 1/n."""
    change = p.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100 - 100 / (1 + gain / loss)
    # No losses at all: RSI is 100; no moves at all: neutral 50.
    rsi = rsi.mask((loss == 0) & (gain > 0), 100.0).mask((loss == 0) & (gain == 0), 50.0)
    return rsi


def _parse(name: str, columns: Sequence[str]) -> tuple[str, int | None]:
    match = re.fullmatch(r"([a-z_]+?)(\d+)?", name)
    base, digits = (match.group(1), match.group(2)) if match else (name, None)
    windowed = DERIVED.get(base)
    if windowed is None or windowed != (digits is not None) or (digits and int(digits) < 2):
        raise DataError(
            f"feature {shown(name)} is neither a column of the data ({listed(columns)}) nor a "
            "derived feature (log_return, range, volatilityN, rsiN, macd, sma_ratioN with "
            "N >= 2, e.g. rsi14); fix --features"
        )
    return base, int(digits) if digits else None
