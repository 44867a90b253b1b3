"""Date-aware orchestration: frames to arrays, fitting, the test table, the future forecast.

Models see arrays; this module attaches dates to what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from marketcast.calendar import next_trading_days
from marketcast.config import Config
from marketcast.data import load_prices
from marketcast.models import MODELS, BaseForecaster, make_model
from marketcast.train import Callback
from marketcast.windows import Split, split_rows

if TYPE_CHECKING:
    from marketcast.checkpoint import CheckpointStore


@dataclass(frozen=True)
class Series:
    """The arrays models see, with the dates that belong to them."""

    dates: pd.DatetimeIndex
    y: np.ndarray  # (T,) target prices
    X: np.ndarray | None  # (T, F-1) extra features, or None
    feature_names: tuple[str, ...]  # target first

    def head(self, rows: int) -> Series:
        X = None if self.X is None else self.X[:rows]
        return Series(self.dates[:rows], self.y[:rows], X, self.feature_names)


def load_series(config: Config, source: str | None = None) -> tuple[pd.DataFrame, Series]:
    """Load and validate the configured data (or ``source`` instead of the configured one)."""
    d = config.data
    frame = load_prices(
        source or d.source, ticker=d.ticker, start=d.start, end=d.end,
        date_column=d.date_column, target=d.target, features=d.features, fill=d.fill,
    )
    return frame, series_from_frame(frame, d.target, d.features)


def series_from_frame(frame: pd.DataFrame, target: str, features) -> Series:
    extra = [f for f in dict.fromkeys(features) if f != target]
    X = frame[extra].to_numpy(np.float64) if extra else None
    return Series(frame.index, frame[target].to_numpy(np.float64), X, (target, *extra))


def split_series(series: Series, config: Config) -> Split:
    offset = 1 if config.model.target_transform == "log_return" else 0
    return split_rows(series.dates, config.split, config.model.lookback, config.model.horizon,
                      offset)


def fit_models(
    series: Series, split: Split, config: Config, callback: Callback | None = None,
    names=MODELS, checkpoints: CheckpointStore | None = None,
) -> dict[str, BaseForecaster]:
    """Fit each model on the rows before the test period (validation rows held out).

    ``callback`` and ``checkpoints`` go to the LSTM's training loop.
    """
    seen = series.head(split.test_start)
    models = {}
    for name in names:
        model = make_model(name, config)
        if name == "lstm":
            model.fit(seen.y, seen.X, n_val=split.n_val, callback=callback,
                      checkpoints=checkpoints)
        else:
            model.fit(seen.y, seen.X, n_val=split.n_val)
        models[name] = model
    return models


def test_table(models: dict[str, BaseForecaster], series: Series, split: Split, h: int):
    """Long table of forecasts from every origin whose targets lie in the test period.

    Each model sees the true history up to its origin and nothing after it.
    """
    first = max(split.test_start - 1, 0)
    origins = np.arange(first, len(series.y) - h, dtype=np.int64)
    return forecast_table(models, series, origins, h)


def forecast_table(models, series: Series, origins: np.ndarray, h: int) -> pd.DataFrame:
    """Columns ``model, cutoff, date, step, y, y_hat, y_cutoff``, one row per forecast."""
    steps = np.arange(1, h + 1)
    targets = origins[:, None] + steps[None, :]  # (n, h)
    frames = []
    for name, model in models.items():
        y_hat = model.predict_origins(series.y, series.X, origins, h)
        frames.append(pd.DataFrame({
            "model": name,
            "cutoff": np.repeat(series.dates[origins], h),
            "date": series.dates[targets.ravel()],
            "step": np.tile(steps, len(origins)),
            "y": series.y[targets.ravel()],
            "y_hat": y_hat.ravel(),
            "y_cutoff": np.repeat(series.y[origins], h),
        }))
    return pd.concat(frames, ignore_index=True)


def future_forecast(models: dict[str, BaseForecaster], series: Series, days: int):
    """Forecast the ``days`` NYSE sessions after the last date: columns date, one per model."""
    out = pd.DataFrame({"date": next_trading_days(series.dates[-1], days)})
    for name, model in models.items():
        out[name] = model.predict(days, series.y, series.X)
    return out


def wide_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """``date, step, actual, <model>...``: the long table pivoted for people."""
    wide = table.pivot_table(index=["date", "step"], columns="model", values="y_hat",
                             sort=False)
    actual = table.drop_duplicates(["date", "step"]).set_index(["date", "step"])["y"]
    wide.insert(0, "actual", actual.reindex(wide.index))
    wide.columns.name = None
    return wide.reset_index()
