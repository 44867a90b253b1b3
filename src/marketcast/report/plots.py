"""Plots from tables: loss curves, forecasts against outcomes, the forecast fan, residuals.

Each plot takes tables and returns a :class:`matplotlib.figure.Figure`, also written as PNG
when given ``out`` (a path, or a binary buffer for the report); plots never fit or predict.
Figures are made without pyplot, so importing this module leaves a notebook's backend and
pyplot's figure list alone. Every model keeps its colour in every plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marketcast.evaluation.stats import autocorrelation

# One colour per model across every plot and the report's tables.
COLORS = {
    "actual": "#222222", "lstm": "#d62728", "naive": "#1f77b4", "linear": "#2ca02c",
    "drift": "#9467bd", "arima": "#ff7f0e", "garch": "#8c564b", "buy_and_hold": "#17becf",
}
OTHER = "#7f7f7f"
# Days shown up close below a long test period.
ZOOM_DAYS = 60


def color(model: str) -> str:
    return COLORS.get(model, OTHER)


def save_png(fig: Figure, out: Path | BinaryIO | None) -> Figure:
    """Write ``fig`` as PNG to a path (atomically) or a buffer, if given; no time stamp
    inside. Returns ``fig``."""
    if out is None:
        return fig
    options = {"format": "png", "dpi": 110, "bbox_inches": "tight",
               "metadata": {"Software": None}}
    if isinstance(out, str | Path):
        out = Path(out)
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp, **options)
        tmp.replace(out)
    else:
        fig.savefig(out, **options)
    return fig


def one_step_wide(table: pd.DataFrame) -> pd.DataFrame:
    """The one-day-ahead forecasts of a long table (``model, date, step, y, y_hat``) as
    ``date, actual, <one column per model>, step``: what :func:`plot_test` draws."""
    one = table[table["step"] == 1]
    wide = one.pivot_table(index="date", columns="model", values="y_hat", sort=False)
    wide.columns.name = None
    wide.insert(0, "actual", one.drop_duplicates("date").set_index("date")["y"])
    return wide.reset_index().assign(step=1)


def one_step_residuals(table: pd.DataFrame, model: str, other: str = "naive"
                       ) -> dict[str, np.ndarray]:
    """One-day-ahead residuals (actual - forecast) of ``model`` and ``other``, ``model``
    first: what :func:`plot_residuals` draws."""
    one = table[table["step"] == 1]
    residuals = {m: (g["y"] - g["y_hat"]).to_numpy() for m, g in one.groupby("model", sort=False)
                 if m in (model, other)}
    return dict(sorted(residuals.items(), key=lambda kv: kv[0] != model))


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("trading date")
    ax.grid(alpha=0.3)


def plot_loss(history: pd.DataFrame, best_epoch: int,
              out: Path | BinaryIO | None = None) -> Figure:
    """Train and validation MSE (scaled units) per epoch, the restored epoch marked."""
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    ax.plot(history["epoch"], history["train_loss"], label="LSTM train", color=color("lstm"),
            linestyle="--", marker=".")
    if history["val_loss"].notna().any():
        ax.plot(history["epoch"], history["val_loss"], label="LSTM validation",
                color=color("lstm"), marker="o", markersize=3)
    ax.axvline(best_epoch, color="#555555", linestyle=":",
               label=f"lowest validation loss: epoch {best_epoch} (weights kept)")
    losses = history[["train_loss", "val_loss"]].to_numpy().ravel()
    losses = losses[np.isfinite(losses) & (losses > 0)]
    # A log scale only where the losses span more than a decade; plain numbers either way.
    if len(losses) and losses.max() / losses.min() > 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    scale = ", log scale" if ax.get_yscale() == "log" else ""
    ax.set(xlabel="epoch", ylabel=f"MSE (scaled units{scale})",
           title="LSTM training loss per epoch")
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)
    return save_png(fig, out)


def plot_test(predictions: pd.DataFrame, target: str, out: Path | BinaryIO | None = None,
              title: str = "Test period: actual vs one-day-ahead forecasts") -> Figure:
    """Actual prices against every model's one-step forecasts (``date, step, actual, ...``)."""
    one = predictions[predictions["step"] == 1]
    # Over a long period the lines merge: a second panel shows the last days up close.
    zoom = ZOOM_DAYS if len(one) > 2 * ZOOM_DAYS else 0
    if zoom:
        fig = Figure(figsize=(10, 7.6))
        ax, near = fig.subplots(2, 1, height_ratios=(3, 2))
        panels = [(ax, one, title), (near, one.iloc[-zoom:], f"The last {zoom} days")]
    else:
        fig = Figure(figsize=(10, 4.8))
        ax = fig.subplots()
        panels = [(ax, one, title)]
    for axis, rows, heading in panels:
        for column in [c for c in rows.columns if c not in ("date", "step")]:
            axis.plot(pd.to_datetime(rows["date"]), rows[column], label=column,
                      color=color(column), linewidth=2.2 if column == "actual" else 1.1,
                      zorder=3 if column in ("actual", "lstm") else 2)
        axis.set(ylabel=f"{target} (price units)", title=heading)
        _date_axis(axis)
    ax.legend(ncols=min(len(one.columns) - 2, 6), fontsize="small")
    fig.tight_layout()
    return save_png(fig, out)


