"""One LSTM trained on windows pooled from many tickers, evaluated ticker by ticker.

Training sees :class:`~marketcast.pipeline.panel.Pooled`: every ticker scaled on its own training
rows, early stopping on the pooled validation windows. Evaluation runs each ticker's test
period exactly as ``marketcast run`` does for one series (the shared network behind that
ticker's scaler, against the random walk and a linear model fitted on that ticker alone),
then summarises the distribution of Theil's U and of the Diebold-Mariano verdicts, before and
after adjusting the p-values across tickers (Benjamini-Hochberg, :func:`adjust_tickers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from marketcast.config import Config
from marketcast.evaluation import significance
from marketcast.evaluation.metrics import accuracy, model_label
from marketcast.evaluation.multiple import adjust_p_values, adjusted_calls, share_summary
from marketcast.models import BaseForecaster, make_model
from marketcast.pipeline.panel import Panel, fit_inputs
from marketcast.pipeline.series import (
    add_interval,
    future_days,
    future_forecast,
    series_sha256,
    test_residuals,
    test_table,
)

if TYPE_CHECKING:  # both import torch
    from marketcast.models.lstm import LSTMForecaster
    from marketcast.nn.train import Callback, Checkpoints, EpochLog


@dataclass
class GlobalFit:
    """Per-ticker forecasters sharing one network (fitted on each ticker's rows before its
    test period), the training history and the pooled window counts."""

    models: dict[str, LSTMForecaster]
    history: list[EpochLog]
    best_epoch: int
    windows_train: int
    windows_val: int


def fit_global(panel: Panel, config: Config, callback: Callback | None = None,
               checkpoints: Checkpoints | None = None,
               trainer: Callable | None = None) -> GlobalFit:
    """Train one network on every ticker's training windows (early stopping on the pooled
    validation windows); ``checkpoints`` as for one series; ``trainer`` as for
    :meth:`~marketcast.models.LSTMForecaster.fit_many` (default: this process)."""
    inputs = fit_inputs(panel)
    lstm = make_model("lstm", config)
    fitted = lstm.fit_many(list(inputs.values()), callback, checkpoints,
                           **({"trainer": trainer} if trainer else {}))
    models = dict(zip(inputs, fitted, strict=True))
    train = sum(len(m.transform_.cutoffs(0, len(y) - n_val))
                for m, (y, _, n_val) in zip(fitted, inputs.values(), strict=True))
    val = sum(len(m.transform_.cutoffs(len(y) - n_val, len(y)))
              for m, (y, _, n_val) in zip(fitted, inputs.values(), strict=True) if n_val)
    first = fitted[0]
    return GlobalFit(models, first.history_, first.best_epoch_, train, val)


def global_state(fit: GlobalFit, panel: Panel,
                 fans: dict[str, dict] | None = None) -> tuple[dict, dict]:
    """Weights (for safetensors) and JSON metadata of a global model.

    The metadata holds what is shared (settings, features, best epoch) and, per ticker,
    its scaler and the last days a forecast starts from (the end of its data), with their
    dates, and how its forecast fan is drawn (``fans``, when evaluated). :func:`ticker_meta`
    turns it back into the metadata of one ticker's model.
    """
    tickers = {}
    for ticker, model in fit.models.items():
        tensors, meta = model.get_state()  # the same network, hence the same tensors
        one, rows = panel.series[ticker], len(model.y_)
        tickers[ticker] = {
            "transform": meta.pop("transform"),
            "context_y": one.y[-rows:].tolist(),
            "context_X": None if one.X is None else one.X[-rows:].tolist(),
            "context_dates": [d.date().isoformat() for d in one.dates[-rows:]],
            "data_sha256": series_sha256(one),
            **({"fan": fans[ticker]} if fans and ticker in fans else {}),
        }
        meta.pop("context_y"), meta.pop("context_X")
    first = next(iter(panel.series.values()))
    return tensors, {**meta, "kind": "global", "features": list(first.feature_names),
                     "tickers": tickers}


def ticker_meta(meta: dict, ticker: str) -> dict:
    """One ticker's model metadata from a global model's; KeyError for an unknown ticker."""
    shared = {k: v for k, v in meta.items() if k != "tickers"}
    return {**shared, **meta["tickers"][ticker], "ticker": ticker}


def forecast_days(panel: Panel, config: Config) -> int:
    """Days every ticker's forecast covers (the same inputs for all: decided, and warned
    about, once)."""
    return future_days(next(iter(panel.series.values())), config.model.horizon,
                       config.forecast.days)


def ticker_residuals(fit: GlobalFit, panel: Panel, config: Config) -> pd.DataFrame:
    """Each ticker's out-of-sample test residuals per step (as for one series):
    ``ticker, step, abs_log_residual, volatility``; they calibrate that ticker's
    intervals."""
    days = forecast_days(panel, config)
    frames = [test_residuals(fit.models[t], one, panel.splits[t], days).assign(ticker=t)
              for t, one in panel.series.items()]
    return pd.concat(frames, ignore_index=True)[["ticker", "step", "abs_log_residual",
                                                 "volatility"]]


def forecast_tickers(fit: GlobalFit, panel: Panel, config: Config,
                     residuals: pd.DataFrame | None = None,
                     fans: dict[str, dict] | None = None) -> pd.DataFrame:
    """The next trading days of every ticker, from the end of its data: a long table
    ``ticker, date, lstm, [lstm_lower, lstm_upper,] naive`` (only ``--horizon`` days with
    extra features), with each ticker's conformal interval from its own ``residuals``,
    drawn as ``fans[ticker]`` says (:func:`~marketcast.pipeline.series.fan_settings`)."""
    days, level = forecast_days(panel, config), config.forecast.interval
    frames = []
    for ticker, one in panel.series.items():
        pair = {"lstm": fit.models[ticker], "naive": make_model("naive", config).fit(one.y, one.X)}
        future = future_forecast(pair, one, days)
        if level and residuals is not None:
            fan = (fans or {}).get(ticker, {"level": level, "volatility": None})
            future = add_interval(future, residuals[residuals["ticker"] == ticker],
                                  fan["level"], volatility=fan["volatility"])
        frames.append(future.assign(ticker=ticker))
    table = pd.concat(frames, ignore_index=True)
    return table[["ticker", *(c for c in table.columns if c != "ticker")]]


def evaluate_tickers(
    models: dict[str, BaseForecaster], panel: Panel, config: Config,
    on_ticker: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per ticker, its :func:`ticker_scores` with the p-values adjusted across
    tickers (:func:`adjust_tickers`), each ticker forecast as ``marketcast run`` forecasts one
    series; and the long test-period table of every ticker (``ticker`` first, then the
    columns of one series')."""
    rows, tables = [], []
    h = config.model.horizon
    for i, (ticker, one) in enumerate(panel.series.items()):
        split = panel.splits[ticker]
        seen = one.head(split.test_start)
        linear = make_model("linear", config).fit(seen.y, seen.X, n_val=split.n_val)
        naive = make_model("naive", config).fit(seen.y, seen.X)
        table = test_table({"lstm": models[ticker], "naive": naive, "linear": linear}, one,
                           split, h)
        tables.append(table.assign(ticker=ticker))
        rows.append(ticker_scores(ticker, table))
        if on_ticker is not None:
            on_ticker(i + 1, len(panel.series))
    long = pd.concat(tables, ignore_index=True)
    long = long[["ticker", *(c for c in long.columns if c != "ticker")]]
    return adjust_tickers(pd.DataFrame(rows)), long


