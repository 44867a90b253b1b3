"""PNG plots from tables: loss curves, the test period, history plus forecast.

Plots take tables and write files; they never fit or predict.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# One colour per model across every plot.
COLORS = {"actual": "#222222", "lstm": "#d62728", "naive": "#1f77b4", "linear": "#2ca02c"}


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def plot_loss(history: pd.DataFrame, best_epoch: int, path: Path) -> None:
    """Train and validation MSE (scaled units) per epoch, the restored epoch marked."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(history["epoch"], history["train_loss"], label="train", color="#1f77b4")
    if history["val_loss"].notna().any():
        ax.plot(history["epoch"], history["val_loss"], label="validation", color="#ff7f0e")
    ax.axvline(best_epoch, color="#777777", linestyle="--", label=f"best epoch ({best_epoch})")
    ax.set(xlabel="epoch", ylabel="MSE (scaled units)", title="LSTM training loss",
           yscale="log")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_test(predictions: pd.DataFrame, target: str, path: Path) -> None:
    """Actual prices on the test period against every model's one-step forecasts."""
    one = predictions[predictions["step"] == 1]
    fig, ax = plt.subplots(figsize=(10, 5))
    for column in [c for c in one.columns if c not in ("date", "step")]:
        ax.plot(one["date"], one[column], label=column, color=COLORS.get(column),
                linewidth=1.6 if column == "actual" else 1.0)
    ax.set(xlabel="date", ylabel=f"{target} (price units)",
           title="Test period: actual vs one-day-ahead forecasts")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    _save(fig, path)


def plot_forecast(history: pd.Series, forecast: pd.DataFrame, target: str, path: Path) -> None:
    """The last year of prices followed by each model's forecast on NYSE trading dates."""
    recent = history.iloc[-250:]
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(recent.index, recent.to_numpy(), label="actual", color=COLORS["actual"])
    if "lstm_lower" in forecast:
        ax.fill_between(forecast["date"], forecast["lstm_lower"], forecast["lstm_upper"],
                        color=COLORS["lstm"], alpha=0.15, label="lstm interval")
    for column in [c for c in forecast.columns if c != "date" and "_" not in c]:
        dates = pd.concat([pd.Series([recent.index[-1]]), forecast["date"]])
        values = pd.concat([pd.Series([recent.iloc[-1]]), forecast[column]])
        ax.plot(dates, values, label=f"{column} forecast", color=COLORS.get(column),
                linestyle="--" if column != "lstm" else "-")
    ax.set(xlabel="date", ylabel=f"{target} (price units)",
           title=f"Forecast of the next {len(forecast)} trading days")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    _save(fig, path)
