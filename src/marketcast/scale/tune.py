"""Hyperparameter search on the validation period: Optuna here, or Ray Tune past one process.

The test period is cut off before any trial exists: :func:`validation_data` loads the
series, splits it and keeps only the rows before the test period, and every trial trains
and validates on those rows alone. The objective is the LSTM's best validation loss (scaled
MSE at the early-stopping epoch); trials whose validation loss per epoch trails the median
of earlier trials are pruned. Every trial's epochs are kept with their validation scores
in price units (:mod:`marketcast.scale.trial`) and written, with the best settings as a
complete TOML config that ``marketcast run --config`` accepts and a report, as a ``tune``
run folder (:mod:`marketcast.scale.folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from marketcast import files
from marketcast.config import Config, config_to_toml
from marketcast.errors import ConfigError, MissingDependencyError, os_errors
from marketcast.models.windows import Split
from marketcast.pipeline.series import Series, load_series, split_series
from marketcast.report.search import summarize_trials
from marketcast.runs.layout import BEST_CONFIG, TRIALS, Kind
from marketcast.scale.folder import write_search
from marketcast.scale.trial import EPOCH_COLUMNS, OnEpoch, fit_scored

BACKENDS = ("optuna", "ray")
METRIC = "best_val_loss"
# The settings searched: model.lookback/layers/units/dropout, train.batch_size/
# learning_rate/max_epochs.
PARAMS = ("lookback", "layers", "units", "dropout", "batch_size", "learning_rate", "max_epochs")
INTEGERS = ("lookback", "layers", "units", "batch_size", "max_epochs")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges searched (inclusive); integers uniform, learning rate log-uniform."""

    lookback: tuple[int, int] = (10, 120)
    layers: tuple[int, int] = (1, 3)
    units: tuple[int, int] = (16, 128)
    dropout: tuple[float, float] = (0.0, 0.5)
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    max_epochs: tuple[int, int] = (10, 100)


@dataclass
class TuneResult:
    """``trials``: one row per trial (number, state, settings, value, the validation scores
    at its best epoch, seconds); ``path`` is the run folder, ``config_path`` the TOML file
    of ``best_config``."""

    best_config: Config
    best_value: float
    trials: pd.DataFrame
    path: Path
    seconds: float
    config_path: Path


TrialCallback = Callable[[int, int, float], None]  # (trials done, total, best so far)


def parse_space(ranges: dict[str, str]) -> SearchSpace:
    """A SearchSpace from command-line text: ``{"units_range": "16,128", ...,
    "batch_sizes": "32,64"}`` (keys are the ``tune`` flags, underscored)."""

    def numbers(key: str, kind, pair: bool) -> tuple:
        flag, text = "--" + key.replace("_", "-"), ranges[key]
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers") from None
        if not values or pair and (len(values) != 2 or values[0] > values[1]):
            raise ConfigError(f"{flag} {text!r}: expected MIN,MAX with MIN <= MAX")
        return values

    return SearchSpace(
        lookback=numbers("lookback_range", int, True),
        layers=numbers("layers_range", int, True),
        units=numbers("units_range", int, True),
        dropout=numbers("dropout_range", float, True),
        batch_sizes=numbers("batch_sizes", int, False),
        learning_rate=numbers("learning_rate_range", float, True),
        max_epochs=numbers("epochs_range", int, True),
    )


def validation_data(config: Config) -> tuple[Series, Split]:
    """The rows before the test period and their split: everything a trial may see."""
    _, series = load_series(config)
    split = split_series(series, config)
    if split.n_val == 0:
        raise ConfigError("tuning needs a validation period; set --val-fraction above 0")
    return series.head(split.test_start), split


def suggest(trial, space: SearchSpace) -> dict:
    """Draw one configuration from an Optuna trial (also Ray Tune's define-by-run space)."""
    return {
        "lookback": trial.suggest_int("lookback", *space.lookback),
        "layers": trial.suggest_int("layers", *space.layers),
        "units": trial.suggest_int("units", *space.units),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "batch_size": trial.suggest_categorical("batch_size", list(space.batch_sizes)),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "max_epochs": trial.suggest_int("max_epochs", *space.max_epochs),
    }


def apply_params(config: Config, params: dict) -> Config:
    model = {k: params[k] for k in ("lookback", "layers", "units", "dropout") if k in params}
    train = {k: params[k] for k in ("batch_size", "learning_rate", "max_epochs") if k in params}
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model),
                               train=dataclasses.replace(config.train, **train))


