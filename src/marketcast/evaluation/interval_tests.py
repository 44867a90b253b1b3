"""Interval forecasts judged as risk managers judge value-at-risk models.

A sequence of intervals at nominal coverage ``level`` gives a *miss* sequence ``I_t`` (1 when
the outcome fell outside). A good sequence misses as often as promised (Kupiec's
proportion-of-failures test) and its misses do not cluster (Christoffersen's independence
test); the conditional-coverage test joins the two (Christoffersen 1998). Sharpness and
calibration together: the interval (Winkler) score of Gneiting and Raftery (2007) and the
pinball loss of each bound. Coverage is also split by terciles of the realised volatility
known at each cutoff, so that intervals too wide in calm markets and too narrow in storms
show up even when their overall coverage is right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

# Trading days of realised volatility behind each cutoff's volatility regime.
VOL_WINDOW = 20
REGIMES = ("low", "mid", "high")


def kupiec_pof(misses: np.ndarray, level: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures likelihood ratio and its chi-squared(1) p-value.

    ``misses`` holds 0/1 (1: outside the interval); under the null each is a Bernoulli draw
    with probability ``1 - level``. NaN for an empty sequence.
    """
    x = np.asarray(misses, dtype=bool)
    n, k = len(x), int(x.sum())
    if n == 0:
        return float("nan"), float("nan")
    p = 1.0 - level
    lr = -2.0 * (_bernoulli_loglik(k, n, p) - _bernoulli_loglik(k, n, k / n))
    return float(lr), float(stats.chi2.sf(lr, df=1))


def christoffersen(misses: np.ndarray, level: float) -> dict[str, float]:
    """Christoffersen's independence and conditional-coverage tests of a miss sequence.

    Independence compares the probability of a miss after a miss (``pi11``) with that after a
    hit (``pi01``) in a first-order Markov chain; conditional coverage adds Kupiec's
    statistic and has two degrees of freedom. Returns ``lr_ind, p_ind, lr_cc, p_cc``.
    """
    x = np.asarray(misses, dtype=int)
    if len(x) < 2:
        nan = float("nan")
        return {"lr_ind": nan, "p_ind": nan, "lr_cc": nan, "p_cc": nan}
    before, after = x[:-1], x[1:]
    n00 = int(np.sum((before == 0) & (after == 0)))
    n01 = int(np.sum((before == 0) & (after == 1)))
    n10 = int(np.sum((before == 1) & (after == 0)))
    n11 = int(np.sum((before == 1) & (after == 1)))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _bernoulli_loglik(n01 + n11, n00 + n01 + n10 + n11, pi)
    markov = (_bernoulli_loglik(n01, n00 + n01, pi01)
              + _bernoulli_loglik(n11, n10 + n11, pi11))
    lr_ind = max(-2.0 * (restricted - markov), 0.0)
    lr_pof, _ = kupiec_pof(x[1:], level)  # on the same transitions as the chain
    lr_cc = lr_pof + lr_ind
    return {"lr_ind": float(lr_ind), "p_ind": float(stats.chi2.sf(lr_ind, df=1)),
            "lr_cc": float(lr_cc), "p_cc": float(stats.chi2.sf(lr_cc, df=2))}


def interval_score(y, lower, upper, level: float) -> np.ndarray:
    """Interval (Winkler) score per forecast: width plus ``2 / alpha`` times the distance by
    which the outcome fell outside (``alpha = 1 - level``); lower is better."""
    y, lower, upper = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    alpha = 1.0 - level
    below, above = np.maximum(lower - y, 0.0), np.maximum(y - upper, 0.0)
    return (upper - lower) + 2.0 / alpha * (below + above)


def pinball(y, quantile, tau: float) -> np.ndarray:
    """Pinball (quantile) loss of ``quantile`` forecasts at probability ``tau``."""
    diff = np.asarray(y, dtype=np.float64) - np.asarray(quantile, dtype=np.float64)
    return np.maximum(tau * diff, (tau - 1.0) * diff)


def volatility_regimes(dates: pd.DatetimeIndex, y: np.ndarray,
                       window: int = VOL_WINDOW) -> pd.Series:
    """``low``/``mid``/``high`` per date from the realised volatility known on that date.

    The volatility of a date is the standard deviation of the last ``window`` daily log
    returns up to and including it; its regime is its tercile among every volatility known
    by then (an expanding history), so no later price decides an earlier regime. The first
    ``window`` dates, and dates with fewer than ``3 * window`` volatilities behind them, get
    none (NaN).
    """
    returns = pd.Series(np.diff(np.log(np.asarray(y, dtype=np.float64))), index=dates[1:])
    vol = returns.rolling(window).std().to_numpy()
    labels = np.full(len(dates), None, dtype=object)
    known: list[float] = []
    for i, v in enumerate(vol, start=1):
        if not np.isfinite(v):
            continue
        known.append(v)
        if len(known) < 3 * window:
            continue
        rank = np.mean(np.asarray(known) <= v)  # share of known volatilities at or below
        labels[i] = REGIMES[min(int(rank * 3 - 1e-12), 2)]
    return pd.Series(labels, index=dates, name="regime")


def interval_evaluation(table: pd.DataFrame, level: float,
                        regimes: pd.Series | None = None) -> pd.DataFrame:
    """Per model and step of a table with ``lower, upper``: forecasts with an interval,
    coverage (%), mean width, interval score, pinball loss at both bounds, Kupiec and
    Christoffersen p-values (misses in cutoff order), and coverage (%) in each volatility
    regime of the cutoff when ``regimes`` (:func:`volatility_regimes`) is given."""
    rows = []
    with_interval = table.dropna(subset=["lower", "upper"])
    for (model, step), group in with_interval.groupby(["model", "step"], sort=False):
        group = group.sort_values("cutoff")
        y, lo, hi = (group[c].to_numpy() for c in ("y", "lower", "upper"))
        misses = (y < lo) | (y > hi)
        row = {
            "model": model, "step": step, "n": len(group),
            "coverage": 100.0 * (1.0 - misses.mean()),
            "mean_width": float(np.mean(hi - lo)),
            "interval_score": float(np.mean(interval_score(y, lo, hi, level))),
            "pinball_lower": float(np.mean(pinball(y, lo, (1.0 - level) / 2))),
            "pinball_upper": float(np.mean(pinball(y, hi, (1.0 + level) / 2))),
            "kupiec_p": kupiec_pof(misses, level)[1],
            **{k: v for k, v in christoffersen(misses, level).items() if k.startswith("p_")},
        }
        if regimes is not None:
            regime = regimes.reindex(pd.DatetimeIndex(group["cutoff"])).to_numpy()
            for name in REGIMES:
                inside = ~misses[regime == name]
                row[f"coverage_{name}"] = 100.0 * inside.mean() if len(inside) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).rename(columns={"p_ind": "christoffersen_ind_p",
                                              "p_cc": "christoffersen_cc_p"})


def _bernoulli_loglik(k: int, n: int, p: float) -> float:
    """log L of ``k`` successes in ``n`` Bernoulli(p) draws, with 0 log 0 = 0."""
    out = 0.0
    if k:
        out += k * np.log(p) if p > 0 else -np.inf
    if n - k:
        out += (n - k) * np.log(1.0 - p) if p < 1 else -np.inf
    return float(out)
