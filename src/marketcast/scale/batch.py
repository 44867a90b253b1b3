"""One job per ticker (``run`` or ``backtest``) in parallel on Ray, gathered into one table.

A job that fails (bad data, too few rows, a crash) becomes a row with ``status`` "error" and
its message; the other jobs are unaffected. Each job is the ordinary single-ticker command
with ``data.ticker`` set, so its run folder is the one that command writes. The driver
reads the data once and puts each ticker's rows into Ray's object store; a job takes its
rows from there instead of reading and parsing the file again. Each
Diebold-Mariano p-value column is followed by its Benjamini-Hochberg adjustment across the
batch's tickers (:func:`adjust_columns`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from marketcast.config import Config
from marketcast.errors import ConfigError, MarketcastError, StorageError, os_errors
from marketcast.evaluation.multiple import adjust_p_values
from marketcast.scale.distributed import ray_session

COMMANDS = ("run", "backtest")


@dataclass
class BatchResult:
    """``table``: one row per ticker (``ticker, status, error, seconds, path`` then scores,
    each ``dm_p_<model>`` followed by ``dm_p_adjusted_<model>``)."""

    table: pd.DataFrame
    seconds: float

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "error"]


def job_config(config: Config, ticker: str) -> Config:
    """The single-ticker configuration of one job; a named run gets the ticker appended."""
    name = config.output.name
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, ticker=ticker, tickers=()),
        output=dataclasses.replace(config.output, name=f"{name}-{ticker}" if name else None),
    )


def run_job(config: Config, ticker: str, command: str,
            frame: pd.DataFrame | None = None) -> dict:
    """Run one ticker's job; our own errors become an error row instead of an exception.
    ``frame``: the ticker's rows as the driver read them (None: the job reads them)."""
    from marketcast.data.sources import preloaded

    with preloaded(config.data.source, {} if frame is None else {ticker: frame}):
        return _job(config, ticker, command)


def _job(config: Config, ticker: str, command: str) -> dict:
    started = time.perf_counter()
    row = {"ticker": ticker, "status": "ok", "error": "", "seconds": 0.0, "path": ""}
    try:
        if command == "run":
            from marketcast.api import run

            result = run(job_config(config, ticker))
            scores = result.evaluation.scores
        else:
            from marketcast.api import backtest

            result = backtest(job_config(config, ticker))
            # Step-1 scores: the one-day-ahead comparison a run reports too.
            scores = result.scores[result.scores["step"] == 1]
        row["path"] = str(result.path)
        for score in scores.itertuples():
            row[f"rmse_{score.model}"] = score.rmse
            if score.model != "naive":
                row[f"theils_u_{score.model}"] = score.theils_u
                row[f"dm_p_{score.model}"] = score.dm_p_value
    except StorageError:
        raise  # a full disk or a read-only folder fails every job after it too: stop
    except MarketcastError as exc:
        row.update(status="error", error=str(exc))
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


@os_errors
def batch(
    config: Config,
    tickers: Sequence[str],
    command: str = "run",
    address: str | None = None,
    on_done: Callable[[int, int, dict], None] | None = None,
) -> BatchResult:
    """Run ``command`` for every ticker as one Ray task each (1 CPU per task).

    Ray starts locally with the machine's CPUs unless ``address`` names a cluster (or Ray
    is already initialised in this process). ``["all"]`` is every ticker of the long file
    ``config.data.source``. Rows come back in ``tickers`` order.
    ``on_done(done, total, row)`` is called as each job finishes.
    """
    if command not in COMMANDS:
        raise ConfigError(f"batch runs {' or '.join(COMMANDS)}, not {command!r}")
    if not tickers:
        raise ConfigError("batch needs at least one ticker; pass --tickers A,B,...")
    started = time.perf_counter()
    frames, names = read_once(config, tickers)
    if [t.lower() for t in tickers] == ["all"]:
        tickers = names
    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        # One copy of each ticker's rows in the object store; the job receives it.
        refs = {t: ray.put(frame) for t, frame in frames.items()}
        pending = {task.remote(config, t, command, refs.get(t.strip().upper())): t
                   for t in tickers}
        rows = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ticker = pending.pop(ready[0])
            try:
                rows[ticker] = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                # A crash that is not one of our errors (a bug, a killed worker) is still
                # only this ticker's failure.
                rows[ticker] = {"ticker": ticker, "status": "error", "error": _first_line(exc),
                                "seconds": float("nan"), "path": ""}
            if on_done is not None:
                on_done(len(rows), len(tickers), rows[ticker])
    table = adjust_columns(pd.DataFrame([rows[t] for t in tickers]))
    return BatchResult(table, time.perf_counter() - started)


def adjust_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``dm_p_adjusted_<model>`` beside each ``dm_p_<model>`` column: that
    model's Diebold-Mariano p-values (against the random walk) adjusted across the tickers
    of the batch (Benjamini-Hochberg over the tickers that have one; failed jobs stay NaN)."""
    out = table.copy()
    for column in [c for c in table.columns if c.startswith("dm_p_")]:
        model = column.removeprefix("dm_p_")
        out.insert(out.columns.get_loc(column) + 1, f"dm_p_adjusted_{model}",
                   adjust_p_values(out[column]))
    return out


def read_once(config: Config, tickers: Sequence[str]) -> tuple[dict[str, pd.DataFrame], list]:
    """The rows of ``tickers`` (``["all"]``: every ticker) read from the source once, as each
    job would read them (``{TICKER: frame}``), and the tickers of the source that were
    asked for, ok or not. A ticker that cannot be read is left to its job, which reports
    why; so is everything when the source itself cannot be read."""
    from marketcast.data import sources

    d = config.data
    wanted = None if [t.lower() for t in tickers] == ["all"] else list(tickers)
    strict = () if d.fill != "none" else (d.target, *d.features)
    try:
        frames, errors = sources.read_many(d.source, wanted, date_column=d.date_column,
                                           strict=strict)
    except MarketcastError:
        if wanted is None:
            raise
        return {}, list(tickers)
    return frames, [t for t in [*frames, *errors] if t]


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