def fit_trial(seen: Series, split: Split, config: Config, report: OnEpoch) -> pd.DataFrame:
    """Train one LSTM on ``seen`` (no test rows); ``report(row)`` after each epoch (see
    :func:`marketcast.scale.trial.fit_scored`) may raise to stop it. Returns its epochs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fit_scored(seen, split, config, report)
    finally:  # the caller's process keeps its own thread count
        torch.set_num_threads(threads)


@os_errors
def tune(
    config: Config,
    n_trials: int = 20,
    space: SearchSpace | None = None,
    backend: str = "optuna",
    output: str | Path | None = None,
    address: str | None = None,
    timeout: float | None = None,
    on_trial: TrialCallback | None = None,
) -> TuneResult:
    """Search ``space`` for the settings with the lowest validation loss and write a ``tune``
    run folder (config, every trial's epochs, the best configuration as TOML, report) under
    ``config.output.runs_dir``; with ``output``, the best configuration also goes there."""
    space = space or SearchSpace()
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if n_trials < 1:
        raise ConfigError("--trials must be at least 1")
    started = time.perf_counter()
    seen, split = validation_data(config)
    offset = 1 if config.model.target_transform == "log_return" else 0
    if space.lookback[1] + config.model.horizon + offset > split.n_train:
        raise ConfigError(
            f"the largest lookback searched ({space.lookback[1]}) does not fit the "
            f"{split.n_train} training days; lower the upper bound of --lookback-range"
        )
    run = _tune_optuna if backend == "optuna" else _tune_ray
    epochs = run(seen, split, config, space, n_trials, address, timeout, on_trial)
    trials = summarize_trials(epochs)
    complete = trials[trials["state"] == "COMPLETE"]
    if complete.empty:
        raise ConfigError("no trial completed; allow more trials or a longer --timeout")
    row = complete.loc[complete["value"].idxmin()]
    best = apply_params(config, setting_values(row))
    searched = {"backend": backend, "n_trials": n_trials, "space": dataclasses.asdict(space),
                "importances": importances(trials, space, config.train.seed)}
    path = write_search(Kind.TUNE, config, seen, split, {TRIALS: epochs}, best, searched,
                        time.perf_counter() - started)
    if output is not None:
        files.write_text(Path(output), config_to_toml(best))
    return TuneResult(best, float(row["value"]), trials, path, time.perf_counter() - started,
                      Path(output) if output is not None else path / BEST_CONFIG)


def setting_values(row) -> dict:
    """The searched settings of a row of the trials table as the numbers a config takes
    (a table may hold an integer setting as a float)."""
    return {k: int(row[k]) if k in INTEGERS else float(row[k]) for k in PARAMS}


def importances(trials: pd.DataFrame, space: SearchSpace, seed: int) -> dict:
    """Optuna's fANOVA importance of each searched setting over the completed trials, or why
    there is none (``{"values": None, "reason": ...}``)."""
    optuna = require_optuna()
    complete = trials[trials["state"] == "COMPLETE"]
    if len(complete) < 2:
        return {"values": None, "reason": f"{len(complete)} completed trial(s); importances "
                                          "need at least two"}
    study = optuna.create_study(direction="minimize")
    dists = distributions(space, optuna)
    for row in complete.to_dict(orient="records"):
        study.add_trial(optuna.trial.create_trial(
            params=setting_values(row), distributions=dists,
            value=float(row["value"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        return {"values": None, "reason": str(exc).strip().splitlines()[0]}
    return {"values": {k: float(v) for k, v in values.items()}, "reason": None}


def distributions(space: SearchSpace, optuna) -> dict:
    """The Optuna distribution of each searched setting (as :func:`suggest` draws them)."""
    d = optuna.distributions
    return {
        "lookback": d.IntDistribution(*space.lookback),
        "layers": d.IntDistribution(*space.layers),
        "units": d.IntDistribution(*space.units),
        "dropout": d.FloatDistribution(*space.dropout),
        "batch_size": d.CategoricalDistribution(list(space.batch_sizes)),
        "learning_rate": d.FloatDistribution(*space.learning_rate, log=True),
        "max_epochs": d.IntDistribution(*space.max_epochs),
    }


def require_optuna():
    """The ``optuna`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError(
            'marketcast tune needs Optuna, which is not installed; install it with '
            'pip install "marketcast[tune]"'
        ) from None
    return optuna


def _tune_optuna(seen, split, config, space, n_trials, address, timeout, on_trial):
    optuna = require_optuna()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=config.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )

    epochs: dict[int, list[dict]] = {}

    def objective(trial) -> float:
        params, rows = suggest(trial, space), epochs.setdefault(trial.number, [])

        def report(row: dict) -> None:
            rows.append(row)
            trial.report(row["val_loss"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        return float(fit_trial(seen, split, apply_params(config, params), report)
                     ["val_loss"].min())

    def progress(study, trial) -> None:
        if on_trial is not None:
            done = [t for t in study.trials if t.value is not None]
            best = min((t.value for t in done), default=math.nan)
            on_trial(len(study.trials), n_trials, best)

    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[progress])
    return trial_table([
        (t.number, t.state.name, t.params, t.duration.total_seconds() if t.duration else math.nan,
         epochs.get(t.number, []))
        for t in study.trials])


def trial_table(trials: list[tuple[int, str, dict, float, list[dict]]]) -> pd.DataFrame:
    """The long table of ``trials.csv``: one row per trial and epoch run, from
    ``(number, state, params, seconds, epoch rows)`` per trial."""
    rows = []
    for number, state, params, seconds, epochs in trials:
        head = {"trial": number, "state": state, **{k: params.get(k) for k in PARAMS},
                "seconds": seconds}
        rows += [{**head, **{k: e[k] for k in EPOCH_COLUMNS if k != "last"}}
                 for e in epochs] or [head]
    columns = ["trial", "state", *PARAMS, "seconds",
               *[c for c in EPOCH_COLUMNS if c != "last"]]
    return pd.DataFrame(rows, columns=columns)


def _tune_ray(seen, split, config, space, n_trials, address, timeout, on_trial):
    from marketcast.scale.distributed import ray_session, require_ray

    require_ray()
    optuna = require_optuna()
    from ray import tune as ray_tune
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    with ray_session(address), tempfile.TemporaryDirectory(prefix="marketcast-tune-") as tmp:
        searcher = OptunaSearch(
            # A partial of a module function: Ray pickles the searcher with its space.
            space=functools.partial(_define_by_run, space=space), metric=METRIC, mode="min",
            sampler=optuna.samplers.TPESampler(seed=config.train.seed),
        )
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(_ray_trial, seen=seen, split=split, base=config),
            {"cpu": 1},
        )
        tuner = ray_tune.Tuner(
            trainable,
            # The metric goes to the scheduler through TuneConfig; the searcher, built with
            # its own space, keeps the one it was given.
            tune_config=ray_tune.TuneConfig(
                metric=METRIC, mode="min",
                search_alg=searcher, num_samples=n_trials, time_budget_s=timeout,
                # A trial that yielded to waiting ones would start again at epoch 1 (there
                # is no checkpoint to resume from), so none yields (min_time_slice).
                scheduler=MedianStoppingRule(time_attr="training_iteration", grace_period=2,
                                             min_samples_required=3, min_time_slice=math.inf),
            ),
            run_config=ray_tune.RunConfig(storage_path=tmp, name="marketcast-tune", verbose=0,
                                          callbacks=[_ray_progress(n_trials, on_trial)]),
        )
        # Ray Tune prints its own tables to stdout; ours is the table the command prints.
        # Its Optuna searcher reports a trial's last result twice, which Optuna warns about.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The reported value is ignored", UserWarning)
            grid = tuner.fit()
        if all(r.error is not None for r in grid):
            raise ConfigError(f"every Ray Tune trial failed; first error: {grid[0].error}")
        trials = [_ray_row(i, grid[i]) for i in range(len(grid))]
    return trial_table(trials)


def _ray_row(number: int, result) -> tuple[int, str, dict, float, list[dict]]:
    """A Ray Tune result as :func:`trial_table` takes it: stopped by the median stopping
    rule (pruned) when its last epoch was not the one training ends after."""
    frame = result.metrics_dataframe
    epochs = [] if frame is None or "epoch" not in frame else frame.to_dict(orient="records")
    # Should Ray Tune pause and resume a trial, it starts again at epoch 1 (there is no
    # checkpoint to resume from) and its results hold every start: the last is the trial's.
    starts = [i for i, e in enumerate(epochs) if e["epoch"] == 1]
    epochs = epochs[starts[-1]:] if starts else epochs
    if result.error is not None:
        state = "FAIL"
    else:
        state = "COMPLETE" if epochs and bool(epochs[-1]["last"]) else "PRUNED"
    seconds = float((result.metrics or {}).get("time_total_s", math.nan))
    return number, state, dict(result.config), seconds, epochs


def _define_by_run(trial, space: SearchSpace) -> None:
    suggest(trial, space)


def _ray_trial(params: dict, seen: Series, split: Split, base: Config) -> None:
    from ray import tune as ray_tune

    best = math.inf

    def report(row: dict) -> None:
        nonlocal best
        best = min(best, row["val_loss"])
        ray_tune.report({METRIC: best, **row})

    fit_trial(seen, split, apply_params(base, params), report)


def _ray_progress(n_trials: int, on_trial: TrialCallback | None):
    """A Ray Tune callback forwarding (trials done, total, best so far) to ``on_trial``."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.done, self.best = 0, math.inf

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            self.best = min(self.best, (trial.last_result or {}).get(METRIC, math.inf))
            if on_trial is not None:
                on_trial(self.done, n_trials, self.best)

        on_trial_error = on_trial_complete

    return Progress()
