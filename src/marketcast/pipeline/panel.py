"""Many tickers at once: a long multi-ticker file read once, and one pooled window array.

A *panel* is a dict of per-ticker :class:`~marketcast.pipeline.series.Series`, each validated by
:func:`marketcast.data.validate_prices` and long enough for the split; tickers that are not
are recorded in ``skipped`` with the reason, never silently dropped.

Pooling for the global model (:func:`marketcast.models.windows.pool_series`): each ticker's
inputs are scaled by its own transform, fitted on that ticker's training rows only, and the
scaled rows *before its test period* are concatenated into one ``(N, F)`` float32 array.
Window cutoffs are global row indices into that array; each ticker's cutoffs stay inside its
own block, so no window crosses a ticker boundary and no window is ever copied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marketcast.config import Config
from marketcast.data.many import load_many
from marketcast.errors import SHOWN, DataError, MarketcastError
from marketcast.models.windows import Pooled, Split, pool_series
from marketcast.pipeline.series import Series, series_from_frame, split_series

log = logging.getLogger("marketcast")



@dataclass
class Panel:
    """Validated series per ticker (file order), their splits, and the tickers left out."""

    series: dict[str, Series]
    splits: dict[str, Split]
    skipped: dict[str, str]  # ticker -> why it was left out

    @property
    def tickers(self) -> list[str]:
        return list(self.series)


def parse_tickers(tickers: Sequence[str]) -> list[str] | None:
    """``("all",)`` -> None (every ticker); otherwise the upper-cased, de-duplicated list."""
    names = [t.strip().upper() for t in tickers if t.strip()]
    if not names:
        raise DataError("--tickers is empty; pass `all` or a comma-separated list")
    if "ALL" in names:
        return None
    return list(dict.fromkeys(names))


def load_panel(config: Config, tickers: Sequence[str] | None = None) -> Panel:
    """Every requested ticker of ``config.data.source``, validated and split.

    Each ticker is read exactly as ``run --ticker`` reads it (:func:`marketcast.data.load_many`);
    ``tickers`` None takes every ticker of the source. A requested ticker missing from the
    source, failing the data contract, or too short for the split is recorded in ``skipped``.
    Raises :class:`DataError` when no ticker is usable.
    """
    d = config.data
    frames, skipped = load_many(d.source, tickers, start=d.start, end=d.end,
                                date_column=d.date_column, target=d.target,
                                features=d.features, fill=d.fill)
    series, splits = {}, {}
    for ticker, frame in frames.items():
        one = series_from_frame(frame, d.target, d.features)
        try:
            splits[ticker] = split_series(one, config)
        except MarketcastError as exc:
            skipped[ticker] = str(exc)
            continue
        series[ticker] = one
    if not series:
        reasons = "; ".join(f"{t}: {why}"[:SHOWN * 3] for t, why in list(skipped.items())[:3])
        raise DataError(f"no usable ticker in {d.source} ({reasons})")
    return Panel(series, splits, skipped)


def pool(panel: Panel, config: Config) -> Pooled:
    """Each ticker's rows before its test period, scaled on its own training rows and
    stacked (:func:`marketcast.models.windows.pool_series`), in ``panel.tickers`` order."""
    m = config.model
    return pool_series(list(fit_inputs(panel).values()), m.lookback, m.horizon,
                       m.target_transform)


def fit_inputs(panel: Panel) -> dict[str, tuple[np.ndarray, np.ndarray | None, int]]:
    """``{ticker: (y, X, n_val)}``: the rows before each ticker's test period."""
    out = {}
    for ticker, one in panel.series.items():
        split = panel.splits[ticker]
        seen = one.head(split.test_start)
        out[ticker] = (seen.y, seen.X, split.n_val)
    return out
