"""The global model's run: one LSTM on windows pooled from many tickers of a long file."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from marketcast import files
from marketcast.api.save import MODEL_PACKAGES
from marketcast.config import Config, config_to_toml
from marketcast.errors import ConfigError
from marketcast.nn.train import Callback
from marketcast.runs import folder as run_folder


@dataclass
class GlobalRunResult:
    """A global model's run folder, per-ticker scores, their summary, skipped tickers and
    every ticker's forecast (``ticker, date, lstm, naive``)."""

    path: Path
    per_ticker: pd.DataFrame
    summary: dict
    verdict: str
    skipped: dict[str, str]
    history: pd.DataFrame
    seconds: float
    forecast: pd.DataFrame


def run_global(config: Config, callback: Callback | None = None,
               on_ticker: Callable[[int, int], None] | None = None) -> GlobalRunResult:
    """One LSTM on windows pooled from ``config.data.tickers`` of a long file.

    Each ticker is scaled on its own training rows; every ticker's test period is scored
    against naive and linear; the run folder holds ``per_ticker.csv``, ``skipped.csv``,
    ``metrics.json`` (the distribution summary), ``loss_history.csv``, ``config.toml``,
    ``forecast.csv`` (every ticker's next days) and the model (``model.safetensors`` and
    ``model.json``: the network, each ticker's scaler and last days), which
    :func:`forecast` reads with ``ticker=``.
    """
    from marketcast.pipeline.global_model import (
        evaluate_tickers,
        fit_global,
        forecast_tickers,
        global_state,
        global_verdict,
        summarize_tickers,
        ticker_models,
    )
    from marketcast.pipeline.panel import load_panel, parse_tickers, pool
    from marketcast.report import REPORT, render_report

    if config.data.ticker:
        raise ConfigError("pass --ticker (one series) or --tickers (a global model), not both")
    started = time.perf_counter()
    panel = load_panel(config, parse_tickers(config.data.tickers))
    pooled = pool(panel, config)
    fit = fit_global(pooled, config, callback)
    per_ticker = evaluate_tickers(fit, panel, config, on_ticker)
    summary = summarize_tickers(per_ticker)
    models = ticker_models(fit, panel, config)
    future = forecast_tickers(models, panel, config)
    tensors, meta = global_state(models, panel)
    history = pd.DataFrame([vars(e) for e in fit.history])
    skipped = pd.DataFrame({"ticker": list(panel.skipped), "reason": list(panel.skipped.values())})
    seconds = time.perf_counter() - started
    folder = run_folder.RunFolder(config.output.runs_dir, config.output.name, label="global")
    try:
        out = folder.path
        files.write_text(out / "config.toml", config_to_toml(config))
        files.write_csv(out / "per_ticker.csv", per_ticker)
        files.write_csv(out / "skipped.csv", skipped)
        files.write_csv(out / "loss_history.csv", history)
        files.write_csv(out / "forecast.csv", future)
        run_folder.save_model(out, tensors, {
            **meta, "config": config.to_dict(),
            "versions": files.package_versions(MODEL_PACKAGES),
        })
        files.write_json(out / "metrics.json", {
            "kind": "global", **summary, "verdict": [global_verdict(summary)],
            "skipped": len(panel.skipped), "data": _panel_summary(panel),
            "windows_train": len(pooled.train_origins), "windows_val": len(pooled.val_origins),
            "best_epoch": fit.best_epoch, "epochs_run": len(history),
            "wall_seconds": round(seconds, 2), "environment": files.environment(),
        })
        files.write_text(out / REPORT, render_report(out))
        path = folder.finish()
    except BaseException:
        folder.discard()
        raise
    return GlobalRunResult(path, per_ticker, summary, global_verdict(summary), panel.skipped,
                           history, seconds, future)


def _panel_summary(panel) -> dict:
    dates = [one.dates for one in panel.series.values()]
    return {"start": min(d[0] for d in dates).date().isoformat(),
            "end": max(d[-1] for d in dates).date().isoformat(),
            "rows": int(sum(len(d) for d in dates))}


