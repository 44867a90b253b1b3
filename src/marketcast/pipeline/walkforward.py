"""Walk-forward (rolling-origin) evaluation: one explicit loop returning a long table.

Cutoffs are spaced ``stride`` trading days apart, the last one ``h`` days before the end of
the data. At a refit cutoff each model is built afresh and fitted (scaler included) on that
fold's training rows only: every row up to the cutoff (expanding) or the last
``train_size`` of them. Between refits the last fitted model forecasts from the new
cutoffs without refitting, all cutoffs of a fold in one batched call.

With ``backtest.refit = "warm"`` the LSTM's refits after the first start from the previous
fold's network and scaler (``LSTMForecaster.fit_many``) and train for at most
``warm_epochs`` with ``warm_patience``; its folds then form one chain, fitted in order.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketcast.config import Config
from marketcast.errors import ConfigError, DataError, shown
from marketcast.models import MODELS, BaseForecaster, make_model
from marketcast.pipeline.panel import Panel
from marketcast.pipeline.series import Series, forecast_table


@dataclass(frozen=True)
class Fold:
    """One fit: the training rows ``[start, cutoffs[0]]`` and the cutoffs it forecasts from."""

    start: int
    cutoffs: np.ndarray


def cutoffs(n_rows: int, n_windows: int, stride: int, h: int) -> np.ndarray:
    """Cutoffs ``T-1-h - stride*(n_windows-1-i)`` for ``i = 0..n_windows-1``."""
    last = n_rows - 1 - h
    return last - stride * np.arange(n_windows - 1, -1, -1, dtype=np.int64)


def folds(cuts: np.ndarray, refit_every: int, train_size: int | None) -> list[Fold]:
    """Group cutoffs by refit: every ``refit_every`` cutoffs, or once when it is 0."""
    size = refit_every or len(cuts)
    out = []
    for first in range(0, len(cuts), size):
        block = cuts[first : first + size]
        start = 0 if train_size is None else max(int(block[0]) + 1 - train_size, 0)
        out.append(Fold(start, block))
    return out


def walk_forward(
    series: Series,
    config: Config,
    on_fit: Callable[[str, int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Run the walk-forward loop for ``config.backtest.models``.

    Returns the long table (``model, cutoff, date, step, y, y_hat, y_cutoff``) and the
    number of fits per model. ``on_fit(model, fold, n_folds)`` is called before each fit (in
    parallel runs: when the fit is handed to a worker). With ``config.backtest.workers``
    other than 1, the folds (independent fits) run in worker processes with one torch
    thread each; the table is the same as from the sequential loop.
    """
    b, h = config.backtest, config.model.horizon
    unknown = [m for m in b.models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model {shown(unknown[0])}; choose from {', '.join(MODELS)}")
    cuts = cutoffs(len(series.y), b.n_windows, b.stride, h)
    plan = folds(cuts, b.refit_every, b.train_size)
    _check_first_fold(plan[0], config)
    tasks = _tasks(b.models, len(plan), b.refit)
    workers = min(b.workers or os.cpu_count() or 1, len(tasks))
    if workers > 1 and len(plan) > 1 and len(tasks) > 1:
        frames = _run_parallel(series, config, plan, tasks, workers, on_fit)
    else:
        frames = [frame for name, numbers in tasks
                  for frame in _fit_folds(series, config, plan, name, numbers, on_fit)]
    fits = {name: len(plan) for name in b.models}
    return pd.concat(frames, ignore_index=True), fits


def _tasks(models, n_folds: int, refit: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(model, fold numbers)`` to fit, in table order: one fold each, or all the LSTM's
    folds as one chain when its refits are warm (each starts from the one before)."""
    tasks = []
    for name in models:
        if name == "lstm" and refit == "warm":
            tasks.append((name, tuple(range(n_folds))))
        else:
            tasks.extend((name, (number,)) for number in range(n_folds))
    return tasks


def _fit_folds(series, config, plan, name, numbers, on_fit=None) -> list[pd.DataFrame]:
    """The tables of folds ``numbers`` of ``name``, each fold warm-started from the model of
    the one before it in ``numbers`` (a chain of one: a cold fit)."""
    frames, previous = [], None
    for number in numbers:
        if on_fit is not None:
            on_fit(name, number, len(plan))
        table, previous = fit_fold(series, config, plan[number], name, warm_start=previous)
        frames.append(table)
    return frames


def warm_config(config: Config) -> Config:
    """``config`` with a warm refit's epochs and patience as the training settings."""
    b = config.backtest
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, max_epochs=b.warm_epochs, patience=b.warm_patience))