def plot_forecast(history: pd.Series, forecast: pd.DataFrame, target: str,
                  out: Path | BinaryIO | None = None, level: float | None = None) -> Figure:
    """The last year of prices followed by each model's forecast on NYSE trading dates,
    with the LSTM's interval as a band when ``forecast`` has ``lstm_lower, lstm_upper``."""
    recent = history.iloc[-250:]
    fig = Figure(figsize=(10, 4.8))
    ax = fig.subplots()
    ax.plot(recent.index, recent.to_numpy(), label="actual", color=color("actual"))
    dates = pd.to_datetime(forecast["date"])
    if "lstm_lower" in forecast and forecast["lstm_lower"].notna().any():
        label = f"lstm {level:.0%} interval" if level else "lstm interval"
        ax.fill_between(dates, forecast["lstm_lower"], forecast["lstm_upper"],
                        color=color("lstm"), alpha=0.18, linewidth=0, label=label)
    for column in [c for c in forecast.columns if c != "date" and "_" not in c]:
        ax.plot([recent.index[-1], *dates], [recent.iloc[-1], *forecast[column]],
                label=f"{column} forecast", color=color(column),
                linestyle="-" if column == "lstm" else "--")
    ax.axvline(recent.index[-1], color="#999999", linewidth=0.8)
    ax.set(ylabel=f"{target} (price units)",
           title=f"Forecast of the next {len(forecast)} trading days after "
                 f"{recent.index[-1]:%Y-%m-%d}")
    _date_axis(ax)
    ax.legend(fontsize="small", loc="best")
    return save_png(fig, out)


