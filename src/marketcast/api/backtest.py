"""``marketcast backtest``: walk-forward evaluation of every model, scored and saved."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast import files
from marketcast.api.display import Shown
from marketcast.api.inputs import Data, resolve, write_target
from marketcast.api.results import test_figure
from marketcast.config import Config, config_to_toml
from marketcast.data import data_sha256, summarize
from marketcast.errors import ConfigError, os_errors
from marketcast.evaluation.adaptive import CALIBRATION, Choice, evaluate_intervals
from marketcast.evaluation.interval_summary import (
    intervals_by_ticker,
    summarize_intervals,
    ticker_rows,
)
from marketcast.evaluation.intervals import coverage
from marketcast.evaluation.metrics import accuracy, backtest_verdict, compare, lag_copy
from marketcast.evaluation.multiple import describe, mcs_and_spa
from marketcast.evaluation.strategy import Strategies, per_ticker_columns
from marketcast.evaluation.strategy import evaluate as evaluate_strategies
from marketcast.pipeline.series import load_series
from marketcast.pipeline.walkforward import in_sample_scale, walk_forward
from marketcast.report import render_report
from marketcast.runs import folder as run_folder
from marketcast.runs import layout
from marketcast.runs.layout import Kind

log = logging.getLogger("marketcast")


@dataclass
class BacktestResult(Shown):
    """The long table (with interval bounds) and every score computed from it."""

    path: Path | None
    table: pd.DataFrame
    scores: pd.DataFrame  # price space, per model and step
    scores_log_return: pd.DataFrame
    lag_copy: pd.DataFrame
    coverage: pd.DataFrame
    verdict: list[str]
    fits: dict[str, int]
    seconds: float
    # Many tickers (``backtest --tickers``): one row per ticker (step 1), their summary and
    # the tickers left out with the reason.
    per_ticker: pd.DataFrame | None = None
    distribution: dict | None = None
    skipped: dict[str, str] | None = None
    # One series: every model against the random walk and the linear model, per step
    # (metrics.compare), behind the verdict lines.
    comparisons: pd.DataFrame | None = None
    # One series: the Model Confidence Set of every model and Hansen's SPA test against the
    # random walk, on the step-1 squared errors (evaluation.multiple); None when not run.
    mcs: dict | None = None
    spa: dict | None = None
    # Trading rules on every model's step-1 forecasts against buy-and-hold (per ticker for
    # many); None when the cutoffs are not consecutive days (--stride above 1).
    strategy: Strategies | None = None
    # The interval method and, for ``auto``, how it was chosen on the validation cutoffs
    # (one series: a Choice or None; many tickers: {ticker: Choice or None}).
    interval_method: str = "conformal"
    interval_choice: Choice | dict | None = None
    # Many tickers: each ticker's step-1 interval evaluation per model (intervals.csv) and
    # their summary with the tests' rejections counted raw and after Benjamini-Hochberg.
    interval_rows: pd.DataFrame | None = None
    interval_summary: dict | None = None

    @property
    def plots(self) -> tuple[str, ...]:
        return ("test", "residuals", "strategy") if self.per_ticker is None else ("theils_u",)

    def _title(self) -> str:
        cutoffs, models = self.table["cutoff"].nunique(), self.table["model"].unique()
        tickers = "" if self.per_ticker is None else f"{len(self.per_ticker)} tickers, "
        where = f"; saved in {self.path}" if self.path else ""
        return (f"Backtest: {tickers}{cutoffs} forecast cutoffs, models {', '.join(models)} "
                f"({self.seconds:.1f} s{where})")

    def _verdict(self) -> list[str]:
        return list(self.verdict)

    def _scores(self) -> pd.DataFrame:
        return self.scores if self.per_ticker is None else self.per_ticker

    def _figure(self, name: str):
        if name == "theils_u":
            from marketcast.report import plots

            return plots.plot_theils_u(self.per_ticker)
        return test_figure(name, self.table, self.strategy)


@os_errors
def backtest(
    data: Data | Config = None,
    *,
    config: Config | None = None,
    on_fit: Callable[[str, int, int], None] | None = None,
    write: bool | str | Path | None = None,
    track: str | None = None,
    **settings,
) -> BacktestResult:
    """Walk-forward evaluation of every configured model against the random walk.

    Scores per model and horizon step in price and log-return space, the Diebold-Mariano
    tests against the random walk and the linear model, the lag-copy check, and conformal
    intervals with their empirical coverage. For one series, the tests of every model at
    once on the step-1 squared errors: the 90% Model Confidence Set and Hansen's SPA test
    against the random walk (their lines end the verdict). With many tickers, each ticker's
    Diebold-Mariano p-value is also adjusted across tickers (Benjamini-Hochberg). Trading
    rules on the step-1 forecasts are scored against buy-and-hold.

    ``data``, ``settings`` (``models=["lstm", "naive"]``, ``n_windows=100``), ``write`` and
    ``track`` work as in :func:`marketcast.api.run`: by default the backtest folder is
    saved only when a ``config`` is passed.
    """
    if isinstance(data, Config):  # backtest(config): the command line's call
        data, config = None, data
    if track:  # before the work: the install hint must not wait for the backtest
        from marketcast.api.tracking import require_mlflow

        require_mlflow()
    given = config is not None
    config, prices = resolve(data, config, None, settings)
    saved = write_target(write, given, config)
    result = _backtest(config if saved is None else saved, prices, on_fit, saved is not None)
    if track:
        from marketcast.api.tracking import log_result

        log_result(track, result, config)
    return result


def _backtest(config: Config, prices, on_fit, write: bool) -> BacktestResult:
    started = time.perf_counter()
    b = config.backtest
    if config.train.workers:  # never silently ignored
        raise ConfigError("train.workers (--train-workers) is for run and train --tickers; "
                          "a backtest refits in this process: set workers to 0")
    if "naive" not in b.models:
        config = dataclasses.replace(
            config, backtest=dataclasses.replace(b, models=(*b.models, "naive")))
    if config.data.tickers:
        if prices is not None:
            raise ConfigError("backtest of many tickers reads them from a file; pass its "
                              "path as data, not a frame")
        return _backtest_panel(config, on_fit, write, started)
    frame, series = load_series(config, prices)
    table, fits = walk_forward(series, config, on_fit)
    intervals = None
    if config.forecast.interval > 0:  # judged as a value-at-risk model would be
        intervals = evaluate_intervals(table, series.dates, series.y,
                                       config.forecast.interval,
                                       config.backtest.interval_method)
        table = intervals.table
    first = int(np.searchsorted(series.dates.values, table["cutoff"].min().to_datetime64()))
    scale = in_sample_scale(series, first)
    scale_r = float(np.mean(np.abs(np.diff(np.log(series.y[: first + 1])))))
    scores = accuracy(table, by_step=True, scale=scale)
    scores_r = accuracy(table, by_step=True, space="log_return", scale=scale_r)
    lag = lag_copy(table)
    pairs = compare(table)
    cover = pd.DataFrame() if intervals is None else intervals.scores
    mcs, spa = mcs_and_spa(table)
    result = BacktestResult(None, table, scores, scores_r, lag, cover,
                            backtest_verdict(pairs, lag) + describe(mcs, spa), fits, 0.0,
                            comparisons=pairs, mcs=mcs, spa=spa,
                            strategy=_strategies(table, config),
                            interval_method=(intervals.method if intervals
                                             else config.backtest.interval_method),
                            interval_choice=intervals.choice if intervals else None)
    result.seconds = time.perf_counter() - started
    if write:
        result.path = _write_series(result, config, frame)
    return result


def _backtest_panel(config: Config, on_fit, write: bool, started: float) -> BacktestResult:
    """The backtest of many tickers: the global LSTM refitted on every ticker at each refit
    (:func:`~marketcast.pipeline.walkforward.walk_forward_panel`), each ticker scored and
    given intervals as one series is, then the distribution over tickers."""
    from marketcast.pipeline.global_model import (
        adjust_tickers,
        global_verdict,
        summarize_tickers,
        ticker_scores,
    )
    from marketcast.pipeline.panel import load_panel, parse_tickers
    from marketcast.pipeline.walkforward import walk_forward_panel

    if config.data.ticker:
        raise ConfigError("pass --ticker (one series) or --tickers (a global model), not both")
    if not {"lstm", "naive", "linear"} <= set(config.backtest.models):
        raise ConfigError("backtest --tickers backtests the global LSTM against naive and "
                          "linear; keep lstm, naive and linear in --models")
    panel = load_panel(config, parse_tickers(config.data.tickers))
    table, fits, skipped = walk_forward_panel(panel, config, on_fit)
    skipped = {**panel.skipped, **skipped}
    choices: dict[str, Choice | None] = {}
    interval_rows, interval_summary = pd.DataFrame(), {}
    if config.forecast.interval > 0:  # each ticker chooses on its own validation cutoffs
        level = config.forecast.interval
        table, by_ticker = intervals_by_ticker(table, panel.series, level,
                                               config.backtest.interval_method)
        choices = {t: one.choice for t, one in by_ticker.items()}
        interval_rows = ticker_rows(by_ticker)
        interval_summary = summarize_intervals(interval_rows, level)
    one_series = table.drop(columns="ticker")
    # Pooled over tickers: price units differ, so the per-ticker rows and their
    # distribution carry the comparison; the pooled table shows coverage and the scale.
    scores = accuracy(one_series, by_step=True)
    scores_r = accuracy(one_series, by_step=True, space="log_return")
    lag = lag_copy(one_series)
    cover = coverage(one_series) if config.forecast.interval > 0 else pd.DataFrame()
    per_ticker = pd.DataFrame([ticker_scores(t, rows.drop(columns="ticker"))
                               for t, rows in table.groupby("ticker", sort=False)])
    per_ticker = adjust_tickers(per_ticker)
    summary = summarize_tickers(per_ticker)
    verdict = global_verdict(summary, per_ticker["lstm_vs_naive"].tolist(),
                             per_ticker["lstm_vs_naive_adjusted"].tolist())
    strategies = _strategies(table, config)
    if strategies is not None:
        per_ticker = per_ticker.merge(per_ticker_columns(strategies.scores),
                                      on="ticker", how="left")
    result = BacktestResult(None, table, scores, scores_r, lag, cover, [verdict], fits, 0.0,
                            per_ticker, summary, skipped, strategy=strategies,
                            interval_method=config.backtest.interval_method,
                            interval_choice=choices, interval_rows=interval_rows,
                            interval_summary=interval_summary)
    result.seconds = time.perf_counter() - started
    if write:
        result.path = _write_panel(result, config, panel)
    return result


def _strategies(table: pd.DataFrame, config: Config) -> Strategies | None:
    """The trading rules on the backtest's step-1 forecasts, which need a cutoff every day."""
    if config.backtest.stride != 1:
        log.warning("no trading strategy in this backtest: its rules trade every day on "
                    "the next day's forecast; backtest with --stride 1 for one")
        return None
    return evaluate_strategies(table, config.strategy, seed=config.train.seed)


