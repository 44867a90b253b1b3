"""The global model's run: one LSTM on windows pooled from many tickers of a long file."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast import files
from marketcast.api.display import Shown
from marketcast.api.save import MODEL_PACKAGES
from marketcast.config import Config, config_to_toml
from marketcast.errors import ArtifactError, ConfigError, DataError, os_errors
from marketcast.runs import folder as run_folder
from marketcast.runs import layout
from marketcast.runs.layout import Kind
from marketcast.runs.schema import finite_or_fail

if TYPE_CHECKING:  # scipy.stats and torch: not for `forecast`
    from marketcast.evaluation.strategy import Strategies
    from marketcast.nn.train import Callback


@dataclass
class GlobalRunResult(Shown):
    """A global model's run folder, per-ticker scores, their summary, skipped tickers and
    every ticker's forecast (``ticker, date, lstm, naive``)."""

    path: Path
    per_ticker: pd.DataFrame
    distribution: dict
    verdict: str
    skipped: dict[str, str]
    history: pd.DataFrame
    seconds: float
    forecast: pd.DataFrame | None
    tickers: list[str]
    # Trading rules on each ticker's test-period forecasts against its buy-and-hold.
    strategy: Strategies | None = None
    # Each ticker's step-1 interval evaluation per model and their summary (tickers
    # rejected by Kupiec and Christoffersen, raw and after Benjamini-Hochberg).
    interval_rows: pd.DataFrame | None = None
    interval_summary: dict | None = None

    plots = ("theils_u", "loss")

    def _title(self) -> str:
        return (f"Global LSTM of {len(self.tickers)} tickers ({len(self.skipped)} skipped; "
                f"{self.seconds:.1f} s; saved in {self.path})")

    def _verdict(self) -> list[str]:
        return [self.verdict] if self.verdict else []

    def _scores(self) -> pd.DataFrame:
        return self.per_ticker

    def _figure(self, name: str):
        from marketcast.report import plots

        if name == "loss":
            h = self.history
            best = h["epoch"].iloc[-1] if h["val_loss"].isna().all() else \
                h.loc[h["val_loss"].idxmin(), "epoch"]
            return plots.plot_loss(h, int(best))
        return plots.plot_theils_u(self.per_ticker)


def judge_intervals(table: pd.DataFrame, panel, config: Config):
    """Each ticker's test forecasts given intervals calibrated sequentially on its own
    residuals and judged as a value-at-risk model: the table with bounds, the per-ticker
    rows (``intervals.csv``), their summary and each ticker's forecast fan settings
    (:func:`~marketcast.pipeline.series.fan_settings`); no bounds with ``--interval 0``."""
    from marketcast.evaluation.interval_summary import (
        intervals_by_ticker,
        summarize_intervals,
        ticker_rows,
    )
    from marketcast.pipeline.series import fan_settings

    level = config.forecast.interval
    if not level:
        return table, pd.DataFrame(), {}, {}
    table, by_ticker = intervals_by_ticker(table, panel.series, level,
                                           config.backtest.interval_method)
    rows = ticker_rows(by_ticker)
    fans = {t: fan_settings(one, panel.series[t], level) for t, one in by_ticker.items()}
    return table, rows, summarize_intervals(rows, level), fans


