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

from marketcast.api.panel import GlobalEvaluation, evaluate_global
from marketcast.api.results import Evaluation, RunResult, Trained
from marketcast.api.save import RESIDUALS, label, write_run
from marketcast.config import Config, load_config
from marketcast.data import data_sha256
from marketcast.data.quality import note_quality
from marketcast.errors import ArtifactError, ConfigError, DataError, NotMultiTicker
from marketcast.models import BaseForecaster, NaiveForecaster, saved_lstm
from marketcast.pipeline.series import (
    Series,
    add_interval,
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

if TYPE_CHECKING:  # the training loop imports torch; forecasts do not need it
    from marketcast.nn.train import Callback, Checkpoints


def train(config: Config | None = None, callback: Callback | None = None,
          checkpoints: Checkpoints | None = None) -> Trained:
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
    from marketcast.runs import session as run_session  # checkpoints: imports torch

    config = config or Config()
    with run_session.session(config, resume, label=label(config)) as session:
        trained = train(config, callback, session.store)
        path = write_run(trained, None, None, 0.0, session.runs_dir, session.name)
    return trained, path


def evaluate(trained: Trained) -> Evaluation:
    """Score every model on the test period, each forecasting from the true history only,
    and trade on its one-day-ahead forecasts (:mod:`marketcast.evaluation.strategy`)."""
    # scipy.stats and arch: not for `forecast`
    from marketcast.evaluation import strategy
    from marketcast.evaluation.metrics import accuracy, compare, verdict

    # Scored as a reloaded run is (numpy), so `evaluate --run` reproduces these figures.
    config, lstm = trained.config, trained.lstm.to_numpy()
    models = {**trained.models, "lstm": lstm}
    table = test_table(models, trained.series, trained.split, config.model.horizon)
    scores = accuracy(table)
    comparisons = compare(table, ["lstm"])
    # Recursion needs the target as only input; with extra features stop at the horizon.
    steps = config.forecast.days if lstm.transform_.n_features_ == 1 else config.model.horizon
    residuals = test_residuals(lstm, trained.series, trained.split, steps)
    strategies = strategy.evaluate(table, config.strategy, seed=config.train.seed)
    return Evaluation(table, scores, accuracy(table, by_step=True), verdict(comparisons),
                      residuals, comparisons, strategies)


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
    return evaluate(trained)


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
        path = Path(self.run_dir) / RESIDUALS
        if not path.is_file():
            return None
        return pd.read_csv(path, keep_default_na=False, dtype={"ticker": str})

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
        if level and self.residuals is not None:
            residuals = self.residuals
            if "ticker" in residuals.columns:  # a global model's: that ticker's own residuals
                residuals = residuals[residuals["ticker"] == meta["ticker"]]
            future = add_interval(future, residuals, level)
        return future


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


def run(config: Config | None = None, callback: Callback | None = None,
        config_path: str | Path | None = None, resume: bool | str | Path = False) -> RunResult:
    """Data to trained model, evaluation, forecast and plots, written as one run folder.

    Training saves a checkpoint every epoch under ``<runs_dir>/.checkpoints/<name>``.
    ``resume`` continues a stopped run from its last checkpoint: True for the run named
    ``config.output.name``, or the path of its checkpoint folder. ``config`` must then equal
    the run's saved settings (see :func:`marketcast.runs.session.resume_config`); the result is
    the same, bit for bit, as if the run had never stopped.
    """
    from marketcast.runs import session as run_session  # checkpoints: imports torch

    started = time.perf_counter()
    config = config or load_config(config_path)
    with run_session.session(config, resume, label=label(config)) as session:
        trained = train(config, callback, session.store)
        evaluation = evaluate(trained)
        future = future_forecast(  # as `marketcast forecast` reproduces it from the folder
            {"lstm": trained.lstm.to_numpy(), "naive": trained.models["naive"]}, trained.series,
            future_days(trained.series, config.model.horizon, config.forecast.days),
        )
        if config.forecast.interval:
            future = add_interval(future, evaluation.residuals, config.forecast.interval)
        seconds = time.perf_counter() - started
        path = write_run(trained, evaluation, future, seconds, session.runs_dir, session.name)
    return RunResult(path, trained, evaluation, future, seconds)
