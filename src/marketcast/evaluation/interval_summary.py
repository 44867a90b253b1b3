"""Interval evaluations of many tickers: one row per ticker and model, and their summary.

Each ticker's intervals are calibrated and judged on their own
(:func:`~marketcast.evaluation.adaptive.evaluate_intervals`); the summary counts the tickers
whose Kupiec or Christoffersen test rejects at 5%, raw and after Benjamini-Hochberg across
tickers, because with a hundred tickers about five reject by chance alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketcast.evaluation.adaptive import Intervals, evaluate_intervals
from marketcast.evaluation.multiple import adjust_p_values
from marketcast.evaluation.significance import ALPHA

# Tests counted across tickers: (column of the per-ticker rows, name in the summary).
TESTS = (("kupiec_p", "kupiec"), ("christoffersen_cc_p", "christoffersen"))
MEDIANS = ("coverage", "coverage_low", "coverage_mid", "coverage_high")


def intervals_by_ticker(table: pd.DataFrame, series: dict, level: float,
                        method: str) -> tuple[pd.DataFrame, dict[str, Intervals]]:
    """Each ticker's rows of a long table (``ticker`` column) calibrated and judged on their
    own, with the prices of ``series[ticker]`` (``.dates``, ``.y``): the table with bounds
    and each ticker's :class:`~marketcast.evaluation.adaptive.Intervals`."""
    by_ticker = {t: evaluate_intervals(rows, series[t].dates, series[t].y, level, method)
                 for t, rows in table.groupby("ticker", sort=False)}
    banded = pd.concat([one.table for one in by_ticker.values()], ignore_index=True)
    return banded, by_ticker


def ticker_rows(by_ticker: dict[str, Intervals], step: int = 1) -> pd.DataFrame:
    """The ``step``-ahead interval evaluation of every ticker and model: ``ticker, model,
    method`` and the columns of :func:`~marketcast.evaluation.interval_tests.
    interval_evaluation`."""
    frames = []
    for ticker, intervals in by_ticker.items():
        scores = intervals.scores
        if scores.empty:
            continue
        one = scores[scores["step"] == step].drop(columns="step")
        frames.append(one.assign(ticker=ticker, method=intervals.method))
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    first = ["ticker", "model", "method"]
    return rows[[*first, *(c for c in rows.columns if c not in first)]]


def summarize_intervals(rows: pd.DataFrame, level: float) -> dict:
    """Per model over tickers: the tickers judged, median coverage (overall and per
    volatility tercile), pooled coverage (every forecast counted once), the methods in use,
    and for each test the tickers rejected at 5% raw and after Benjamini-Hochberg."""
    if rows.empty:
        return {}
    out = {"level": level, "alpha": ALPHA, "models": {}, "note": (
        f"Each test run once per ticker: at {ALPHA:.0%} about {ALPHA:.0%} of the tickers "
        "reject by chance even when every interval is right; the adjusted counts control the "
        "false discovery rate across tickers (Benjamini-Hochberg; approximate, tickers of "
        "one market are correlated).")}
    for model, group in rows.groupby("model", sort=False):
        one = {"tickers": int(len(group)),
               "pooled_coverage": float(np.average(group["coverage"], weights=group["n"])),
               "methods": {str(k): int(v) for k, v in group["method"].value_counts().items()}}
        for column in MEDIANS:
            if column in group:
                one[f"median_{column}"] = _median(group[column])
        for column, name in TESTS:
            p = group[column].to_numpy(dtype=float)
            one[f"{name}_rejected"] = int(np.sum(p < ALPHA))
            one[f"{name}_rejected_adjusted"] = int(np.sum(adjust_p_values(p) < ALPHA))
        out["models"][str(model)] = one
    return out


def summary_lines(summary: dict) -> list[str]:
    """One sentence per model: coverage and how many tickers each test rejects."""
    lines = []
    for model, one in summary.get("models", {}).items():
        lines.append(
            f"{model} {summary['level']:.0%} intervals over {one['tickers']} tickers: pooled "
            f"coverage {one['pooled_coverage']:.1f}%, median {one['median_coverage']:.1f}%; "
            f"Kupiec rejects {one['kupiec_rejected']} at 5% "
            f"({one['kupiec_rejected_adjusted']} after Benjamini-Hochberg), Christoffersen "
            f"{one['christoffersen_rejected']} ({one['christoffersen_rejected_adjusted']})")
    return lines


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None
