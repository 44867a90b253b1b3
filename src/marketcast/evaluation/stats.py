"""Significance tests for forecast comparisons."""

from __future__ import annotations

import numpy as np
from scipy import stats


def diebold_mariano(e_model: np.ndarray, e_base: np.ndarray, h: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal squared-error loss, with the Harvey-Leybourne-Newbold
    small-sample correction and a Newey-West (Bartlett, lag h-1) long-run variance.

    Parameters
    ----------
    e_model, e_base : ndarray (n,)
        Forecast errors of the model and of the benchmark, on the same targets.
    h : int
        Forecast horizon step the errors belong to.

    Returns
    -------
    (statistic, p_value)
        Negative statistic: the model has the smaller loss. Two-sided p-value from Student's t
        with n-1 degrees of freedom. NaN when the loss difference is constant.
    """
    d = np.asarray(e_model, np.float64) ** 2 - np.asarray(e_base, np.float64) ** 2
    n = len(d)
    if n < 3:
        return float("nan"), float("nan")
    centred = d - d.mean()
    variance = centred @ centred / n
    for lag in range(1, h):
        weight = 1.0 - lag / h
        variance += 2.0 * weight * (centred[lag:] @ centred[:-lag]) / n
    if not variance > 0:
        return float("nan"), float("nan")
    dm = d.mean() / np.sqrt(variance / n)
    hln = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    statistic = float(dm * hln)
    return statistic, float(2 * stats.t.sf(abs(statistic), df=n - 1))


def binomial_p_value(successes: int, trials: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value of ``successes`` out of ``trials`` at rate ``p``."""
    if trials == 0:
        return float("nan")
    return float(stats.binomtest(successes, trials, p).pvalue)


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags ``1..max_lag`` (the usual biased estimator, which
    divides every lag's sum by ``n``); shape ``(max_lag,)``, NaN for a constant series."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean()
    denominator = centred @ centred
    if not denominator > 0:
        return np.full(max_lag, np.nan)
    return np.array([centred[lag:] @ centred[:-lag] for lag in range(1, max_lag + 1)]) / \
        denominator


def ljung_box(x: np.ndarray, lags: int) -> tuple[float, float]:
    """Ljung-Box test that the first ``lags`` autocorrelations of ``x`` are all zero.

    Returns ``(Q, p_value)`` with ``Q = n (n + 2) sum_k r_k^2 / (n - k)`` against a
    chi-squared with ``lags`` degrees of freedom; a small p-value means the residuals still
    hold a predictable pattern.
    """
    n = len(x)
    r = autocorrelation(x, lags)
    q = float(n * (n + 2) * np.sum(r**2 / (n - np.arange(1, lags + 1))))
    return q, float(stats.chi2.sf(q, df=lags))
