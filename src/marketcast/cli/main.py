"""Command-line interface: parse options, call one API function, print, map errors.

Every user mistake ends as one ``error: ...`` line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.table import Table

from marketcast.cli.console import err, out
from marketcast.cli.data import data
from marketcast.cli.options import (
    BACKTEST_OPTIONS,
    STRATEGY_OPTIONS,
    config_options,
    fmt_value,
    rich_table,
)
from marketcast.cli.progress import CountProgress, EpochProgress
from marketcast.cli.scale import batch, tune
from marketcast.errors import MarketcastError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="marketcast")
def cli() -> None:
    """Stacked-LSTM stock forecasts, always compared with tomorrow = today."""


cli.add_command(data)
cli.add_command(batch)
cli.add_command(tune)


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
def run(config, resume, ray_address) -> None:
    """Data to trained model, test-period evaluation, 30-day forecast and plots."""
    from marketcast.api import run as run_api

    if config.data.tickers:
        _run_global(config, resume, ray_address)
        return
    if ray_address:
        raise click.UsageError("--ray-address needs --tickers and --train-workers N")
    with EpochProgress(err) as callback:
        result = run_api(config, callback=callback, resume=resume)
    _print_scores(result.evaluation)
    _print_strategy(result.evaluation.strategy)
    out.print(f"\nforecast of the next {len(result.forecast)} trading days: "
              f"{result.forecast['date'].iloc[0].date()} to "
              f"{result.forecast['date'].iloc[-1].date()}, last LSTM value "
              f"{result.forecast['lstm'].iloc[-1]:.2f}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    _print_report(result.path)


@cli.command()
@config_options(extra=GLOBAL_OPTIONS + TRAIN_WORKERS_OPTIONS)
@ray_address_option
def train(config, resume, ray_address) -> None:
    """Fit the LSTM and save it (model, loss history, config) as a run folder."""
    from marketcast.api import train_run

    if config.data.tickers:
        with EpochProgress(err) as callback:
            result = _global_runner(config, ray_address)(config, callback=callback,
                                                         resume=resume, evaluate=False)
        out.print(f"global model of {len(result.tickers)} tickers; run folder: "
                  f"{result.path}", soft_wrap=True)
        _print_report(result.path)
        return
    if ray_address:
        raise click.UsageError("--ray-address needs --tickers and --train-workers N")
    with EpochProgress(err) as callback:
        trained, path = train_run(config, callback=callback, resume=resume)
    out.print(f"best epoch {trained.lstm.best_epoch_} of {len(trained.lstm.history_)}")
    out.print(f"run folder: {path}")
    _print_report(path)


@cli.command()
@config_options(extra=BACKTEST_OPTIONS + GLOBAL_OPTIONS + STRATEGY_OPTIONS, resumable=False)
def backtest(config) -> None:
    """Walk-forward evaluation of every model against the random walk (one global LSTM,
    refitted at each refit, with --tickers)."""
    from marketcast.api import backtest as backtest_api

    def on_fit(model: str, fold: int, n_folds: int) -> None:
        if err.is_terminal:
            err.print(f"fitting {model}: fold {fold + 1}/{n_folds}", end="\r")

    result = backtest_api(config, on_fit=on_fit)
    if result.per_ticker is not None:
        _print_distribution(result)
        _print_strategy(result.strategy, table=False)
        if result.skipped:
            out.print(f"skipped {len(result.skipped)} tickers "
                      f"({', '.join(list(result.skipped)[:5])}); reasons in skipped.csv")
    else:
        _print_backtest(result)
        _print_strategy(result.strategy)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    _print_report(result.path)


@cli.command()
@click.argument("run_dir")
def report(run_dir) -> None:
    """Write RUN_DIR/report.html: verdict, plots and tables in one offline page."""
    from marketcast.report import report as report_api

    _print_report(report_api(run_dir).parent)


def _global_runner(config, ray_address):
    """``run_global`` in this process, or on Ray Train with ``--train-workers``."""
    if not config.train.workers:
        if ray_address:
            raise click.UsageError("--ray-address needs --train-workers N")
        from marketcast.api import run_global

        return run_global
    from marketcast.scale.train import run_global

    return lambda config, **kwargs: run_global(config, ray_address, **kwargs)


def _run_global(config, resume, ray_address) -> None:
    run_global = _global_runner(config, ray_address)
    with EpochProgress(err) as callback, CountProgress(err, "tickers scored") as on_ticker:
        result = run_global(config, callback=callback, on_ticker=on_ticker, resume=resume)
    _print_distribution(result)
    _print_strategy(result.strategy, table=False)
    if result.skipped:
        shown = ", ".join(list(result.skipped)[:5])
        out.print(f"skipped {len(result.skipped)} tickers ({shown}); reasons in skipped.csv")
    days = result.forecast["date"].nunique()
    out.print(f"forecast of the next {days} trading days for each ticker: forecast.csv; "
              f"one ticker again: marketcast forecast --run {result.path} --ticker "
              f"{result.forecast['ticker'].iloc[0]}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    out.print(f"report: {result.path / 'report.html'}", soft_wrap=True)


@cli.command()
@click.option("--run", "run_dir", required=True, help="Run folder written by run or train.")
def evaluate(run_dir) -> None:
    """Re-score a saved model and the baselines on its test period (every ticker's)."""
    from marketcast.api import Evaluation, evaluate_run

    result = evaluate_run(run_dir)
    if isinstance(result, Evaluation):
        _print_scores(result)
        _print_strategy(result.strategy)
        return
    _print_distribution(result)
    _print_strategy(result.strategy, table=False)
    out.print(rich_table("test period per ticker", result.per_ticker, [
        (c, c.replace("_", " "), "{:.4g}" if result.per_ticker[c].dtype.kind == "f" else "{}")
        for c in ("ticker", "n_test", "rmse_lstm", "rmse_naive", "theils_u_lstm",
                  "dm_p_value", "dm_p_adjusted", "lstm_vs_naive")]))


def _print_distribution(result) -> None:
    """Quartiles of Theil's U over tickers, and the verdict, of a global run or evaluation."""
    table = Table(title=f"global model, test period per ticker ({len(result.per_ticker)})")
    for heading in ("Theil's U", "q1", "median", "q3"):
        table.add_column(heading, justify="right")
    for model in ("lstm", "linear"):
        u = result.summary[f"theils_u_{model}"]
        table.add_row(model, *(f"{u[k]:.3f}" for k in ("q1", "median", "q3")))
    out.print(table)
    lines = result.verdict if isinstance(result.verdict, list) else [result.verdict]
    for line in lines:
        out.print(f"verdict: {line}", soft_wrap=True)


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
def forecast(run_dir, data, days, interval, ticker, tickers, output) -> None:
    """Forecast the next trading days with a saved model."""
    from marketcast.api import forecast as forecast_api
    from marketcast.api import forecast_tickers

    if ticker and tickers:
        raise click.UsageError("pass --ticker (one) or --tickers (several), not both")
    if tickers:
        frame = forecast_tickers(run_dir, tickers.split(","), data=data, days=days,
                                 interval=interval)
    else:
        frame = forecast_api(run_dir, data=data, days=days, interval=interval, ticker=ticker)
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    if output is None:
        click.echo(text, nl=False)
    else:
        from marketcast.files import write_text

        write_text(Path(output), text)
        out.print(f"forecast written to {output}")



SCORE_COLUMNS = [
    ("model", "model", "{}"), ("n", "n", "{}"), ("rmse", "RMSE", "{:.3f}"),
    ("mae", "MAE", "{:.3f}"), ("mape", "MAPE %", "{:.3f}"),
    ("directional_accuracy", "direction %", "{:.1f}"), ("theils_u", "Theil's U", "{:.3f}"),
    ("dm_p_value", "DM p vs naive", "{:.3g}"),
]


def _print_scores(evaluation) -> None:
    out.print(rich_table("test period (price units)", evaluation.scores, SCORE_COLUMNS))
    for line in evaluation.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


def _print_backtest(result) -> None:
    columns = SCORE_COLUMNS[:1] + [("step", "step", "{}")] + SCORE_COLUMNS[1:4] + [
        ("mase", "MASE", "{:.3f}")] + SCORE_COLUMNS[5:]
    out.print(rich_table("walk-forward backtest (price units)", result.scores, columns))
    if len(result.coverage):
        shown = [("model", "model", "{}"), ("step", "step", "{}"), ("n", "n", "{}"),
                 ("coverage", "coverage %", "{:.1f}"), ("mean_width", "mean width", "{:.2f}"),
                 ("interval_score", "interval score", "{:.2f}"),
                 ("coverage_low", "calm %", "{:.1f}"), ("coverage_high", "storm %", "{:.1f}"),
                 ("kupiec_p", "Kupiec p", "{:.3g}"),
                 ("christoffersen_cc_p", "Christoffersen p", "{:.3g}")]
        out.print(rich_table("conformal intervals", result.coverage,
                             [c for c in shown if c[0] in result.coverage.columns]))
    for line in result.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


STRATEGY_COLUMNS = [
    ("model", "strategy", "{}"), ("annual_return", "return a year", "{:.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"), ("max_drawdown", "max drawdown", "{:.1%}"),
    ("turnover", "units traded a year", "{:.1f}"), ("exposure", "in the market", "{:.0%}"),
    ("sharpe_diff_p", "p", "{:.3g}"),
]


def _print_strategy(strategy, table: bool = True) -> None:
    """The trading rules against buy-and-hold: their scores (one series) and the sentence."""
    if strategy is None:
        return
    if table:
        title = (f"trading on the one-day-ahead forecasts, net of "
                 f"{strategy.summary['cost_bps']:g} bps per unit traded (p: bootstrap test of "
                 "the Sharpe ratio against buy-and-hold's)")
        table = Table(title=title, pad_edge=False)
        for i, (_, heading, _) in enumerate(STRATEGY_COLUMNS):
            table.add_column(heading, justify="right" if i else "left", no_wrap=not i,
                             min_width=max(len(word) for word in heading.split()))
        for row in strategy.scores.to_dict(orient="records"):
            name = row["model"] if row["model"] == row["rule"] else \
                f"{row['model']} {row['rule'].replace('_', '/')}"
            table.add_row(name.replace("_", "-"), *[fmt_value(f, row[key])
                                                    for key, _, f in STRATEGY_COLUMNS[1:]])
        out.print(table)
    out.print(f"strategy: {strategy.sentence}", soft_wrap=True)


def _print_report(run_dir: Path) -> None:
    from marketcast.report import REPORT

    out.print(f"report: {Path(run_dir) / REPORT}", soft_wrap=True)


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"note: {record.getMessage()}", soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning our errors and usage errors into one line."""
    logger = logging.getLogger("marketcast")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
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
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr)
    sys.exit(code)