@os_errors
def run_global(config: Config, callback: Callback | None = None,
               on_ticker: Callable[[int, int], None] | None = None,
               resume: bool | str | Path = False, evaluate: bool = True,
               trainer: Callable | None = None) -> GlobalRunResult:
    """One LSTM on windows pooled from ``config.data.tickers`` of a multi-ticker source.

    Each ticker is scaled on its own training rows; every ticker's test period is scored
    against naive and linear, and its residuals calibrate its own forecast interval. The
    run folder (kind ``global``) holds ``per_ticker.csv``, ``skipped.csv``, ``metrics.json``
    (the distribution summary), ``loss_history.csv``, ``config.toml``, ``residuals.csv`` and
    ``forecast.csv`` (both with a ``ticker`` column) and the model (``model.safetensors``
    and ``model.json``: the network, each ticker's scaler and last days), which
    :func:`forecast` reads with ``ticker=``. Training is checkpointed every epoch and
    ``resume`` continues a stopped run, as for one series (:func:`marketcast.run`).
    Without ``evaluate`` (``train --tickers``) the folder keeps the model, the loss history
    and the skipped tickers only; ``marketcast evaluate`` scores it later. ``trainer``
    trains the network elsewhere (:func:`marketcast.scale.train.run_global` passes Ray
    Train's, as ``config.train.workers`` asks); the folder is the same.
    """
    if config.train.workers and trainer is None:  # never silently in one process
        raise ConfigError("train.workers (--train-workers) trains on Ray: call "
                          "marketcast.scale.train.run_global, or set workers to 0")
    from marketcast.pipeline.global_model import (
        evaluate_tickers,
        fit_global,
        forecast_tickers,
        global_state,
        global_verdict,
        summarize_tickers,
        ticker_residuals,
    )
    from marketcast.pipeline.panel import load_panel, parse_tickers
    from marketcast.report import render_report
    from marketcast.runs import session as run_session  # checkpoints: imports torch

    if config.data.ticker:
        raise ConfigError("pass --ticker (one series) or --tickers (a global model), not both")
    if config.train.workers and trainer is None:
        raise ConfigError("train.workers trains on Ray Train: use marketcast.scale.train."
                          "run_global, or marketcast run --tickers ... --train-workers N")
    started = time.perf_counter()
    panel = load_panel(config, parse_tickers(config.data.tickers))
    with run_session.session(config, resume, label="global") as session:
        fit = fit_global(panel, config, callback, session.store, trainer)
        per_ticker, table, summary, residuals, future = pd.DataFrame(), None, {}, None, None
        strategies, interval_rows, interval_summary, fans = None, pd.DataFrame(), {}, {}
        if evaluate:  # as a reloaded folder forecasts (numpy): `evaluate --run` reproduces it
            served = dataclasses.replace(
                fit, models={t: m.to_numpy() for t, m in fit.models.items()})
            per_ticker, table = evaluate_tickers(served.models, panel, config, on_ticker)
            table, interval_rows, interval_summary, fans = judge_intervals(table, panel,
                                                                           config)
            summary = summarize_tickers(per_ticker)
            per_ticker, strategies = trade_tickers(per_ticker, table, config)
            residuals = ticker_residuals(served, panel, config)
            future = forecast_tickers(served, panel, config, residuals, fans)
        verdict = (global_verdict(summary, per_ticker["lstm_vs_naive"].tolist(),
                                  per_ticker["lstm_vs_naive_adjusted"].tolist())
                   if evaluate else "")
        tensors, meta = global_state(fit, panel, fans)
        history = pd.DataFrame([vars(e) for e in fit.history])
        skipped = pd.DataFrame({"ticker": list(panel.skipped),
                                "reason": list(panel.skipped.values())})
        seconds = time.perf_counter() - started
        with run_folder.staged(session.runs_dir, session.name, label="global",
                               kind=Kind.GLOBAL) as folder:
            out = folder.path
            files.write_text(out / layout.CONFIG, config_to_toml(config))
            files.write_csv(out / layout.SKIPPED, skipped)
            files.write_csv(out / layout.LOSS_HISTORY, history)
            if evaluate:
                files.write_csv(out / layout.PER_TICKER, per_ticker)
                files.write_csv(out / layout.TEST_FORECASTS, table)
                # Read back to calibrate forecast intervals: keep every digit.
                files.write_csv(out / layout.RESIDUALS, residuals, float_format="%.17g")
                files.write_csv(out / layout.FORECAST, future)
                files.write_csv(out / layout.STRATEGY, strategies.table)
                if len(interval_rows):
                    files.write_csv(out / layout.INTERVALS, interval_rows)
            run_folder.save_model(out, tensors, {
                **meta, "config": config.to_dict(),
                "versions": files.package_versions(MODEL_PACKAGES),
            })
            files.write_json(out / layout.METRICS, {
                "kind": "global", "tickers": len(panel.series), **summary,
                "verdict": [verdict] if verdict else [],
                **({"strategy": strategies.summary} if strategies else {}),
                **({"intervals": interval_summary} if interval_summary else {}),
                "skipped": len(panel.skipped), "data": panel_summary(panel),
                "windows_train": fit.windows_train, "windows_val": fit.windows_val,
                "best_epoch": fit.best_epoch, "epochs_run": len(history),
                "train_workers": config.train.workers,
                "wall_seconds": round(seconds, 2), "environment": files.environment(),
            })
            files.write_text(out / layout.REPORT, render_report(out, Kind.GLOBAL))
    return GlobalRunResult(folder.final, per_ticker, summary, verdict, panel.skipped, history,
                           seconds, future, panel.tickers, strategies, interval_rows,
                           interval_summary)


