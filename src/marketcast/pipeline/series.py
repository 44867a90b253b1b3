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
from marketcast.evaluation.intervals import ewma_volatility, step_quantiles
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


def load_series(config: Config, source=None) -> tuple[pd.DataFrame, Series]:
    """Load and validate the configured data (or ``source`` instead of the configured one:
    a path, or prices in memory as :func:`~marketcast.data.load_prices` takes them)."""
    d = config.data
    frame = load_prices(
        d.source if source is None else source, ticker=d.ticker, start=d.start, end=d.end,
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
    abs_log_residual, volatility`` (the EWMA volatility known at the forecast's cutoff).
    Every cutoff from the day before the test period forecasts ``h`` days ahead
    (recursively if need be); steps whose target lies past the data are dropped."""
    cutoffs = np.arange(max(split.test_start - 1, 0), len(series.y) - 1, dtype=np.int64)
    y_hat = model.predict_cutoffs(series.y, series.X, cutoffs, h)  # (n, h)
    targets = cutoffs[:, None] + np.arange(1, h + 1)[None, :]
    known = targets < len(series.y)
    residual = np.abs(np.log(series.y[np.where(known, targets, 0)] / y_hat))
    steps = np.broadcast_to(np.arange(1, h + 1), targets.shape)
    sigma = ewma_volatility(series.dates, series.y).to_numpy()[cutoffs]
    sigma = np.broadcast_to(sigma[:, None], targets.shape)
    return pd.DataFrame({"step": steps[known], "abs_log_residual": residual[known],
                         "volatility": sigma[known]})


def add_interval(future: pd.DataFrame, residuals: pd.DataFrame, level: float,
                 model: str = "lstm", volatility: float | None = None) -> pd.DataFrame:
    """``<model>_lower`` and ``<model>_upper`` columns from conformal quantiles per step.

    With ``volatility`` (the EWMA daily volatility at the last date) and residuals that
    carry the volatility at their cutoffs, the quantiles are those of the residuals over
    ``volatility_at_cutoff * sqrt(step)``, scaled back by ``volatility * sqrt(step)``: the
    fan widens by the EWMA's term structure. RiskMetrics' EWMA is an integrated GARCH
    whose variance forecast is flat per day, so its ``k``-day variance is ``k`` times
    today's: ``sqrt(step)``, the same normalisation the intervals were calibrated and
    backtested with (a GARCH term structure here would be a different interval from the
    one judged). The fan is kept non-decreasing in step: no price ``k + 1`` days ahead is
    more certain than ``k`` days ahead under any of these models.
    """
    if volatility is None or "volatility" not in residuals.columns:
        q = step_quantiles(residuals, level)
    else:
        steps = residuals["step"].to_numpy(float)
        scores = residuals.assign(abs_log_residual=residuals["abs_log_residual"]
                                  / (residuals["volatility"] * np.sqrt(steps)))
        q = step_quantiles(scores.dropna(subset=["abs_log_residual"]), level)
        q = np.maximum.accumulate(q * volatility * np.sqrt(np.arange(1, len(q) + 1)))
    per_day = np.full(len(future), np.inf)
    per_day[: min(len(q), len(future))] = q[: len(future)]
    per_day[~np.isfinite(per_day)] = np.nan
    out = future.copy()
    position = out.columns.get_loc(model) + 1
    out.insert(position, f"{model}_lower", out[model] * np.exp(-per_day))
    out.insert(position + 1, f"{model}_upper", out[model] * np.exp(per_day))
    return out


def fan_settings(intervals, series: Series, level: float, model: str = "lstm") -> dict:
    """How the forecast fan is drawn, from the test period's ``intervals``
    (:class:`~marketcast.evaluation.adaptive.Intervals`, or None): ``method``, ``level`` and
    ``volatility`` (the EWMA volatility at the last date; None for plain conformal). After
    ``aci``, the level is the one ACI had reached at the last test cutoff of ``model``."""
    method = intervals.method if intervals is not None else "conformal"
    if method == "conformal":
        return {"method": method, "level": level, "volatility": None}
    sigma = float(ewma_volatility(series.dates, series.y).iloc[-1])
    if method == "aci":
        rows = intervals.table[(intervals.table["model"] == model)
                               & (intervals.table["step"] == 1)].dropna(subset=["alpha_t"])
        if len(rows):
            level = 1.0 - float(rows.sort_values("cutoff")["alpha_t"].iloc[-1])
    return {"method": method, "level": level, "volatility": sigma}


def wide_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """``date, step, actual, <model>...``: the long table pivoted for people."""
    wide = table.pivot_table(index=["date", "step"], columns="model", values="y_hat",
                             sort=False)
    actual = table.drop_duplicates(["date", "step"]).set_index(["date", "step"])["y"]
    wide.insert(0, "actual", actual.reindex(wide.index))
    wide.columns.name = None
    return wide.reset_index()
