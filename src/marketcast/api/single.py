"""The public Python API; each CLI command is one function here."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast.api.inputs import Data, resolve, write_target
from marketcast.api.panel import GlobalEvaluation, evaluate_global
from marketcast.api.results import Evaluation, RunResult, Trained
from marketcast.api.save import RESIDUALS, label, write_run
from marketcast.config import LIMITS, Config
from marketcast.data import data_sha256
from marketcast.data.quality import note_quality
from marketcast.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    NotMultiTicker,
    os_errors,
    shown,
)
from marketcast.evaluation.intervals import ewma_volatility
from marketcast.models import BaseForecaster, NaiveForecaster, saved_lstm
from marketcast.pipeline.series import (
    Series,
    add_interval,
    fan_settings,
    fit_models,
    future_days,
    future_forecast,
    load_series,
    split_series,
    test_residuals,
    test_table,
)
from marketcast.runs import folder as run_folder
from marketcast.runs.layout import Kind
from marketcast.runs.residuals import read_residuals
from marketcast.runs.schema import finite_or_fail

if TYPE_CHECKING:  # the training loop imports torch; forecasts do not need it
    from marketcast.nn.train import Callback, Checkpoints


@os_errors
def train(config: Config | None = None, callback: Callback | None = None,
          checkpoints: Checkpoints | None = None, data=None) -> Trained:
    """Load the configured data (or ``data``, prices in memory), split it and fit the LSTM
    and both baselines.

    Everything is fitted on rows before the test period; scalers on the training rows only.
    With ``checkpoints``, the LSTM continues from its last checkpoint and saves one per epoch.
    """
    config = config or Config()
    frame, series = load_series(config, data)
    note_quality(frame, config.data.target)
    split = split_series(series, config)
    models = fit_models(series, split, config, callback, checkpoints=checkpoints)
    return Trained(config, frame, series, split, models)


@os_errors
def train_run(config: Config | None = None, callback: Callback | None = None,
              resume: bool | str | Path = False, track: str | None = None,
              ) -> tuple[Trained, Path]:
    """What ``marketcast train`` does: :func:`train`, then save the model as a run folder.

    Training is checkpointed every epoch; ``resume`` works as in :func:`run`; ``track``
    logs the model folder to MLflow (:mod:`marketcast.api.tracking`).
    """
    from marketcast.runs import session as run_session  # checkpoints: imports torch

    config = config or Config()
    if track:
        from marketcast.api.tracking import require_mlflow

        require_mlflow()
    with run_session.session(config, resume, label=label(config)) as session:
        trained = train(config, callback, session.store)
        path = write_run(trained, None, None, 0.0, session.runs_dir, session.name)
    if track:
        from marketcast.api.tracking import log_trained

        log_trained(track, trained, path)
    return trained, path


@os_errors
def evaluate(trained: Trained) -> Evaluation:
    """Score every model on the test period, each forecasting from the true history only,
    and trade on its one-day-ahead forecasts (:mod:`marketcast.evaluation.strategy`).

    Each test forecast gets an interval calibrated only on the test residuals known at its
    cutoff (as in a backtest), judged as a value-at-risk model on the cutoffs after the
    choice of method (:func:`marketcast.evaluation.adaptive.evaluate_intervals`)."""
    # scipy.stats and arch: not for `forecast`
    from marketcast.evaluation import strategy
    from marketcast.evaluation.adaptive import evaluate_intervals
    from marketcast.evaluation.metrics import accuracy, compare, verdict

    # Scored as a reloaded run is (numpy), so `evaluate --run` reproduces these figures.
    config, lstm = trained.config, trained.lstm.to_numpy()
    models = {**trained.models, "lstm": lstm}
    table = test_table(models, trained.series, trained.split, config.model.horizon)
    intervals = None
    if config.forecast.interval:  # calibrated sequentially: never on the residual judged
        intervals = evaluate_intervals(table, trained.series.dates, trained.series.y,
                                       config.forecast.interval,
                                       config.backtest.interval_method)
        table = intervals.table
    scores = accuracy(table)
    comparisons = compare(table, ["lstm"])
    # Recursion needs the target as only input; with extra features stop at the horizon.
    steps = config.forecast.days if lstm.transform_.n_features_ == 1 else config.model.horizon
    residuals = test_residuals(lstm, trained.series, trained.split, steps)
    strategies = strategy.evaluate(table, config.strategy, seed=config.train.seed)
    fan = fan_settings(intervals, trained.series, config.forecast.interval)
    return Evaluation(table, scores, accuracy(table, by_step=True), verdict(comparisons),
                      residuals, comparisons, strategies, intervals, fan)


@os_errors
def evaluate_run(run_dir: str | Path) -> Evaluation | GlobalEvaluation:
    """Reload a saved run, check its data is unchanged, and re-score the test period (every
    ticker's, for a global model's folder: :func:`marketcast.api.panel.evaluate_global`)."""
    if run_folder.kind_of(run_folder.check_run(run_dir)) == Kind.GLOBAL:
        return evaluate_global(run_dir)
    config, lstm, meta = load_run(run_dir, engine="numpy")
    frame, series = load_series(config)
    if data_sha256(frame) != meta["data_sha256"]:
        raise DataError(
            f"the data of {config.data.source} changed since the model was trained (sha256 "
            "differs); evaluate with the original file or train again"
        )
    split = split_series(series, config)
    models = fit_models(series, split, config, names=("naive", "linear"))
    trained = Trained(config, frame, series, split, {"lstm": lstm, **models})
    result = evaluate(trained)
    finite_or_fail(result.table["y_hat"], f"the test forecasts of {run_dir}")
    return result


@os_errors
def forecast_tickers(
    run_dir: str | Path, tickers: Sequence[str], data: str | None = None,
    days: int | None = None, interval: float | None = None, engine: str = "numpy",
) -> pd.DataFrame:
    """:func:`forecast` for several tickers of a global model's folder (``["all"]``: every
    one), as one long table with a ``ticker`` column first. The folder is verified and read
    once, whatever the number of tickers."""
    names = [t.strip().upper() for t in tickers if t.strip()]
    if not names:
        raise ConfigError("--tickers is empty; pass `all` or a comma-separated list")
    saved = _SavedRun.read(run_dir)
    if saved.kind != Kind.GLOBAL:
        raise ConfigError(f"{run_dir} holds a model of one series; --tickers is for the "
                          "folders of `marketcast run --tickers`: drop it")
    if names == ["ALL"]:
        names = list(saved.meta["tickers"])
    frames = [saved.forecast(data, days, interval, ticker=t, engine=engine).assign(ticker=t)
              for t in names]
    table = pd.concat(frames, ignore_index=True)
    return table[["ticker", *(c for c in table.columns if c != "ticker")]]


@os_errors
def forecast(
    run_dir: str | Path, data: str | None = None, days: int | None = None,
    interval: float | None = None, ticker: str | None = None, engine: str = "numpy",
) -> pd.DataFrame:
    """Forecast with a saved model: after its training data, or after the end of ``data``.

    Returns a frame ``date, lstm, [lstm_lower, lstm_upper,] naive`` on NYSE trading dates.
    The interval (default: the run's ``forecast.interval``) is conformal, calibrated on the
    run's out-of-sample test residuals (a global model's: that ticker's own). ``ticker``
    picks the ticker of a global model (``run --tickers``). ``engine`` computes the network
    with numpy (the default: torch is never imported) or torch (the same forecasts within
    float32 rounding; tests/test_inference.py).
    """
    return _SavedRun.read(run_dir).forecast(data, days, interval, ticker, engine)


@dataclass
class _SavedRun:
    """A verified model folder read once: weights, metadata, kind (and test residuals, read
    when an interval first needs them)."""

    run_dir: str | Path
    tensors: dict
    meta: dict
    kind: Kind

    @classmethod
    def read(cls, run_dir: str | Path) -> _SavedRun:
        tensors, meta = run_folder.load_model_files(Path(run_dir))
        return cls(run_dir, tensors, meta, run_folder.kind_of(run_dir))

    @functools.cached_property
    def residuals(self) -> pd.DataFrame | None:
        return read_residuals(self.run_dir, self.meta)

    def model(self, ticker=None, engine: str = "numpy") -> tuple[Config, BaseForecaster, dict]:
        """Config, LSTM (computed with ``engine``) and metadata (of ``ticker``, for a global
        model's folder)."""
        run_dir, meta = self.run_dir, self.meta
        if self.kind == Kind.GLOBAL:
            meta = _global_ticker(run_dir, meta, ticker)
        elif isinstance(ticker, str):
            raise ConfigError(
                f"{run_dir} holds a model of one series; --ticker is for the folders of "
                "`marketcast run --tickers`: drop it"
            )
        try:
            config = Config.from_dict(meta["config"], where=f"{run_dir}/model.json")
            model = saved_lstm(self.tensors, meta, engine)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(
                f"{run_dir} holds an unreadable model ({exc}); retrain it") from None
        return config, model, meta

    def forecast(self, data, days, interval, ticker=None, engine="numpy") -> pd.DataFrame:
        """What :func:`forecast` returns, from this folder."""
        run_dir = self.run_dir
        _check_forecast_options(days, interval)
        config, lstm, meta = self.model(ticker, engine)
        level = config.forecast.interval if interval is None else interval
        if interval and not (Path(run_dir) / RESIDUALS).is_file():
            raise ArtifactError(
                f"{run_dir} has no test residuals to calibrate an interval (a `train` "
                "folder); use a folder from `marketcast run`, or drop --interval"
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
                raise DataError(
                    f"{data} has {len(series.y)} rows; the model needs at least {need}")
        naive = NaiveForecaster().fit(series.y)
        days = days or future_days(series, config.model.horizon, config.forecast.days)
        future = future_forecast({"lstm": lstm, "naive": naive}, series, days)
        finite_or_fail(future["lstm"], f"the forecast of {run_dir}")
        if level and self.residuals is not None:
            residuals = self.residuals
            if "ticker" in residuals.columns:  # a global model's: that ticker's own residuals
                residuals = residuals[residuals["ticker"] == meta["ticker"]]
            fan = meta.get("fan") or {"volatility": None}
            volatility = fan["volatility"]
            if volatility is not None and data is not None:  # the newer data's own
                volatility = float(ewma_volatility(series.dates, series.y).iloc[-1])
            if interval is None and "level" in fan:
                level = fan["level"]
            future = add_interval(future, residuals, level, volatility=volatility)
        return future


def _check_forecast_options(days, interval) -> None:
    limit = LIMITS[("forecast", "days")]
    if days is not None and not 1 <= days <= limit:
        raise ConfigError(f"--days {shown(days)} must be between 1 and {limit}")
    if interval is not None and not 0 <= interval < 1:  # NaN fails both comparisons
        raise ConfigError(f"--interval {shown(interval)} must be in [0, 1), 0 for none; "
                          "e.g. 0.9")


@os_errors
def load_run(run_dir: str | Path, ticker=None,
             engine: str = "torch") -> tuple[Config, BaseForecaster, dict]:
    """Config, LSTM and metadata of a verified run folder (no pickle involved).

    A global model's folder needs ``ticker``: the LSTM is the shared network behind that
    ticker's scaler, and the metadata that ticker's. ``engine="torch"`` gives a
    :class:`~marketcast.models.lstm.LSTMForecaster` (its network a torch module);
    ``"numpy"`` a :class:`~marketcast.models.NumpyLSTMForecaster`, which forecasts the same
    without importing torch.
    """
    return _SavedRun.read(run_dir).model(ticker, engine)


def _global_ticker(run_dir, meta: dict, ticker) -> dict:
    from marketcast.pipeline.global_model import ticker_meta

    tickers = list(meta.get("tickers", {}))
    if isinstance(ticker, str):
        ticker = ticker.strip().upper()
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


@os_errors
def run(data: Data | Config = None, *, config: Config | None = None,
        write: bool | str | Path | None = None, track: str | None = None,
        callback: Callback | None = None, config_path: str | Path | None = None,
        resume: bool | str | Path = False, **settings) -> RunResult:
    """Data to trained model, evaluation, forecast and plots.

    ``data``: prices in memory (a Series indexed by date, or a DataFrame with the target and
    feature columns), a source (``"sp500"``, a file path), or None for the configured one.
    ``settings`` override single settings by name (``epochs=20``, ``lookback=30``,
    ``days=10``; see :mod:`marketcast.config`). ``write``: True saves the run folder under
    ``output.runs_dir``, a path saves it under that folder, False keeps it in memory; by
    default it is saved only when a ``config`` (or ``config_path``) is passed, as the
    command line does. ``track``: an MLflow tracking URI to log the run to
    (:mod:`marketcast.api.tracking`).

    A saved run checkpoints every epoch under ``<runs_dir>/.checkpoints/<name>``.
    ``resume`` continues a stopped run from its last checkpoint: True for the run named
    ``config.output.name``, or the path of its checkpoint folder. ``config`` must then equal
    the run's saved settings (see :func:`marketcast.runs.session.resume_config`); the result is
    the same, bit for bit, as if the run had never stopped.
    """
    from marketcast.runs import session as run_session  # checkpoints: imports torch

    if isinstance(data, Config):  # run(config): the command line's call
        data, config = None, data
    started = time.perf_counter()
    if track:  # before the work: the install hint must not wait for the run
        from marketcast.api.tracking import require_mlflow

        require_mlflow()
    given = config is not None or config_path is not None
    config, prices = resolve(data, config, config_path, settings)
    saved = write_target(write, given, config)
    if saved is None:
        if resume:
            raise ConfigError("resume continues a saved run; pass write=True")
        result = _run(config, prices, callback, None, started)
    else:
        config = saved
        with run_session.session(config, resume, label=label(config)) as session:
            result = _run(config, prices, callback, session.store, started)
            result.path = write_run(result.trained, result.evaluation, result.forecast,
                                    result.seconds, session.runs_dir, session.name)
    if track:
        from marketcast.api.tracking import log_result

        log_result(track, result)
    return result


def _run(config: Config, prices, callback, store, started: float) -> RunResult:
    trained = train(config, callback, store, data=prices)
    evaluation = evaluate(trained)
    future = future_forecast(  # as `marketcast forecast` reproduces it from the folder
        {"lstm": trained.lstm.to_numpy(), "naive": trained.models["naive"]}, trained.series,
        future_days(trained.series, config.model.horizon, config.forecast.days),
    )
    if config.forecast.interval:
        fan = evaluation.fan
        future = add_interval(future, evaluation.residuals, fan["level"],
                              volatility=fan["volatility"])
    return RunResult(None, trained, evaluation, future, time.perf_counter() - started)