def fit_fold(series: Series, config: Config, fold: Fold, name: str,
             warm_start: BaseForecaster | None = None) -> tuple[pd.DataFrame, BaseForecaster]:
    """Fit ``name`` on the fold's training rows: its forecasts from every cutoff of the fold,
    and the fitted model. ``warm_start`` (the LSTM fitted at the previous fold) makes it a
    warm refit (:func:`warm_config`, ``LSTMForecaster.fit_many``)."""
    end = int(fold.cutoffs[0]) + 1
    train = _rows(series, fold.start, end)
    n_val = round(len(train.y) * config.split.val_fraction)
    if warm_start is None:
        model = make_model(name, config).fit(train.y, train.X, n_val=n_val)
    else:
        model = make_model(name, warm_config(config)).fit(train.y, train.X, n_val=n_val,
                                                          warm_start=warm_start)
    table = forecast_table({name: model}, series, fold.cutoffs, config.model.horizon)
    level = config.forecast.interval
    if level > 0 and hasattr(model, "predict_interval"):  # a model of the variance: its own
        lower, upper = model.predict_interval(series.y, series.X, fold.cutoffs,
                                              config.model.horizon, level)
        table = table.assign(lower=lower.ravel(), upper=upper.ravel())
    return table, model


# Per-worker state, set once by _start_worker so that tasks carry only (model, fold).
_WORKER: dict = {}


def _start_worker(series: Series, config: Config, plan: list[Fold]) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    # One thread per process: the workers share the cores, and OpenMP threads spin-waiting
    # for a core another process holds are several times slower than one thread.
    torch.set_num_threads(1)
    threadpool_limits(1)
    _WORKER.update(series=series, config=config, plan=plan)


def _worker_task(name: str, numbers: tuple[int, ...]) -> list[pd.DataFrame]:
    w = _WORKER
    return _fit_folds(w["series"], w["config"], w["plan"], name, numbers)


def _run_parallel(series, config, plan, tasks, workers, on_fit) -> list[pd.DataFrame]:
    """The folds in ``workers`` fresh processes; only numbers and tables go back and forth."""
    # Longest first (LSTM, then ARIMA; later folds have more rows) so no worker idles at
    # the end waiting for one long fit; results are put back in the sequential order.
    cost = {"lstm": 2, "arima": 1}
    order = sorted(range(len(tasks)), key=lambda i: (
        -cost.get(tasks[i][0], 0) * len(tasks[i][1]), -tasks[i][1][-1]))
    # "spawn": a forked child would inherit torch's OpenMP pool in an unusable state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(series, config, plan)) as pool:
        futures = {}
        for i in order:
            name, numbers = tasks[i]
            if on_fit is not None:
                for number in numbers:
                    on_fit(name, number, len(plan))
            futures[i] = pool.submit(_worker_task, name, numbers)
        return [frame for i in range(len(tasks)) for frame in futures[i].result()]


def in_sample_scale(series: Series, first_cutoff: int) -> float:
    """Mean absolute one-day change up to the first cutoff: the MASE denominator."""
    return float(np.mean(np.abs(np.diff(series.y[: first_cutoff + 1]))))