@dataclass
class GlobalEvaluation(Shown):
    """A global model's test periods re-scored: per-ticker scores, their summary and
    verdict, the long test-period table (``ticker`` column first) and the trading rules
    on every ticker's forecasts."""

    per_ticker: pd.DataFrame
    distribution: dict
    verdict: str
    table: pd.DataFrame
    strategy: Strategies | None = None
    interval_rows: pd.DataFrame | None = None
    interval_summary: dict | None = None

    plots = ("theils_u",)

    def _title(self) -> str:
        return f"Global LSTM re-scored on {len(self.per_ticker)} tickers"

    def _verdict(self) -> list[str]:
        return [self.verdict] if self.verdict else []

    def _scores(self) -> pd.DataFrame:
        return self.per_ticker

    def _figure(self, name: str):
        from marketcast.report import plots

        return plots.plot_theils_u(self.per_ticker)


def trade_tickers(per_ticker: pd.DataFrame, table: pd.DataFrame,
                  config: Config) -> tuple[pd.DataFrame, Strategies]:
    """The trading rules on each ticker's test-period forecasts (each ticker on its own),
    and ``per_ticker`` with each ticker's Sharpe ratios and their p-values added."""
    from marketcast.evaluation import strategy

    strategies = strategy.evaluate(table, config.strategy, seed=config.train.seed)
    per_ticker = per_ticker.merge(strategy.per_ticker_columns(strategies.scores),
                                  on="ticker", how="left")
    return per_ticker, strategies


@os_errors
def evaluate_global(run_dir: str | Path,
                    on_ticker: Callable[[int, int], None] | None = None) -> GlobalEvaluation:
    """Reload a global model's folder, check each ticker's data is unchanged, and re-score
    every ticker's test period (as ``run --tickers`` scored it)."""
    from marketcast.models import saved_lstm
    from marketcast.pipeline.global_model import (
        evaluate_tickers,
        global_verdict,
        summarize_tickers,
        ticker_meta,
    )
    from marketcast.pipeline.panel import load_panel
    from marketcast.pipeline.series import series_sha256

    tensors, meta = run_folder.load_model_files(Path(run_dir))
    try:
        config = Config.from_dict(meta["config"], where=f"{run_dir}/model.json")
        tickers = list(meta["tickers"])
        models = {t: saved_lstm(tensors, ticker_meta(meta, t)) for t in tickers}
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{run_dir} holds an unreadable model ({exc}); retrain it") from None
    panel = load_panel(config, tickers)
    changed = [t for t in tickers if t not in panel.series
               or series_sha256(panel.series[t]) != meta["tickers"][t].get("data_sha256")]
    if changed:
        raise DataError(
            f"the data of {', '.join(changed[:5])} in {config.data.source} changed since the "
            "model was trained (or is missing); evaluate with the original file or train again"
        )
    per_ticker, table = evaluate_tickers(models, panel, config, on_ticker)
    finite_or_fail(table["y_hat"], f"the test forecasts of {run_dir}")
    table, interval_rows, interval_summary, _ = judge_intervals(table, panel, config)
    summary = summarize_tickers(per_ticker)
    verdict = global_verdict(summary, per_ticker["lstm_vs_naive"].tolist(),
                             per_ticker["lstm_vs_naive_adjusted"].tolist())
    per_ticker, strategies = trade_tickers(per_ticker, table, config)
    return GlobalEvaluation(per_ticker, summary, verdict, table, strategies, interval_rows,
                            interval_summary)


def panel_summary(panel) -> dict:
    """First and last day and rows over every ticker of a panel (for metrics.json)."""
    dates = [one.dates for one in panel.series.values()]
    return {"start": min(d[0] for d in dates).date().isoformat(),
            "end": max(d[-1] for d in dates).date().isoformat(),
            "rows": int(sum(len(d) for d in dates))}


