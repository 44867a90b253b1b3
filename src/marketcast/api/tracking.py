"""Experiment tracking in MLflow (``--track URI``, ``track=`` in Python).

One MLflow run per marketcast run, train, backtest or tune, in the experiment
``marketcast``: the resolved config as params (``model.lookback``, ...), the per-epoch
losses and every score as metrics (``lstm.rmse``; a backtest's per step as MLflow steps),
the verdict as tags, and the run folder (report, model files, tables) as artifacts. Models
are logged as the folder's safetensors and JSON files, never as an MLflow (pickle) flavour.

MLflow is an optional extra (``pip install "marketcast[mlflow]"``). The client talks to
the server given, without touching MLflow's process-wide settings.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from marketcast.config import Config
from marketcast.errors import MissingDependencyError, TrackingError

EXPERIMENT = "marketcast"
# Seconds to wait for a tracking server's health check before calling it unreachable.
REACH_TIMEOUT = 5.0
# MLflow's per-request limits of log_batch.
BATCH_METRICS, BATCH_PARAMS = 1000, 100
# The tag ``marketcast.kind`` of each result.
KINDS = {"RunResult": "run", "BacktestResult": "backtest", "GlobalRunResult": "global"}
# Longest tag value MLflow stores.
TAG_CHARS = 8000
# Score columns logged as metrics, where a table has them.
SCORES = ("n", "mse", "rmse", "mae", "mape", "mase", "theils_u", "directional_accuracy",
          "directional_p_value", "dm_stat", "dm_p_value", "sharpe", "annual_return",
          "max_drawdown", "exposure", "sharpe_diff_p", "coverage")


def require_mlflow():
    """The ``mlflow`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError(
            '--track needs MLflow, which is not installed; install it with '
            'pip install "marketcast[mlflow]"'
        ) from None
    return mlflow


def log_result(uri: str, result, config: Config | None = None) -> str:
    """Log a :class:`RunResult`, :class:`BacktestResult` or :class:`GlobalRunResult`; returns
    the MLflow run id. ``config``: the resolved settings (a run result carries its own)."""
    trained = getattr(result, "trained", None)
    config = config or trained.config
    metrics: list[tuple[str, float, int]] = []
    if trained is not None:
        metrics += _losses(trained.history())
    elif getattr(result, "history", None) is not None:
        metrics += _losses(result.history)
    evaluation = getattr(result, "evaluation", None)
    source = evaluation or result
    scores = getattr(source, "scores", None)
    if scores is not None:
        metrics += _scores(scores, "{model}.{score}")
    if getattr(source, "comparisons", None) is not None:
        metrics += _scores(source.comparisons, "{model}_vs_{other}.{score}")
    per_ticker = getattr(result, "per_ticker", None)
    if per_ticker is not None and not per_ticker.empty:
        numeric = per_ticker.select_dtypes("number")
        metrics += [(f"tickers.{c}.median", float(numeric[c].median()), 0) for c in numeric]
    strategy = getattr(source, "strategy", None)
    if strategy is not None:
        metrics += _scores(strategy.scores, "strategy.{model}.{rule}.{score}")
    verdict = getattr(source, "verdict", None) or []
    verdict = [verdict] if isinstance(verdict, str) else list(verdict)
    kind = KINDS.get(type(result).__name__, "run")
    tags = {"marketcast.kind": kind, "marketcast.verdict": "\n".join(verdict)}
    return _log(uri, result, config, metrics, tags, result.path)


def log_trained(uri: str, trained, path: Path) -> str:
    """Log a trained model's folder (``marketcast train``): settings, losses, files."""
    return _log(uri, None, trained.config, _losses(trained.history()),
                {"marketcast.kind": "train"}, path)


def log_tune(uri: str, tuned) -> str:
    """Log a search (``marketcast tune``): the best settings as params, every trial's
    validation loss (step: trial number), the best loss and the best config file."""
    trials = tuned.trials
    metrics = [("trial.value", float(v), int(n)) for n, v in
               zip(trials["trial"], trials["value"], strict=True)]
    metrics.append(("best_value", float(tuned.best_value), 0))
    return _log(uri, tuned, tuned.best_config, metrics, {"marketcast.kind": "tune"},
                Path(tuned.path))


def _log(uri: str, result, config: Config, metrics, tags: dict, path: Path | None) -> str:
    require_mlflow()
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    _check_reachable(uri, result, path)
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(EXPERIMENT)
        experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
        name = Path(path).name if path else None
        run = client.create_run(experiment, run_name=name)
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in _params(config)]
        rows = [Metric(k, v, 0, step) for k, v, step in metrics if math.isfinite(v)]
        tag_rows = [RunTag(k, v[:TAG_CHARS]) for k, v in tags.items()]
        if path is not None:
            tag_rows.append(RunTag("marketcast.folder", str(Path(path).resolve())))
        for chunk in _chunks(params, BATCH_PARAMS):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(rows, BATCH_METRICS):
            client.log_batch(run_id, metrics=chunk)
        client.log_batch(run_id, tags=tag_rows)
        if path is not None:
            if Path(path).is_dir():
                client.log_artifacts(run_id, str(path))
            else:
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"could not log to MLflow at {uri}: {_first_line(exc)}"
                            f"{_saved(path)}", result) from None
    return run_id


def _check_reachable(uri: str, result, path: Path | None) -> None:
    """One quick health check of an HTTP server, instead of MLflow's minutes of retries."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT):
            pass
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow server at {uri} ({reason}); start it "
                            f"or check --track{_saved(path)}", result) from None


def _saved(path: Path | None) -> str:
    return f"; the run is saved in {path}" if path else "; the run finished, nothing logged"


def _params(config: Config) -> Iterator[tuple[str, str]]:
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, list):
                value = ",".join(map(str, value))
            yield f"{section}.{key}", str(value)


def _losses(history: pd.DataFrame) -> list[tuple[str, float, int]]:
    out = []
    for row in history.itertuples():
        out.append(("train_loss", float(row.train_loss), int(row.epoch)))
        out.append(("val_loss", float(row.val_loss), int(row.epoch)))
    return out


def _scores(table: pd.DataFrame, key: str) -> list[tuple[str, float, int]]:
    """Every score of every row as ``key`` (formatted with the row), at its step (0 when
    the table has no steps)."""
    out = []
    if "ticker" in table.columns:  # many tickers: their medians are logged instead
        return out
    for row in table.to_dict("records"):
        step = int(row.get("step", 0) or 0)
        for score in SCORES:
            value = row.get(score)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append((key.format(score=score, **row), float(value), step))
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