def ticker_scores(ticker: str, table: pd.DataFrame) -> dict:
    """One ticker's row of ``per_ticker.csv`` from its long table (step-1 forecasts): RMSE of
    lstm, naive and linear, Theil's U of lstm and linear, the LSTM's Diebold-Mariano
    statistic and p-value against the random walk, and ``lstm_vs_naive``, the judgement of
    :func:`marketcast.evaluation.significance.call` ("better", "worse" or "not
    significant")."""
    scores = accuracy(table[table["step"] == 1]).set_index("model")
    lstm = scores.loc["lstm"]
    return {
        "ticker": ticker,
        "n_test": int(lstm["n"]),
        "rmse_lstm": lstm["rmse"],
        "rmse_naive": scores.loc["naive", "rmse"],
        "rmse_linear": scores.loc["linear", "rmse"],
        "theils_u_lstm": lstm["theils_u"],
        "theils_u_linear": scores.loc["linear", "theils_u"],
        "dm_stat": lstm["dm_stat"],
        "dm_p_value": lstm["dm_p_value"],
        "lstm_vs_naive": significance.call(lstm["dm_p_value"],
                                           lstm["rmse"] - scores.loc["naive", "rmse"]),
    }


def adjust_tickers(per_ticker: pd.DataFrame) -> pd.DataFrame:
    """``per_ticker`` (rows of :func:`ticker_scores`) with ``dm_p_adjusted`` after
    ``dm_p_value``: the Benjamini-Hochberg adjustment of the LSTM's Diebold-Mariano p-values
    across all the tickers (:func:`~marketcast.evaluation.multiple.adjust_p_values`), and
    ``lstm_vs_naive_adjusted`` after ``lstm_vs_naive``: the judge's call on it."""
    p, difference = per_ticker["dm_p_value"], per_ticker["rmse_lstm"] - per_ticker["rmse_naive"]
    out = per_ticker.copy()
    out.insert(out.columns.get_loc("dm_p_value") + 1, "dm_p_adjusted", adjust_p_values(p))
    out.insert(out.columns.get_loc("lstm_vs_naive") + 1, "lstm_vs_naive_adjusted",
               adjusted_calls(p, difference))
    return out