def plot_residuals(residuals: dict[str, np.ndarray], model: str, target: str,
                   out: Path | BinaryIO | None = None, max_lag: int = 20) -> Figure:
    """Histogram of one-step residuals (actual - forecast, price units) of every model, and
    the autocorrelation of ``model``'s with the 95% band of white noise."""
    fig = Figure(figsize=(10, 4.2))
    left, right = fig.subplots(1, 2)
    values = np.concatenate(list(residuals.values()))
    bins = np.histogram_bin_edges(values, bins=min(30, max(len(values) // 8, 8)))
    for name, r in residuals.items():
        filled = name == model
        left.hist(r, bins=bins, color=color(name), alpha=0.45 if filled else 1.0,
                  histtype="stepfilled" if filled else "step", linewidth=1.4, label=name)
    left.axvline(0, color="#555555", linewidth=0.8)
    left.set(xlabel=f"residual: actual - forecast ({target}, price units)",
             ylabel="forecasts", title="One-day-ahead residuals")
    left.legend(fontsize="small")
    left.grid(alpha=0.3)
    r = residuals[model]
    lags = min(max_lag, len(r) - 2)
    acf = autocorrelation(r, lags)
    right.bar(np.arange(1, lags + 1), acf, color=color(model), width=0.6)
    band = 1.96 / np.sqrt(len(r))
    right.axhspan(-band, band, color="#999999", alpha=0.25, label="95% band of white noise")
    right.axhline(0, color="#555555", linewidth=0.8)
    top = min(1.0, max(0.5, 1.5 * band, 1.2 * float(np.nanmax(np.abs(acf), initial=0))))
    right.set(xlabel="lag (trading days)", ylabel="autocorrelation",
              title=f"Autocorrelation of {model} residuals", ylim=(-top, top))
    right.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)


def plot_theils_u(per_ticker: pd.DataFrame,
                  out: Path | BinaryIO | None = None) -> Figure:
    """Histogram over tickers of Theil's U (test RMSE / the random walk's) of the LSTM and
    the linear model, with the random walk's 1.0 marked."""
    columns = {"lstm": "theils_u_lstm", "linear": "theils_u_linear"}
    values = {m: per_ticker[c].to_numpy(float) for m, c in columns.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    bins = np.histogram_bin_edges(np.append(finite, 1.0), bins=min(40, max(len(finite) // 6, 8)))
    for name, v in values.items():
        filled = name == "lstm"
        ax.hist(v[np.isfinite(v)], bins=bins, color=color(name), alpha=0.45 if filled else 1.0,
                histtype="stepfilled" if filled else "step", linewidth=1.4,
                label=f"{name} (median {np.nanmedian(v):.3f})")
    ax.axvline(1.0, color=color("naive"), linewidth=1.4, linestyle="--",
               label="random walk (U = 1)")
    ax.set(xlabel="Theil's U on the test period: RMSE / the random walk's RMSE "
                  "(below 1: smaller RMSE)",
           ylabel="tickers", title=f"{len(per_ticker)} tickers, one global LSTM")
    ax.yaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)


def plot_strategy(days: pd.DataFrame, rule: str,
                  out: Path | BinaryIO | None = None) -> Figure:
    """Equity (log scale, starting at 1) and drawdown of every model's strategy under
    ``rule`` against buy-and-hold, net of costs, from the days of ``strategy.csv``
    (``model, rule, date, net_return``)."""
    shown = days[(days["rule"] == rule) | (days["model"] == "buy_and_hold")]
    fig = Figure(figsize=(10, 6.6))
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2), sharex=True)
    lowest, highest = 1.0, 1.0
    for model, rows in shown.groupby("model", sort=False):
        dates = pd.to_datetime(rows["date"])
        equity = np.cumprod(1 + rows["net_return"].to_numpy())
        peak = np.maximum.accumulate(np.maximum(equity, 1.0))
        lowest, highest = min(lowest, equity.min()), max(highest, equity.max())
        held = model == "buy_and_hold"
        # Buy-and-hold on top, dashed: a model that is always long hides under it.
        style = {"color": color(model), "linewidth": 1.8 if held else 1.2,
                 "linestyle": "--" if held else "-", "zorder": 3 if held else 2,
                 "label": "buy-and-hold" if held else model}
        top.plot(dates, equity, **style)
        bottom.plot(dates, 100 * (equity / peak - 1), **style)
    top.set_yscale("log")
    if highest / lowest < 10:  # within a decade the log scale's own ticks are too few
        top.yaxis.set_major_locator(mticker.MaxNLocator(nbins=7))
        top.yaxis.set_minor_formatter(mticker.NullFormatter())
    top.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    top.axhline(1.0, color="#999999", linewidth=0.8)
    words = rule.replace("_", "/")
    top.set(ylabel="equity, net of costs (log scale)",
            title=f"{words} on each model's one-day-ahead forecasts vs buy-and-hold")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize="small")
    bottom.set(ylabel="drawdown %", title="Drawdown: below the previous peak")
    _date_axis(bottom)
    fig.tight_layout()
    return save_png(fig, out)
