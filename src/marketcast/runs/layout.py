"""The kinds of run folder and the files each holds: the one place that names them.

Every folder records its kind in ``manifest.json`` (written last, with the sha256 of every
file), and readers dispatch on that recorded kind rather than on which files exist.

=========  ==============================  =================================================
kind       written by                      files besides config.toml, metrics.json, report
=========  ==============================  =================================================
run        ``run`` (one series)            model, loss history, test forecasts, predictions,
                                           residuals, forecast, plots, strategy days
train      ``train``                       model, loss history, plot
backtest   ``backtest``                    backtest table and strategy days (one series, or
                                           a ``ticker`` column for many)
global     ``run --tickers``               model (shared network, per-ticker scalers), loss
                                           history, per-ticker scores, skipped tickers, and
                                           test forecasts, residuals, forecasts and strategy
                                           days with a ``ticker`` column
tune       ``tune``                        every trial's epochs (trials.csv), the best
                                           configuration as TOML
study      ``study``                       every combination's epochs (epochs.csv), the
                                           study table at the epoch counts asked for
                                           (study.csv), the preferred configuration as TOML
=========  ==============================  =================================================
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    RUN = "run"
    TRAIN = "train"
    BACKTEST = "backtest"
    GLOBAL = "global"
    TUNE = "tune"
    STUDY = "study"


MANIFEST = "manifest.json"
CONFIG = "config.toml"
METRICS = "metrics.json"
REPORT = "report.html"
WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
LOSS_HISTORY = "loss_history.csv"
TEST_FORECASTS = "test_forecasts.csv"
PREDICTIONS = "predictions.csv"
RESIDUALS = "residuals.csv"
FORECAST = "forecast.csv"
BACKTEST = "backtest.csv"
PER_TICKER = "per_ticker.csv"
SKIPPED = "skipped.csv"
# Each trading strategy's days on the forecasts (evaluation.strategy), buy-and-hold's too.
STRATEGY = "strategy.csv"
# Searches on the validation period (tune, study): one row per trial or combination and epoch.
TRIALS = "trials.csv"
EPOCHS = "epochs.csv"
STUDY = "study.csv"
BEST_CONFIG = "best_config.toml"
# Many tickers: each ticker's interval evaluation per model (evaluation.interval_summary).
INTERVALS = "intervals.csv"
LOSS_PLOT = "loss.png"
TEST_PLOT = "test.png"
FORECAST_PLOT = "forecast.png"

# The long forecast table of each kind that has one: what the report scores.
TABLES = {Kind.RUN: TEST_FORECASTS, Kind.BACKTEST: BACKTEST, Kind.GLOBAL: TEST_FORECASTS}
# Kinds that hold a model to forecast with.
MODEL_KINDS = (Kind.RUN, Kind.TRAIN, Kind.GLOBAL)


def guess_kind(names: set[str], metrics: dict) -> Kind:
    """The kind of a folder written before kinds were recorded in its manifest."""
    if metrics.get("kind") in (Kind.BACKTEST, Kind.GLOBAL):
        return Kind(metrics["kind"])
    if PER_TICKER in names:
        return Kind.GLOBAL
    return Kind.RUN if "metrics" in metrics else Kind.TRAIN
