"""The public Python API; each CLI command is one function here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from marketcast import artifacts, checkpoint
from marketcast.config import Config, config_to_toml, load_config
from marketcast.data import data_sha256, summarize
from marketcast.data.quality import note_quality
from marketcast.errors import ArtifactError, ConfigError, DataError, NotMultiTicker
from marketcast.models import BaseForecaster, LSTMForecaster, NaiveForecaster
from marketcast.pipeline import (
    Series,
    add_interval,
    fit_models,
    future_days,
    future_forecast,
    load_series,
    split_series,
    test_residuals,
    test_table,
    wide_predictions,
)
from marketcast.train import Callback
from marketcast.windows import Split

RESIDUALS = "residuals.csv"
# Versions saved in model.json: what loading the weights depends on.
MODEL_PACKAGES = ("marketcast", "torch", "numpy", "pandas", "scikit-learn", "safetensors")


@dataclass
class Trained:
    """Fitted models with the data and split they were fitted on."""

    config: Config
    frame: pd.DataFrame
    series: Series
    split: Split
    models: dict[str, BaseForecaster]

    @property
    def lstm(self) -> LSTMForecaster:
        return self.models["lstm"]

    def history(self) -> pd.DataFrame:
        return pd.DataFrame([vars(e) for e in self.lstm.history_])


@dataclass
class Evaluation:
    """Test-period forecasts (long table) and their scores."""

    table: pd.DataFrame
    scores: pd.DataFrame
    scores_by_step: pd.DataFrame
    verdict: list[str] = field(default_factory=list)
    # LSTM out-of-sample residuals per step up to the forecast length (for intervals).
    residuals: pd.DataFrame | None = None


@dataclass
class RunResult:
    path: Path
    trained: Trained
    evaluation: Evaluation
    forecast: pd.DataFrame
    seconds: float


def train(config: Config | None = None, callback: Callback | None = None,
          checkpoints: checkpoint.CheckpointStore | None = None) -> Trained:
    """Load the configured data, split it and fit the LSTM and both baselines.

    Everything is fitted on rows before the test period; scalers on the training rows only.
    With ``checkpoints``, the LSTM continues from its last checkpoint and saves one per epoch.
    """
    config = config or Config()
    frame, series = load_series(config)
    note_quality(frame, config.data.target)
    split = split_series(series, config)
    models = fit_models(series, split, config, callback, checkpoints=checkpoints)
    return Trained(config, frame, series, split, models)


def train_run(config: Config | None = None, callback: Callback | None = None,
              resume: bool | str | Path = False) -> tuple[Trained, Path]:
    """What ``marketcast train`` does: :func:`train`, then save the model as a run folder.

    Training is checkpointed every epoch; ``resume`` works as in :func:`run`.
    """
    config = config or Config()
    with checkpoint.session(config, resume, label=_label(config)) as session:
        trained = train(config, callback, session.store)
        path = write_run(trained, None, None, 0.0, session.runs_dir, session.name)
    return trained, path


def evaluate(trained: Trained) -> Evaluation:
    """Score every model on the test period, each forecasting from the true history only."""
    from marketcast.metrics import accuracy, verdict  # scipy.stats: not for `forecast`

    config, lstm = trained.config, trained.lstm
    table = test_table(trained.models, trained.series, trained.split, config.model.horizon)
    scores = accuracy(table)
    # Recursion needs the target as only input; with extra features stop at the horizon.
    steps = config.forecast.days if lstm.transform_.n_features_ == 1 else config.model.horizon
    residuals = test_residuals(lstm, trained.series, trained.split, steps)
    return Evaluation(table, scores, accuracy(table, by_step=True), verdict(scores), residuals)


def evaluate_run(run_dir: str | Path) -> Evaluation:
    """Reload a saved run, check its data is unchanged, and re-score the test period."""
    config, lstm, meta = load_run(run_dir, ticker=_SCORED_ELSEWHERE)
    frame, series = load_series(config)
    if data_sha256(frame) != meta["data_sha256"]:
        raise DataError(
            f"the data of {config.data.source} changed since the model was trained (sha256 "
            "differs); evaluate with the original file or train again"
        )
    split = split_series(series, config)
    models = fit_models(series, split, config, names=("naive", "linear"))
    trained = Trained(config, frame, series, split, {"lstm": lstm, **models})
    return evaluate(trained)


def forecast(
    run_dir: str | Path, data: str | None = None, days: int | None = None,
    interval: float | None = None, ticker: str | None = None,
) -> pd.DataFrame:
    """Forecast with a saved model: after its training data, or after the end of ``data``.

    Returns a frame ``date, lstm, [lstm_lower, lstm_upper,] naive`` on NYSE trading dates.
    The interval (default: the run's ``forecast.interval``) is conformal, calibrated on the
    run's out-of-sample test residuals (a global model's folder has none). ``ticker`` picks
    the ticker of a global model (``run --tickers``).
    """
    config, lstm, meta = load_run(run_dir, ticker)
    level = config.forecast.interval if interval is None else interval
    residuals_path = Path(run_dir) / RESIDUALS
    if interval and not residuals_path.is_file():
        raise ArtifactError(
            f"{run_dir} has no test residuals to calibrate an interval (a `train` folder, or a "
            "global model's); use a folder from a single-series `marketcast run`, or drop "
            "--interval"
        )
    if data is None:
        dates = pd.DatetimeIndex(pd.to_datetime(meta["context_dates"]))
        series = Series(dates, lstm.y_, lstm.X_, tuple(meta["features"]))
    else:
        newer = dataclasses.replace(config.data, source=data, start=None, end=None)
        if ticker is not None:  # a global model: that ticker's rows of the file
            newer = dataclasses.replace(newer, ticker=ticker, tickers=())
        try:
            _, series = load_series(dataclasses.replace(config, data=newer))
        except NotMultiTicker:  # a file of that ticker alone
            newer = dataclasses.replace(newer, ticker=None)
            _, series = load_series(dataclasses.replace(config, data=newer))
        need = lstm.transform_.offset + lstm.transform_.lookback
        if len(series.y) < need:
            raise DataError(f"{data} has {len(series.y)} rows; the model needs at least {need}")
    naive = NaiveForecaster().fit(series.y)
    days = days or future_days(series, config.model.horizon, config.forecast.days)
    future = future_forecast({"lstm": lstm, "naive": naive}, series, days)
    if level and residuals_path.is_file():
        future = add_interval(future, pd.read_csv(residuals_path), level)
    return future


# Passed by evaluate_run: a global model's folder already holds its scores.
_SCORED_ELSEWHERE = object()


def load_run(run_dir: str | Path, ticker=None) -> tuple[Config, LSTMForecaster, dict]:
    """Config, LSTM and metadata of a verified run folder (no pickle involved).

    A global model's folder needs ``ticker``: the LSTM is the shared network behind that
    ticker's scaler, and the metadata that ticker's.
    """
    tensors, meta = artifacts.load_model_files(Path(run_dir))
    if meta.get("kind") == "global":
        meta = _global_ticker(run_dir, meta, ticker)
    elif isinstance(ticker, str):
        raise ConfigError(
            f"{run_dir} holds a model of one series; --ticker is for the folders of "
            "`marketcast run --tickers`: drop it"
        )
    try:
        config = Config.from_dict(meta["config"], origin=f"{run_dir}/model.json")
        model = LSTMForecaster.from_state(tensors, meta)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{run_dir} holds an unreadable model ({exc}); retrain it") from None
    return config, model, meta


def _global_ticker(run_dir, meta: dict, ticker) -> dict:
    from marketcast.global_model import ticker_meta

    tickers = list(meta.get("tickers", {}))
    if isinstance(ticker, str):
        ticker = ticker.strip().upper()
    if ticker is _SCORED_ELSEWHERE:
        raise ArtifactError(
            f"{run_dir} holds a global model: its test-period scores are in per_ticker.csv "
            "there, one row per ticker"
        )
    if ticker is None or ticker not in tickers:
        shown = ", ".join(tickers[:8]) + (f", ... ({len(tickers)} in all)"
                                          if len(tickers) > 8 else "")
        what = "needs --ticker" if ticker is None else f"has no ticker {ticker!r}"
        skipped = Path(run_dir) / "skipped.csv"
        if ticker and skipped.is_file() and ticker in set(pd.read_csv(
                skipped, keep_default_na=False)["ticker"].astype(str)):
            what += " (it was skipped; skipped.csv says why)"
        raise ConfigError(f"{run_dir} holds a global model and {what}: one of {shown}")
    return ticker_meta(meta, ticker)


def run(config: Config | None = None, callback: Callback | None = None,
        config_path: str | Path | None = None, resume: bool | str | Path = False) -> RunResult:
    """Data to trained model, evaluation, forecast and plots, written as one run folder.

    Training saves a checkpoint every epoch under ``<runs_dir>/.checkpoints/<name>``.
    ``resume`` continues a stopped run from its last checkpoint: True for the run named
    ``config.output.name``, or the path of its checkpoint folder. ``config`` must then equal
    the run's saved settings (see :func:`marketcast.checkpoint.resume_config`); the result is
    the same, bit for bit, as if the run had never stopped.
    """
    started = time.perf_counter()
    config = config or load_config(config_path)
    with checkpoint.session(config, resume, label=_label(config)) as session:
        trained = train(config, callback, session.store)
        evaluation = evaluate(trained)
        future = future_forecast(
            {"lstm": trained.lstm, "naive": trained.models["naive"]}, trained.series,
            future_days(trained.series, config.model.horizon, config.forecast.days),
        )
        if config.forecast.interval:
            future = add_interval(future, evaluation.residuals, config.forecast.interval)
        seconds = time.perf_counter() - started
        path = write_run(trained, evaluation, future, seconds, session.runs_dir, session.name)
    return RunResult(path, trained, evaluation, future, seconds)


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
    from marketcast.global_model import (
        evaluate_tickers,
        fit_global,
        forecast_tickers,
        global_state,
        global_verdict,
        summarize_tickers,
        ticker_models,
    )
    from marketcast.panel import load_panel, parse_tickers, pool
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
    folder = artifacts.RunFolder(config.output.runs_dir, config.output.name, label="global")
    try:
        out = folder.path
        artifacts.write_text(out / "config.toml", config_to_toml(config))
        artifacts.write_csv(out / "per_ticker.csv", per_ticker)
        artifacts.write_csv(out / "skipped.csv", skipped)
        artifacts.write_csv(out / "loss_history.csv", history)
        artifacts.write_csv(out / "forecast.csv", future)
        artifacts.save_model(out, tensors, {
            **meta, "config": config.to_dict(),
            "versions": artifacts.package_versions(MODEL_PACKAGES),
        })
        artifacts.write_json(out / "metrics.json", {
            "kind": "global", **summary, "verdict": [global_verdict(summary)],
            "skipped": len(panel.skipped), "data": _panel_summary(panel),
            "windows_train": len(pooled.train_origins), "windows_val": len(pooled.val_origins),
            "best_epoch": fit.best_epoch, "epochs_run": len(history),
            "wall_seconds": round(seconds, 2), "environment": artifacts.environment(),
        })
        artifacts.write_text(out / REPORT, render_report(out))
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


def write_run(trained: Trained, evaluation: Evaluation | None, future: pd.DataFrame | None,
              seconds: float, runs_dir: str | Path | None = None,
              name: str | None = None) -> Path:
    """Write the run folder atomically; a failure leaves no folder behind.

    It goes to ``runs_dir/name``, by default the configured folder and name.
    """
    config = trained.config
    folder = artifacts.RunFolder(runs_dir or config.output.runs_dir, name or config.output.name,
                                 label=_label(config))
    try:
        _write_contents(folder.path, trained, evaluation, future, seconds)
        return folder.finish()
    except BaseException:
        folder.discard()
        raise


def _write_contents(out: Path, trained: Trained, evaluation, future, seconds) -> None:
    # Imported here: matplotlib and scipy.stats take ~1.3 s to import, which `forecast`
    # (and so `marketcast forecast`) never needs.
    from marketcast import plots
    from marketcast.report import REPORT, render_report

    config, split = trained.config, trained.split
    artifacts.write_text(out / "config.toml", config_to_toml(config))
    history = trained.history()
    artifacts.write_csv(out / "loss_history.csv", history)
    plots.plot_loss(history, trained.lstm.best_epoch_, out / "loss.png")
    tensors, meta = trained.lstm.get_state()
    # Forecasts start after the last day of the data, so that is the context saved with it.
    series, rows = trained.series, len(trained.lstm.y_)
    meta.update({
        "config": config.to_dict(),
        "features": list(series.feature_names),
        "context_y": series.y[-rows:].tolist(),
        "context_X": None if series.X is None else series.X[-rows:].tolist(),
        "context_dates": [d.date().isoformat() for d in series.dates[-rows:]],
        "data_sha256": data_sha256(trained.frame),
        "data_rows": len(trained.frame),
        "versions": artifacts.package_versions(MODEL_PACKAGES),
    })
    artifacts.save_model(out, tensors, meta)
    summary = {
        "data": summarize(trained.frame, config.data.target),
        "data_sha256": meta["data_sha256"],
        "split": _split_dates(trained.series.dates, split),
        "best_epoch": trained.lstm.best_epoch_,
        "epochs_run": len(history),
        "wall_seconds": round(seconds, 2),
        "environment": artifacts.environment(),
    }
    if evaluation is not None:
        artifacts.write_csv(out / "test_forecasts.csv", evaluation.table)
        predictions = wide_predictions(evaluation.table)
        artifacts.write_csv(out / "predictions.csv", predictions)
        # Read back to calibrate forecast intervals: keep every digit.
        artifacts.write_csv(out / RESIDUALS, evaluation.residuals, float_format="%.17g")
        plots.plot_test(predictions, config.data.target, out / "test.png")
        summary["metrics"] = artifacts.json_records(evaluation.scores)
        summary["metrics_by_step"] = artifacts.json_records(evaluation.scores_by_step)
        summary["verdict"] = evaluation.verdict
    if future is not None:
        artifacts.write_csv(out / "forecast.csv", future)
        target = pd.Series(trained.series.y, index=trained.series.dates)
        plots.plot_forecast(target, future, config.data.target, out / "forecast.png")
    artifacts.write_json(out / "metrics.json", summary)
    # Rendered from the files above, before the manifest, which then vouches for it too.
    artifacts.write_text(out / REPORT, render_report(out))


def _label(config: Config) -> str:
    """What names an unnamed run: the ticker or the data source."""
    return config.data.ticker or config.data.source


def _split_dates(dates: pd.DatetimeIndex, split: Split) -> dict:
    def span(a: int, b: int) -> list[str] | None:
        return [dates[a].date().isoformat(), dates[b - 1].date().isoformat()] if b > a else None

    return {
        "train": span(0, split.n_train),
        "validation": span(split.n_train, split.test_start),
        "test": span(split.test_start, len(dates)),
        "rows": [split.n_train, split.n_val, split.n_test],
    }
