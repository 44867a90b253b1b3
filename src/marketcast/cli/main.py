"""Command-line interface: parse options, call one API function, print, map errors.

Every user mistake ends as one ``error: ...`` line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from marketcast.cli import printing
from marketcast.cli.console import err, out
from marketcast.cli.data import data
from marketcast.cli.options import (
    BACKTEST_OPTIONS,
    STRATEGY_OPTIONS,
    config_options,
    require_tracking,
    rich_table,
    track_option,
)
from marketcast.cli.progress import CountProgress, EpochProgress
from marketcast.cli.scale import batch, study, tune
from marketcast.errors import MarketcastError, os_message


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="marketcast")
def cli() -> None:
    """Stacked-LSTM stock forecasts, always compared with tomorrow = today."""


cli.add_command(data)
cli.add_command(batch)
cli.add_command(tune)
cli.add_command(study)


GLOBAL_OPTIONS = [
    ("--tickers", "data.tickers", str,
     "Global model: `all` or comma-separated tickers of a long file, pooled into one LSTM."),
]
# Data-parallel training of the global model (run and train).
TRAIN_WORKERS_OPTIONS = [
    ("--train-workers", "train.workers", int,
     "Train the global model on N Ray Train workers (0: in this process, the default)."),
]
ray_address_option = click.option(
    "--ray-address", default=None,
    help="Ray cluster for --train-workers (default: start Ray on this machine, 127.0.0.1).")


@cli.command()
@config_options(extra=GLOBAL_OPTIONS + TRAIN_WORKERS_OPTIONS + STRATEGY_OPTIONS)
@ray_address_option
@track_option
def run(config, resume, ray_address, track) -> None:
    """Data to trained model, test-period evaluation, 30-day forecast and plots."""
    from marketcast.api import run as run_api

    require_tracking(track)
    if config.data.tickers:
        _run_global(config, resume, ray_address, track)
        return
    if ray_address:
        raise click.UsageError("--ray-address needs --tickers and --train-workers N")
    with EpochProgress(err) as callback:
        result = run_api(config, callback=callback, resume=resume)
    printing.print_scores(result.evaluation)
    printing.print_intervals(result.evaluation.intervals)
    printing.print_strategy(result.evaluation.strategy)
    out.print(f"\nforecast of the next {len(result.forecast)} trading days: "
              f"{result.forecast['date'].iloc[0].date()} to "
              f"{result.forecast['date'].iloc[-1].date()}, last LSTM value "
              f"{result.forecast['lstm'].iloc[-1]:.2f}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    _print_report(result.path)
    _track(track, result, config)


@cli.command()
@config_options(extra=GLOBAL_OPTIONS + TRAIN_WORKERS_OPTIONS)
@ray_address_option
@track_option
def train(config, resume, ray_address, track) -> None:
    """Fit the LSTM and save it (model, loss history, config) as a run folder."""
    from marketcast.api import train_run

    require_tracking(track)
    if config.data.tickers:
        with EpochProgress(err) as callback:
            result = _global_runner(config, ray_address)(config, callback=callback,
                                                         resume=resume, evaluate=False)
        out.print(f"global model of {len(result.tickers)} tickers; run folder: "
                  f"{result.path}", soft_wrap=True)
        _print_report(result.path)
        _track(track, result, config)
        return
    if ray_address:
        raise click.UsageError("--ray-address needs --tickers and --train-workers N")
    with EpochProgress(err) as callback:
        trained, path = train_run(config, callback=callback, resume=resume)
    out.print(f"best epoch {trained.lstm.best_epoch_} of {len(trained.lstm.history_)}")
    out.print(f"run folder: {path}")
    _print_report(path)
    if track:
        from marketcast.api.tracking import log_trained

        out.print(f"tracked in MLflow: run {log_trained(track, trained, path)} at {track}",
                  soft_wrap=True)


@cli.command()
@config_options(extra=BACKTEST_OPTIONS + GLOBAL_OPTIONS + STRATEGY_OPTIONS, resumable=False)
@track_option
def backtest(config, track) -> None:
    """Walk-forward evaluation of every model against the random walk (one global LSTM,
    refitted at each refit, with --tickers)."""
    from marketcast.api import backtest as backtest_api

    def on_fit(model: str, fold: int, n_folds: int) -> None:
        if err.is_terminal:
            err.print(f"fitting {model}: fold {fold + 1}/{n_folds}", end="\r")

    require_tracking(track)
    result = backtest_api(config, on_fit=on_fit)
    if result.per_ticker is not None:
        printing.print_distribution(result)
        printing.print_interval_summary(result.interval_summary)
        printing.print_strategy(result.strategy, table=False)
        if result.skipped:
            out.print(f"skipped {len(result.skipped)} tickers "
                      f"({', '.join(list(result.skipped)[:5])}); reasons in skipped.csv")
    else:
        printing.print_backtest(result)
        printing.print_strategy(result.strategy)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    _print_report(result.path)
    _track(track, result, config)


@cli.command()
@click.argument("run_dir")
def report(run_dir) -> None:
    """Write RUN_DIR/report.html: verdict, plots and tables in one offline page."""
    from marketcast.report import report as report_api

    _print_report(report_api(run_dir).parent)


def _track(track: str | None, result, config) -> None:
    """Log a finished (and saved) result to MLflow; a failure is one error line after it."""
    if track:
        from marketcast.api.tracking import log_result

        out.print(f"tracked in MLflow: run {log_result(track, result, config)} at {track}",
                  soft_wrap=True)


def _global_runner(config, ray_address):
    """``run_global`` in this process, or on Ray Train with ``--train-workers``."""
    if not config.train.workers:
        if ray_address:
            raise click.UsageError("--ray-address needs --train-workers N")
        from marketcast.api import run_global

        return run_global
    from marketcast.scale.train import run_global

    return lambda config, **kwargs: run_global(config, ray_address, **kwargs)


def _run_global(config, resume, ray_address, track=None) -> None:
    run_global = _global_runner(config, ray_address)
    with EpochProgress(err) as callback, CountProgress(err, "tickers scored") as on_ticker:
        result = run_global(config, callback=callback, on_ticker=on_ticker, resume=resume)
    printing.print_distribution(result)
    printing.print_interval_summary(result.interval_summary)
    printing.print_strategy(result.strategy, table=False)
    if result.skipped:
        shown = ", ".join(list(result.skipped)[:5])
        out.print(f"skipped {len(result.skipped)} tickers ({shown}); reasons in skipped.csv")
    days = result.forecast["date"].nunique()
    out.print(f"forecast of the next {days} trading days for each ticker: forecast.csv; "
              f"one ticker again: marketcast forecast --run {result.path} --ticker "
              f"{result.forecast['ticker'].iloc[0]}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    out.print(f"report: {result.path / 'report.html'}", soft_wrap=True)
    _track(track, result, config)


@cli.command()
@click.option("--run", "run_dir", required=True, help="Run folder written by run or train.")
def evaluate(run_dir) -> None:
    """Re-score a saved model and the baselines on its test period (every ticker's)."""
    from marketcast.api import Evaluation, evaluate_run

    result = evaluate_run(run_dir)
    if isinstance(result, Evaluation):
        printing.print_scores(result)
        printing.print_intervals(result.intervals)
        printing.print_strategy(result.strategy)
        return
    printing.print_distribution(result)
    printing.print_interval_summary(result.interval_summary)
    printing.print_strategy(result.strategy, table=False)
    out.print(rich_table("test period per ticker", result.per_ticker, [
        (c, c.replace("_", " "), "{:.4g}" if result.per_ticker[c].dtype.kind == "f" else "{}")
        for c in ("ticker", "n_test", "rmse_lstm", "rmse_naive", "theils_u_lstm",
                  "dm_p_value", "dm_p_adjusted", "lstm_vs_naive")]))


@cli.command()
@click.option("--run", "run_dir", required=True, help="Run folder written by run or train.")
@click.option("--data", "--source", "data", default=None,
              help="Newer data to forecast from (same columns); default: the run's data.")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Trading days to forecast.")
@click.option("--interval", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Conformal interval coverage, 0 for none (default: the run's, 0.9).")
@click.option("--ticker", default=None,
              help="Ticker to forecast, for the folder of a global model (run --tickers).")
@click.option("--tickers", default=None,
              help="Tickers to forecast (`all` or a comma-separated list), for the folder of "
                   "a global model; one long table with a ticker column.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the forecast CSV here instead of printing it.")
@click.option("--engine", type=click.Choice(["numpy", "torch"]), default="numpy",
              show_default=True,
              help="Compute the network with numpy (no torch import, fast start) or torch.")
def forecast(run_dir, data, days, interval, ticker, tickers, output, engine) -> None:
    """Forecast the next trading days with a saved model."""
    from marketcast.api import forecast as forecast_api
    from marketcast.api import forecast_tickers

    if ticker and tickers:
        raise click.UsageError("pass --ticker (one) or --tickers (several), not both")
    if tickers:
        frame = forecast_tickers(run_dir, tickers.split(","), data=data, days=days,
                                 interval=interval, engine=engine)
    else:
        frame = forecast_api(run_dir, data=data, days=days, interval=interval, ticker=ticker,
                             engine=engine)
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    if output is None:
        click.echo(text, nl=False)
    else:
        from marketcast.files import write_text

        write_text(Path(output), text)
        out.print(f"forecast written to {output}")



def _print_report(run_dir: Path) -> None:
    from marketcast.report import REPORT

    out.print(f"report: {Path(run_dir) / REPORT}", soft_wrap=True)


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"note: {record.getMessage()}", soft_wrap=True)


class _Terminated(BaseException):  # noqa: N818
    """SIGTERM, raised where the process is, so it unwinds like Ctrl-C (whose handlers
    catch BaseException): a training run keeps its checkpoint and a half-written run folder
    is removed. Not a KeyboardInterrupt, which click would turn into "Aborted!"."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning our errors, usage errors and failures of the
    operating system (disk full, read-only or missing folders) into one line."""
    logger = logging.getLogger("marketcast")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        _main(argv)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="marketcast", standalone_mode=False)
    except MarketcastError as exc:
        _fail(str(exc), exc.exit_code)
    except click.UsageError as exc:
        hint = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
        _fail(f"{exc.format_message().rstrip('.')}{hint}", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except _Terminated:
        _fail("terminated", 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:
        _fail(os_message(exc), 2)
    except MemoryError:
        _fail("out of memory; use less data, a smaller --lookback or fewer --units", 2)


# A word (a path, a quoted value) and a whole error line are cut beyond these: a message
# quoting a 10 MB value, ours or click's, stays one readable line.
LONGEST_WORD, LONGEST_LINE = 300, 2000


def _fail(message: str, code: int) -> None:
    words = (w if len(w) <= LONGEST_WORD else w[:LONGEST_WORD - 1] + "\u2026"
             for w in message.split())
    one_line = " ".join(words)
    if len(one_line) > LONGEST_LINE:
        one_line = one_line[:LONGEST_LINE - 1] + "\u2026"
    print(f"error: {one_line}", file=sys.stderr)
    sys.exit(code)
