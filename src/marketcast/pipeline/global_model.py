"""One LSTM trained on windows pooled from many tickers, evaluated ticker by ticker.

Training sees :class:`~marketcast.pipeline.panel.Pooled`: every ticker scaled on its own training
rows, early stopping on the pooled validation windows. Evaluation runs each ticker's test
period exactly as ``marketcast run`` does for one series (the shared network behind that
ticker's scaler, against the random walk and a linear model fitted on that ticker alone),
then summarises the distribution of Theil's U and of the Diebold-Mariano verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from marketcast.config import Config
from marketcast.evaluation.metrics import accuracy
from marketcast.models import LSTMForecaster, make_model
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import Callback, EpochLog, fit_network
from marketcast.pipeline.panel import Panel, Pooled
from marketcast.pipeline.series import future_days, future_forecast, test_table

# A Diebold-Mariano p-value below this calls the LSTM better or worse than the random walk.
SIGNIFICANCE = 0.05


@dataclass
class GlobalFit:
    """The shared network, its training history, and the per-ticker transforms."""

    net: StackedLSTM
    pooled: Pooled
    history: list[EpochLog]
    best_epoch: int

    def for_ticker(self, ticker: str, config: Config, y: np.ndarray,
                   X: np.ndarray | None) -> LSTMForecaster:
        """An LSTMForecaster for one ticker: the shared network behind that ticker's scaler."""
        model = LSTMForecaster(config.model, config.train)
        model.net_ = self.net
        model.transform_ = self.pooled.transforms[ticker]
        model.history_, model.best_epoch_ = self.history, self.best_epoch
        model._remember(y, X, rows=config.model.lookback + 1)
        return model


def fit_global(pooled: Pooled, config: Config, callback: Callback | None = None) -> GlobalFit:
    """Train one network on every pooled training window (early stopping on validation)."""
    m = config.model
    torch.manual_seed(config.train.seed)
    net = StackedLSTM(pooled.Z.shape[1], m.units, m.layers, m.dropout, m.horizon)
    history, best_epoch = fit_network(net, pooled.Z, pooled.train_origins, pooled.val_origins,
                                      m.lookback, m.horizon, config.train, callback)
    return GlobalFit(net, pooled, history, best_epoch)


def ticker_models(fit: GlobalFit, panel: Panel, config: Config) -> dict[str, LSTMForecaster]:
    """Each ticker's ``LSTMForecaster`` after the end of its data (the shared network)."""
    return {ticker: fit.for_ticker(ticker, config, one.y, one.X)
            for ticker, one in panel.series.items()}


def global_state(models: dict[str, LSTMForecaster], panel: Panel) -> tuple[dict, dict]:
    """Weights (for safetensors) and JSON metadata of a global model's ``ticker_models``.

    The metadata holds what is shared (settings, features, best epoch) and, per ticker,
    what :meth:`LSTMForecaster.get_state` keeps of it (its scaler and the last days a
    forecast starts from) with those days' dates. :func:`ticker_meta` turns it back into
    the metadata of one ticker's model.
    """
    tickers = {}
    for ticker, model in models.items():
        tensors, meta = model.get_state()  # the same network, hence the same tensors
        dates = panel.series[ticker].dates[-len(model.y_):]
        tickers[ticker] = {k: meta.pop(k) for k in ("transform", "context_y", "context_X")}
        tickers[ticker]["context_dates"] = [d.date().isoformat() for d in dates]
    first = next(iter(panel.series.values()))
    return tensors, {**meta, "kind": "global", "features": list(first.feature_names),
                     "tickers": tickers}


def ticker_meta(meta: dict, ticker: str) -> dict:
    """One ticker's model metadata from a global model's; KeyError for an unknown ticker."""
    shared = {k: v for k, v in meta.items() if k != "tickers"}
    return {**shared, **meta["tickers"][ticker]}