def _method_json(result: BacktestResult) -> dict:
    """The interval method for metrics.json: the method, and how ``auto`` chose it."""
    choice = result.interval_choice
    if isinstance(choice, dict):  # many tickers
        return {"method": result.interval_method, "calibration": CALIBRATION,
                "tickers": {t: (c.to_dict() if c else None) for t, c in choice.items()}}
    return {**(choice.to_dict() if choice else {"method": result.interval_method}),
            "calibration": CALIBRATION}


def _write_panel(result: BacktestResult, config: Config, panel) -> Path:
    from marketcast.api.panel import panel_summary

    skipped = pd.DataFrame({"ticker": list(result.skipped),
                            "reason": list(result.skipped.values())})
    return _write(result, config, "backtest-tickers",
                  {**result.distribution, "skipped": len(result.skipped),
                   **({"intervals": result.interval_summary} if result.interval_summary
                      else {}),
                   "data": panel_summary(panel)},
                  {layout.PER_TICKER: result.per_ticker, layout.SKIPPED: skipped,
                   **({layout.INTERVALS: result.interval_rows}
                      if result.interval_rows is not None and len(result.interval_rows)
                      else {})})


def _write_series(result: BacktestResult, config: Config, frame: pd.DataFrame) -> Path:
    return _write(result, config, f"backtest-{config.data.ticker or config.data.source}",
                  {"data": summarize(frame), "data_sha256": data_sha256(frame)}, {})


