"""Date-aware orchestration: frames to arrays, fitting, the test table, the future forecast.

Models see arrays; this module attaches dates to what they return.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from marketcast.calendar import next_trading_days
from marketcast.config import Config
from marketcast.data import load_prices
from marketcast.evaluation.intervals import step_quantiles
from marketcast.models import RUN_MODELS, BaseForecaster, make_model
from marketcast.models.windows import Split, split_rows

if TYPE_CHECKING:  # the training loop imports torch; forecasts do not need it
    from marketcast.nn.train import Callback, Checkpoints

log = logging.getLogger("marketcast")


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


def series_sha256(series: Series) -> str:
    """sha256 of a series' dates, target and features: changed data gives another digest."""
    digest = hashlib.sha256()
    for part in (series.dates.asi8, series.y, series.X):
        if part is not None:
            digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(",".join(series.feature_names).encode())
    return digest.hexdigest()


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
    names=RUN_MODELS, checkpoints: Checkpoints | None = None,
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
    """Long table of forecasts from every cutoff whose targets lie in the test period.

    Each model sees the true history up to its cutoff and nothing after it.
    """
    first = max(split.test_start - 1, 0)
    cutoffs = np.arange(first, len(series.y) - h, dtype=np.int64)
    return forecast_table(models, series, cutoffs, h)


def forecast_table(models, series: Series, cutoffs: np.ndarray, h: int) -> pd.DataFrame:
    """Columns ``model, cutoff, date, step, y, y_hat, y_cutoff``, one row per forecast."""
    steps = np.arange(1, h + 1)
    targets = cutoffs[:, None] + steps[None, :]  # (n, h)
    frames = []
    for name, model in models.items():
        y_hat = model.predict_cutoffs(series.y, series.X, cutoffs, h)
        frames.append(pd.DataFrame({
            "model": name,
            "cutoff": np.repeat(series.dates[cutoffs], h),
            "date": series.dates[targets.ravel()],
            "step": np.tile(steps, len(cutoffs)),
            "y": series.y[targets.ravel()],
            "y_hat": y_hat.ravel(),
            "y_cutoff": np.repeat(series.y[cutoffs], h),
        }))
    return pd.concat(frames, ignore_index=True)


def future_days(series: Series, horizon: int, days: int) -> int:
    """Days a future forecast can cover: ``days``, or only ``horizon`` with extra features.

    A forecast past the horizon recurses on its own output, which needs the future values of
    every input; those of volume or an indicator are unknown, so the forecast stops there.
    """
    if series.X is None or days <= horizon:
        return days
    log.warning(
        "with extra features (%s) the forecast covers --horizon %d day(s), not %d: their "
        "future values are unknown; train with --horizon %d for a %d-day forecast",
        ", ".join(series.feature_names[1:]), horizon, days, days, days,
    )
    return horizon


def future_forecast(models: dict[str, BaseForecaster], series: Series, days: int):
    """Forecast the ``days`` NYSE sessions after the last date: columns date, one per model."""
    out = pd.DataFrame({"date": next_trading_days(series.dates[-1], days)})
    for name, model in models.items():
        out[name] = model.predict(days, series.y, series.X)
    return out


def test_residuals(model: BaseForecaster, series: Series, split: Split, h: int) -> pd.DataFrame:
    """Out-of-sample absolute log residuals per step on the test period: ``step,
    abs_log_residual``. Every cutoff from the day before the test period forecasts ``h``
    days ahead (recursively if need be); steps whose target lies past the data are dropped."""
    cutoffs = np.arange(max(split.test_start - 1, 0), len(series.y) - 1, dtype=np.int64)
    y_hat = model.predict_cutoffs(series.y, series.X, cutoffs, h)  # (n, h)
    targets = cutoffs[:, None] + np.arange(1, h + 1)[None, :]
    known = targets < len(series.y)
    residual = np.abs(np.log(series.y[np.where(known, targets, 0)] / y_hat))
    steps = np.broadcast_to(np.arange(1, h + 1), targets.shape)
    return pd.DataFrame({"step": steps[known], "abs_log_residual": residual[known]})


def add_interval(future: pd.DataFrame, residuals: pd.DataFrame, level: float,
                 model: str = "lstm") -> pd.DataFrame:
    """``<model>_lower`` and ``<model>_upper`` columns from conformal quantiles per step."""
    q = step_quantiles(residuals, level)
    per_day = np.full(len(future), np.inf)
    per_day[: min(len(q), len(future))] = q[: len(future)]
    per_day[~np.isfinite(per_day)] = np.nan
    out = future.copy()
    position = out.columns.get_loc(model) + 1
    out.insert(position, f"{model}_lower", out[model] * np.exp(-per_day))
    out.insert(position + 1, f"{model}_upper", out[model] * np.exp(per_day))
    return out


def wide_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """``date, step, actual, <model>...``: the long table pivoted for people."""
    wide = table.pivot_table(index=["date", "step"], columns="model", values="y_hat",
                             sort=False)
    actual = table.drop_duplicates(["date", "step"]).set_index(["date", "step"])["y"]
    wide.insert(0, "actual", actual.reindex(wide.index))
    wide.columns.name = None
    return wide.reset_index()