def _rows(series: Series, start: int, end: int) -> Series:
    X = None if series.X is None else series.X[start:end]
    return Series(series.dates[start:end], series.y[start:end], X, series.feature_names)


def _check_first_fold(fold: Fold, config: Config) -> None:
    m = config.model
    rows = int(fold.cutoffs[0]) + 1 - fold.start
    n_val = round(rows * config.split.val_fraction)
    need = m.lookback + m.horizon + 1 + (m.horizon if n_val else 0)
    if fold.cutoffs[0] < 0 or rows - n_val < need:
        b = config.backtest
        raise DataError(
            f"{b.n_windows} windows {b.stride} day(s) apart leave {max(rows, 0)} rows for the "
            f"first fit, fewer than lookback {m.lookback} needs; use fewer --n-windows, a "
            "smaller --step or more data"
        )


def walk_forward_panel(
    panel: Panel,
    config: Config,
    on_fit: Callable[[str, int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, str]]:
    """The walk-forward loop over many tickers: ``(table, fits, skipped)``.

    Each ticker gets the cutoffs and folds one series would get. At fold ``k`` the LSTM is
    one global model, refitted on every ticker's fold-``k`` training rows (each scaled on
    its own), and forecasts each ticker's cutoffs of that fold; every other model is fitted
    per ticker as for one series. The table is one series' table with a ``ticker`` column
    first. A ticker too short for the first fold is in ``skipped`` with the reason.
    """
    b, h = config.backtest, config.model.horizon
    unknown = [m for m in b.models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model {shown(unknown[0])}; choose from {', '.join(MODELS)}")
    plans, skipped = {}, {}
    for ticker, series in panel.series.items():
        plan = folds(cutoffs(len(series.y), b.n_windows, b.stride, h), b.refit_every,
                     b.train_size)
        try:
            _check_first_fold(plan[0], config)
        except DataError as exc:
            skipped[ticker] = str(exc)
            continue
        plans[ticker] = plan
    if not plans:
        first = next(iter(skipped.values()))
        raise DataError(f"no ticker has enough rows for the backtest ({first})")
    n_folds = len(next(iter(plans.values())))
    frames = []
    for name in b.models:
        previous = None
        for number in range(n_folds):
            if on_fit is not None:
                on_fit(name, number, n_folds)
            fold = {t: plan[number] for t, plan in plans.items()}
            tables, models = _fit_panel_fold(panel, config, fold, name, previous)
            frames.extend(tables)
            previous = models if b.refit == "warm" else None
    table = pd.concat(frames, ignore_index=True)
    table = table[["ticker", *(c for c in table.columns if c != "ticker")]]
    return table, {name: n_folds for name in b.models}, skipped


def _fit_panel_fold(panel: Panel, config: Config, fold: dict[str, Fold], name: str,
                    warm_start: list | None = None) -> tuple[list[pd.DataFrame], list | None]:
    """Fit ``name`` on each ticker's fold rows (one shared LSTM for all tickers): the
    forecasts from every ticker's cutoffs of the fold, and the LSTM's fitted forecasters
    (one per ticker, in ``fold`` order; None for other models). ``warm_start``: those of the
    previous fold, for a warm refit."""
    if name != "lstm":
        return [fit_fold(panel.series[t], config, f, name)[0].assign(ticker=t)
                for t, f in fold.items()], None
    inputs = []
    for ticker, f in fold.items():
        train = _rows(panel.series[ticker], f.start, int(f.cutoffs[0]) + 1)
        inputs.append((train.y, train.X, round(len(train.y) * config.split.val_fraction)))
    if warm_start is None:
        models = make_model("lstm", config).fit_many(inputs)
    else:
        models = make_model("lstm", warm_config(config)).fit_many(inputs, warm_start=warm_start)
    return [forecast_table({"lstm": model}, panel.series[t], f.cutoffs,
                           config.model.horizon).assign(ticker=t)
            for model, (t, f) in zip(models, fold.items(), strict=True)], models