def forecast_tickers(models: dict[str, LSTMForecaster], panel: Panel,
                     config: Config) -> pd.DataFrame:
    """The next trading days of every ticker, from the end of its data: a long table
    ``ticker, date, lstm, naive`` (only ``--horizon`` days with extra features)."""
    # Every ticker has the same inputs: decide (and warn about) the days once.
    days = future_days(next(iter(panel.series.values())), config.model.horizon,
                       config.forecast.days)
    frames = []
    for ticker, one in panel.series.items():
        pair = {"lstm": models[ticker], "naive": make_model("naive", config).fit(one.y, one.X)}
        frames.append(future_forecast(pair, one, days).assign(ticker=ticker))
    table = pd.concat(frames, ignore_index=True)
    return table[["ticker", "date", "lstm", "naive"]]


def evaluate_tickers(
    fit: GlobalFit, panel: Panel, config: Config,
    on_ticker: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per ticker: test-period RMSE of lstm, naive and linear, Theil's U of lstm and
    linear, the LSTM's Diebold-Mariano statistic and p-value against the random walk, and
    ``lstm_vs_naive`` ("better", "worse" or "not significant" at p < 0.05)."""
    rows = []
    h = config.model.horizon
    for i, (ticker, one) in enumerate(panel.series.items()):
        split = panel.splits[ticker]
        seen = one.head(split.test_start)
        linear = make_model("linear", config).fit(seen.y, seen.X, n_val=split.n_val)
        naive = make_model("naive", config).fit(seen.y, seen.X)
        models = {"lstm": fit.for_ticker(ticker, config, seen.y, seen.X), "naive": naive,
                  "linear": linear}
        scores = accuracy(test_table(models, one, split, h)).set_index("model")
        lstm = scores.loc["lstm"]
        rows.append({
            "ticker": ticker,
            "n_test": int(lstm["n"]),
            "rmse_lstm": lstm["rmse"],
            "rmse_naive": scores.loc["naive", "rmse"],
            "rmse_linear": scores.loc["linear", "rmse"],
            "theils_u_lstm": lstm["theils_u"],
            "theils_u_linear": scores.loc["linear", "theils_u"],
            "dm_stat": lstm["dm_stat"],
            "dm_p_value": lstm["dm_p_value"],
            "lstm_vs_naive": _call(lstm["dm_stat"], lstm["dm_p_value"]),
        })
        if on_ticker is not None:
            on_ticker(i + 1, len(panel.series))
    return pd.DataFrame(rows)


def summarize_tickers(per_ticker: pd.DataFrame) -> dict:
    """Median and quartiles of Theil's U (lstm, linear) and the shares (%) of tickers where
    the LSTM is significantly better or worse than the random walk."""
    out: dict = {"tickers": int(len(per_ticker))}
    for model in ("lstm", "linear"):
        u = per_ticker[f"theils_u_{model}"].dropna()
        q1, median, q3 = np.quantile(u, [0.25, 0.5, 0.75]) if len(u) else (np.nan,) * 3
        out[f"theils_u_{model}"] = {"q1": float(q1), "median": float(median), "q3": float(q3)}
    calls = per_ticker["lstm_vs_naive"]
    n = max(len(calls), 1)
    out["lstm_better_pct"] = 100.0 * float((calls == "better").sum()) / n
    out["lstm_worse_pct"] = 100.0 * float((calls == "worse").sum()) / n
    return out


def global_verdict(summary: dict) -> str:
    u = summary["theils_u_lstm"]
    return (
        f"global LSTM over {summary['tickers']} tickers: median Theil's U {u['median']:.3f} "
        f"(quartiles {u['q1']:.3f} .. {u['q3']:.3f}; below 1 beats tomorrow = today); "
        f"significantly better than the random walk on {summary['lstm_better_pct']:.1f}% of "
        f"tickers, significantly worse on {summary['lstm_worse_pct']:.1f}% "
        f"(Diebold-Mariano p < {SIGNIFICANCE})"
    )


def _call(stat: float, p: float) -> str:
    if np.isfinite(p) and p < SIGNIFICANCE:
        return "better" if stat < 0 else "worse"
    return "not significant"
