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

import numpy as np

from marketcast.config import Config
from marketcast.data.many import load_many
from marketcast.errors import DataError, MarketcastError
from marketcast.models.windows import Split, WindowTransform
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
        reasons = "; ".join(f"{t}: {why}" for t, why in list(skipped.items())[:3])
        raise DataError(f"no usable ticker in {d.source} ({reasons})")
    return Panel(series, splits, skipped)


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