def _write(result: BacktestResult, config: Config, label: str, about_data: dict,
           tables: dict[str, pd.DataFrame]) -> Path:
    """The backtest folder: config, the long table, ``tables`` (per-ticker ones),
    metrics.json (``about_data`` first, then every score) and the report."""
    with run_folder.staged(config.output.runs_dir, config.output.name, kind=Kind.BACKTEST,
                           label=label) as folder:
        out = folder.path
        files.write_text(out / layout.CONFIG, config_to_toml(config))
        files.write_csv(out / layout.BACKTEST, result.table)
        if result.strategy is not None:
            tables = {**tables, layout.STRATEGY: result.strategy.table}
        for name, table in tables.items():
            files.write_csv(out / name, table)
        comparisons = result.comparisons
        files.write_json(out / layout.METRICS, {
            "kind": "backtest", **about_data,
            "fits": result.fits,
            "metrics": files.json_records(result.scores),
            "metrics_log_return": files.json_records(result.scores_log_return),
            "lag_copy": files.json_records(result.lag_copy),
            **({} if comparisons is None else {"comparisons": files.json_records(comparisons)}),
            **({} if result.mcs is None else {"mcs": result.mcs}),
            **({} if result.spa is None else {"spa": result.spa}),
            "interval": config.forecast.interval,
            "coverage": files.json_records(result.coverage),
            "interval_method": _method_json(result),
            "verdict": result.verdict,
            **({} if result.strategy is None else {"strategy": result.strategy.summary}),
            "wall_seconds": round(result.seconds, 2),
            "environment": files.environment(),
        })
        files.write_text(out / layout.REPORT, render_report(out, Kind.BACKTEST))
    return folder.final
