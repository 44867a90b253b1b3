"""Split-conformal prediction intervals from out-of-sample residuals, per horizon step.

Residuals are log ratios ``log(y / y_hat)``, so an interval scales with the price level:
``[y_hat * exp(-q), y_hat * exp(q)]`` where ``q`` is the conformal quantile of the absolute
residuals. The quantile is the ``ceil((n + 1) * level) / n`` empirical quantile, which gives
coverage of at least ``level`` for exchangeable residuals.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pandas as pd

# Fewer calibration residuals than this give no interval (the quantile would be infinite
# or meaningless).
MIN_CALIBRATION = 20


def conformal_quantile(abs_residuals: np.ndarray, level: float) -> float:
    """The conformal quantile of ``abs_residuals`` at ``level``; inf when too few."""
    return _quantile_sorted(sorted(np.asarray(abs_residuals, dtype=float).tolist()), level)


def add_sequential_intervals(table: pd.DataFrame, level: float,
                             volatility: pd.Series | None = None) -> pd.DataFrame:
    """Add ``lower`` and ``upper`` to a walk-forward table, leak-free.

    The interval of a forecast made at cutoff ``c`` is calibrated only on residuals of the
    same model and step whose target date is on or before ``c``: what was known then.
    Rows with fewer than :data:`MIN_CALIBRATION` such residuals get NaN bounds.

    With ``volatility`` (a daily log-return standard deviation known at each cutoff date,
    e.g. :func:`ewma_volatility`), the scores are the residuals divided by
    ``volatility[c] * sqrt(step)`` and the quantile is scaled back by the same factor at
    the cutoff forecast: normalised conformal intervals, wide in a storm and narrow in calm.
    A constant volatility gives exactly the plain intervals.
    """
    table = table.sort_values(["model", "step", "cutoff"], kind="stable").copy()
    q = np.full(len(table), np.nan)
    for _, idx in table.groupby(["model", "step"], sort=False).indices.items():
        scale, residuals, known_by = scaled_scores(table.iloc[idx], volatility)
        calibration: list[float] = []
        added = 0
        for row in range(len(idx)):
            while added < known_by[row]:
                bisect.insort(calibration, residuals[added])
                added += 1
            value = _quantile_sorted(calibration, level) * scale[row]
            q[idx[row]] = value if math.isfinite(value) else np.nan
    table["lower"] = table["y_hat"] * np.exp(-q)
    table["upper"] = table["y_hat"] * np.exp(q)
    return table.sort_index()


def scaled_scores(group: pd.DataFrame, volatility: pd.Series | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the forecasts of one model and step, sorted by cutoff: each row's scale
    (``volatility`` at its cutoff times ``sqrt(step)``, or 1 without it), its absolute log
    residual over that scale, and how many rows' target dates are on or before its cutoff
    (the scores known when it was made)."""
    scale = np.ones(len(group))
    if volatility is not None:
        sigma = volatility.reindex(pd.DatetimeIndex(group["cutoff"])).to_numpy(float)
        scale = sigma * np.sqrt(group["step"].to_numpy(float))
    scores = np.abs(np.log(group["y"].to_numpy() / group["y_hat"].to_numpy())) / scale
    known_by = np.searchsorted(group["date"].to_numpy(), group["cutoff"].to_numpy(),
                               side="right")
    return scale, scores, known_by


def ewma_volatility(dates: pd.DatetimeIndex, y: np.ndarray, decay: float = 0.94,
                    warmup: int = 20) -> pd.Series:
    """RiskMetrics volatility per date: ``s2_t = decay * s2_{t-1} + (1 - decay) * r_t^2``
    on daily log returns, started from the variance of the first ``warmup`` returns; the
    value of a date uses returns up to that date only (NaN before the warm-up ends)."""
    r = np.diff(np.log(np.asarray(y, dtype=np.float64)))
    out = np.full(len(dates), np.nan)
    if len(r) < warmup:
        return pd.Series(out, index=dates)
    variance = float(np.mean(r[:warmup] ** 2))
    for t in range(warmup, len(r) + 1):
        if t > warmup:
            variance = decay * variance + (1 - decay) * r[t - 1] ** 2
        out[t] = np.sqrt(variance)
    return pd.Series(out, index=dates)


def coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and step: forecasts with an interval, empirical coverage (%), mean width."""
    with_interval = table.dropna(subset=["lower", "upper"])
    inside = (with_interval["y"] >= with_interval["lower"]) & (
        with_interval["y"] <= with_interval["upper"])
    frame = with_interval.assign(inside=inside, width=with_interval["upper"] -
                                 with_interval["lower"])
    out = frame.groupby(["model", "step"], sort=False).agg(
        n=("inside", "size"), coverage=("inside", "mean"), mean_width=("width", "mean"))
    out["coverage"] *= 100
    return out.reset_index()


def step_quantiles(residuals: pd.DataFrame, level: float) -> np.ndarray:
    """Conformal quantile per step from a ``step, abs_log_residual`` table (steps 1..k)."""
    steps = int(residuals["step"].max())
    return np.array([
        conformal_quantile(residuals.loc[residuals["step"] == s, "abs_log_residual"].to_numpy(),
                           level)
        for s in range(1, steps + 1)
    ])


def _quantile_sorted(values: list[float], level: float) -> float:
    n = len(values)
    rank = math.ceil((n + 1) * level)
    if n < MIN_CALIBRATION or rank > n:
        return math.inf
    return values[rank - 1]