def summarize_tickers(per_ticker: pd.DataFrame) -> dict:
    """Median and quartiles of Theil's U (lstm, linear) and the shares (%) of tickers where
    the LSTM is significantly better or worse than the random walk; with the adjusted calls
    of :func:`adjust_tickers`, also the shares after adjustment and ``chance_pct``, the share
    expected each way by chance alone (2.5%)."""
    out: dict = {"tickers": int(len(per_ticker))}
    for model in ("lstm", "linear"):
        u = per_ticker[f"theils_u_{model}"].dropna()
        q1, median, q3 = np.quantile(u, [0.25, 0.5, 0.75]) if len(u) else (np.nan,) * 3
        out[f"theils_u_{model}"] = {"q1": float(q1), "median": float(median), "q3": float(q3)}
    calls = per_ticker["lstm_vs_naive"]
    n = max(len(calls), 1)
    out["lstm_better_pct"] = 100.0 * float((calls == significance.BETTER).sum()) / n
    out["lstm_worse_pct"] = 100.0 * float((calls == significance.WORSE).sum()) / n
    if "lstm_vs_naive_adjusted" in per_ticker:
        shares = share_summary(calls, per_ticker["lstm_vs_naive_adjusted"])
        out["lstm_better_adjusted_pct"] = shares["better_adjusted_pct"]
        out["lstm_worse_adjusted_pct"] = shares["worse_adjusted_pct"]
        out["chance_pct"] = shares["chance_pct"]
        out["p_adjustment"] = "Benjamini-Hochberg (fdr_bh) across tickers"
    return out


def global_verdict(summary: dict, calls: Sequence[str],
                   adjusted: Sequence[str] | None = None) -> str:
    """The verdict of a global model: Theil's U quartiles from :func:`summarize_tickers` and
    the per-ticker judgements (``lstm_vs_naive`` of :func:`ticker_scores`) counted; with
    ``adjusted`` (``lstm_vs_naive_adjusted`` of :func:`adjust_tickers`), the share chance
    alone gives and the judgements on the adjusted p-values counted too."""
    u = summary["theils_u_lstm"]
    line = (
        f"global LSTM over {summary['tickers']} tickers: median Theil's U {u['median']:.3f} "
        f"(quartiles {u['q1']:.3f} .. {u['q3']:.3f}; the random walk's is 1); "
        + significance.tally(calls, model_label("naive"))
    )
    if adjusted is None:
        return line
    return (f"{line}; {significance.by_chance()}; after Benjamini-Hochberg adjustment "
            "across tickers: "
            + significance.tally(adjusted, model_label("naive"), test="BH-adjusted DM"))
