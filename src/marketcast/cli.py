"""Command-line interface: parse options, call one API function, print, map errors.

Every user mistake ends as one ``error: ...`` line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click
from rich.table import Table

from marketcast.cli_data import data
from marketcast.console import err, out
from marketcast.errors import MarketcastError
from marketcast.progress import CountProgress, EpochProgress

# (flag, config key, type, help) shared by run and train.
DATA_OPTIONS = [
    ("--ticker", "data.ticker", str, "Ticker to keep from a multi-ticker file."),
    ("--start", "data.start", str, "First date kept, YYYY-MM-DD (sp500 default: 2010-01-01)."),
    ("--end", "data.end", str, "Last date kept, YYYY-MM-DD."),
    ("--date-column", "data.date_column", str, "Name of the CSV's date column."),
    ("--target", "data.target", str, "Column to forecast (default close)."),
    ("--features", "data.features", str,
     "Comma-separated inputs besides the target (default: the target alone)."),
    ("--fill", "data.fill", click.Choice(["none", "ffill", "drop"]),
     "Policy for NaN or non-positive values (default none: an error)."),
]
MODEL_OPTIONS = [
    ("--val-fraction", "split.val_fraction", float, "Share of days for validation (0.15)."),
    ("--test-fraction", "split.test_fraction", float, "Share of days for the test (0.15)."),
    ("--val-start", "split.val_start", str, "First validation day; overrides the fraction."),
    ("--test-start", "split.test_start", str, "First test day; overrides the fraction."),
    ("--lookback", "model.lookback", int, "Past days per input window (60)."),
    ("--horizon", "model.horizon", int, "Days predicted at once, direct (1)."),
    ("--layers", "model.layers", int, "Stacked LSTM layers (3)."),
    ("--units", "model.units", int, "Units per LSTM layer (50)."),
    ("--dropout", "model.dropout", float, "Dropout between layers (0.2)."),
    ("--target-transform", "model.target_transform", click.Choice(["level", "log_return"]),
     "Forecast price levels or log returns (log_return)."),
    ("--batch-size", "train.batch_size", int, "Training batch size (64)."),
    ("--epochs", "train.max_epochs", int, "Maximum training epochs (100)."),
    ("--learning-rate", "train.learning_rate", float, "Adam learning rate (0.001)."),
    ("--patience", "train.patience", int, "Early-stopping patience in epochs (10)."),
    ("--seed", "train.seed", int, "Random seed (0)."),
    ("--days", "forecast.days", int, "Trading days to forecast (30)."),
    ("--interval", "forecast.interval", float,
     "Conformal prediction interval coverage, 0 for none (0.9)."),
    ("--runs-dir", "output.runs_dir", str, "Folder for run folders (runs)."),
    ("--name", "output.name", str, "Run folder name (default: time stamp and data)."),
]


BACKTEST_OPTIONS = [
    ("--n-windows", "backtest.n_windows", int, "Forecast origins (250)."),
    ("--step", "backtest.step", int, "Trading days between origins (1)."),
    ("--train-size", "backtest.train_size", int,
     "Fixed training rows per fit (default: expanding window)."),
    ("--refit-every", "backtest.refit_every", int,
     "Refit every k origins; 0 fits once at the first (25)."),
    ("--models", "backtest.models", str,
     "Comma-separated models (lstm,naive,drift,linear,arima)."),
    ("--workers", "backtest.workers", int,
     "Processes fitting folds at once; 0 one per CPU core, 1 none (0)."),
]


def _config_options(func=None, *, extra=(), resumable=True):
    """Add --config, --data, --resume and every setting flag; pass the resolved Config as
    ``config`` and the checkpoint folder to resume (or False) as ``resume``. Commands that
    train no single model (``resumable=False``) get neither --resume nor ``resume``."""
    if func is None:
        return functools.partial(_config_options, extra=extra, resumable=resumable)
    specs = DATA_OPTIONS + MODEL_OPTIONS + list(extra)
    for flag, key, kind, help_text in reversed(specs):
        func = click.option(flag, key.replace(".", "__"), type=kind, default=None,
                            help=help_text)(func)
    func = click.option("--data", "--source", "data__source", default=None,
                        help="sp500 (bundled S&P 500, default) or a CSV path.")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        default=None, help="TOML config file; flags override it.")(func)
    if resumable:
        func = click.option(
            "--resume", is_flag=False, flag_value="", default=None, metavar="[PATH]",
            help="Continue a stopped run from its last checkpoint: the run named by --name, "
                 "or the checkpoint folder PATH (runs/.checkpoints/NAME). Uses its saved "
                 "settings.",
        )(func)

    @functools.wraps(func)
    def wrapper(config_path, resume=None, **kwargs):
        if not resumable:
            return func(config=_resolve_config(specs, config_path, kwargs), **kwargs)
        if resume is None:
            config = _resolve_config(specs, config_path, kwargs)
            return func(config=config, resume=False, **kwargs)
        from marketcast.checkpoint import resume_config

        config, folder = resume_config(resume, config_path, _overrides(specs, kwargs))
        return func(config=config, resume=folder, **kwargs)

    wrapper.config_specs = specs
    return wrapper


def _overrides(specs, kwargs: dict) -> dict:
    """Pop the setting flags out of ``kwargs`` as ``{"section.key": value}``."""
    keys = {k.replace(".", "__"): k for _, k, _, _ in specs} | {"data__source": "data.source"}
    return {keys[k]: kwargs.pop(k) for k in list(kwargs) if k in keys}


def _resolve_config(specs, config_path, kwargs: dict):
    """Pop the setting flags out of ``kwargs`` and resolve defaults < file < flags."""
    from marketcast.config import load_config

    return load_config(config_path, _overrides(specs, kwargs))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="marketcast")
def cli() -> None:
    """Stacked-LSTM stock forecasts, always compared with tomorrow = today."""


cli.add_command(data)


GLOBAL_OPTIONS = [
    ("--tickers", "data.tickers", str,
     "Global model: `all` or comma-separated tickers of a long file, pooled into one LSTM."),
]


@cli.command()
@_config_options(extra=GLOBAL_OPTIONS)
def run(config, resume) -> None:
    """Data to trained model, test-period evaluation, 30-day forecast and plots."""
    from marketcast.api import run as run_api

    if config.data.tickers:
        if resume:
            raise click.UsageError("--resume works for one ticker; drop --tickers or --resume")
        _run_global(config)
        return
    with EpochProgress(err) as callback:
        result = run_api(config, callback=callback, resume=resume)
    _print_scores(result.evaluation)
    out.print(f"\nforecast of the next {len(result.forecast)} trading days: "
              f"{result.forecast['date'].iloc[0].date()} to "
              f"{result.forecast['date'].iloc[-1].date()}, last LSTM value "
              f"{result.forecast['lstm'].iloc[-1]:.2f}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    _print_report(result.path)


@cli.command()
@_config_options
def train(config, resume) -> None:
    """Fit the LSTM and save it (model, loss history, config) as a run folder."""
    from marketcast.api import train_run

    with EpochProgress(err) as callback:
        trained, path = train_run(config, callback=callback, resume=resume)
    out.print(f"best epoch {trained.lstm.best_epoch_} of {len(trained.lstm.history_)}")
    out.print(f"run folder: {path}")
    _print_report(path)


@cli.command()
@_config_options(extra=BACKTEST_OPTIONS, resumable=False)
def backtest(config) -> None:
    """Walk-forward evaluation of every model against the random walk."""
    from marketcast.walkforward import backtest as backtest_api

    def on_fit(model: str, fold: int, n_folds: int) -> None:
        if err.is_terminal:
            err.print(f"fitting {model}: fold {fold + 1}/{n_folds}", end="\r")

    result = backtest_api(config, on_fit=on_fit)
    _print_backtest(result)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    _print_report(result.path)


@cli.command()
@click.argument("run_dir")
def report(run_dir) -> None:
    """Write RUN_DIR/report.html: verdict, plots and tables in one offline page."""
    from marketcast.report import report as report_api

    _print_report(report_api(run_dir).parent)


def _run_global(config) -> None:
    from marketcast.api import run_global

    with EpochProgress(err) as callback, CountProgress(err, "tickers scored") as on_ticker:
        result = run_global(config, callback=callback, on_ticker=on_ticker)
    table = Table(title=f"global model, test period per ticker ({len(result.per_ticker)})")
    for heading in ("Theil's U", "q1", "median", "q3"):
        table.add_column(heading, justify="right")
    for model in ("lstm", "linear"):
        u = result.summary[f"theils_u_{model}"]
        table.add_row(model, *(f"{u[k]:.3f}" for k in ("q1", "median", "q3")))
    out.print(table)
    out.print(f"verdict: {result.verdict}", soft_wrap=True)
    if result.skipped:
        shown = ", ".join(list(result.skipped)[:5])
        out.print(f"skipped {len(result.skipped)} tickers ({shown}); reasons in skipped.csv")
    days = result.forecast["date"].nunique()
    out.print(f"forecast of the next {days} trading days for each ticker: forecast.csv; "
              f"one ticker again: marketcast forecast --run {result.path} --ticker "
              f"{result.forecast['ticker'].iloc[0]}", soft_wrap=True)
    out.print(f"run folder: {result.path}  ({result.seconds:.1f} s)")
    out.print(f"report: {result.path / 'report.html'}", soft_wrap=True)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--tickers", required=True,
              help="Comma-separated tickers of a long file, or `all`; one job each.")
@click.option("--ray-address", default=None,
              help="Address of a running Ray cluster (default: start Ray locally).")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the results table to this CSV file.")
@click.argument("job", nargs=-1, type=click.UNPROCESSED, required=True)
def batch(tickers, ray_address, output, job) -> None:
    """One job per ticker on Ray: marketcast batch --tickers A,B -- run|backtest [options]."""
    from marketcast.batch import COMMANDS
    from marketcast.batch import batch as batch_api
    from marketcast.errors import BatchError, ConfigError

    name, args = job[0], list(job[1:])
    if name not in COMMANDS:
        raise ConfigError(f"batch runs {' or '.join(COMMANDS)} jobs, not {name!r}; "
                          "e.g. marketcast batch --tickers A,B -- run --epochs 5")
    command = cli.commands[name]
    params = dict(command.make_context(name, args).params)
    config = _resolve_config(command.callback.config_specs, params.pop("config_path"), params)
    if config.data.tickers:
        raise ConfigError("give the tickers to batch (--tickers before --), not to the job")
    names = [t.strip() for t in tickers.split(",") if t.strip()]
    with CountProgress(err, "tickers done") as on_done:
        result = batch_api(config, names, name, ray_address,
                           on_done=None if on_done is None else lambda d, n, _: on_done(d, n))
    table = result.table
    # Theil's U and DM p-values fit a terminal; every column is in the CSV (--output).
    shown = ["ticker", "status", "seconds"] + [
        c for c in table.columns if c.startswith(("theils_u_", "dm_p_"))]
    columns = [(c, c.replace("_", " "), "{:.4g}" if table[c].dtype.kind == "f" else "{}")
               for c in shown]
    out.print(_table(f"batch {name}: {len(table)} tickers", table, columns))
    for row in result.failed.itertuples():
        out.print(f"failed: {row.ticker}: {row.error}", soft_wrap=True)
    if output:
        from marketcast.artifacts import write_csv

        write_csv(Path(output), table)
        out.print(f"results table: {output}", soft_wrap=True)
    out.print(f"{len(table) - len(result.failed)} of {len(table)} tickers done "
              f"({result.seconds:.1f} s)")
    if len(result.failed):
        raise BatchError(f"{len(result.failed)} of {len(table)} tickers failed "
                         f"({', '.join(result.failed['ticker'])}); see the table above")


TUNE_OPTIONS = [
    ("--trials", int, 20, "Number of trials."),
    ("--backend", click.Choice(["optuna", "ray"]), "optuna",
     "optuna (in this process) or ray (Ray Tune with the Optuna searcher)."),
    ("--output", click.Path(dir_okay=False), "best_config.toml",
     "Where to write the best configuration (TOML for run --config)."),
    ("--timeout", float, None, "Stop starting trials after this many seconds."),
    ("--ray-address", str, None, "Ray cluster address for --backend ray (default: local)."),
    ("--lookback-range", str, "10,120", "Lookback searched, MIN,MAX."),
    ("--layers-range", str, "1,3", "Layers searched, MIN,MAX."),
    ("--units-range", str, "16,128", "Units per layer searched, MIN,MAX."),
    ("--dropout-range", str, "0,0.5", "Dropout searched, MIN,MAX."),
    ("--batch-sizes", str, "32,64,128,256", "Batch sizes searched, a list."),
    ("--learning-rate-range", str, "0.0001,0.01", "Learning rate searched (log), MIN,MAX."),
    ("--epochs-range", str, "10,100", "Maximum epochs searched, MIN,MAX."),
]


def _tune_options(func):
    for flag, kind, default, help_text in reversed(TUNE_OPTIONS):
        func = click.option(flag, type=kind, default=default, show_default=default is not None,
                            help=help_text)(func)
    return func


@cli.command()
@_config_options
@_tune_options
def tune(config, trials, backend, output, timeout, ray_address, **ranges) -> None:
    """Search LSTM settings on the validation period (never the test period)."""
    from marketcast.tune import parse_space
    from marketcast.tune import tune as tune_api

    space = parse_space(ranges)
    with CountProgress(err, "trials", best=True) as on_trial:
        result = tune_api(config, trials, space, backend, output, ray_address, timeout,
                          on_trial)
    columns = [(c, c.replace("_", " "), "{:.4g}" if result.trials[c].dtype.kind == "f" else "{}")
               for c in result.trials.columns]
    out.print(_table(f"{len(result.trials)} trials ({backend})", result.trials, columns))
    out.print(f"best validation loss {result.best_value:.6g}; best configuration: "
              f"{result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    out.print(f"repeat it with: marketcast run --config {result.path}", soft_wrap=True)


@cli.command()
@click.option("--run", "run_dir", required=True, help="Run folder written by run or train.")
def evaluate(run_dir) -> None:
    """Re-score a saved model and the baselines on its test period."""
    from marketcast.api import evaluate_run

    _print_scores(evaluate_run(run_dir))


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
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the forecast CSV here instead of printing it.")
def forecast(run_dir, data, days, interval, ticker, output) -> None:
    """Forecast the next trading days with a saved model."""
    from marketcast.api import forecast as forecast_api

    frame = forecast_api(run_dir, data=data, days=days, interval=interval, ticker=ticker)
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    if output is None:
        click.echo(text, nl=False)
    else:
        from marketcast.artifacts import write_text

        write_text(Path(output), text)
        out.print(f"forecast written to {output}")



SCORE_COLUMNS = [
    ("model", "model", "{}"), ("n", "n", "{}"), ("rmse", "RMSE", "{:.3f}"),
    ("mae", "MAE", "{:.3f}"), ("mape", "MAPE %", "{:.3f}"),
    ("directional_accuracy", "direction %", "{:.1f}"), ("theils_u", "Theil's U", "{:.3f}"),
    ("dm_p_value", "DM p vs naive", "{:.3g}"),
]


def _table(title: str, frame, columns) -> Table:
    table = Table(title=title)
    for _, heading, _ in columns:
        table.add_column(heading, justify="left" if heading in ("model",) else "right")
    for row in frame.to_dict(orient="records"):
        table.add_row(*[_fmt(fmt, row[key]) for key, _, fmt in columns])
    return table


def _print_scores(evaluation) -> None:
    out.print(_table("test period (price units)", evaluation.scores, SCORE_COLUMNS))
    for line in evaluation.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


def _print_backtest(result) -> None:
    columns = SCORE_COLUMNS[:1] + [("step", "step", "{}")] + SCORE_COLUMNS[1:4] + [
        ("mase", "MASE", "{:.3f}")] + SCORE_COLUMNS[5:]
    out.print(_table("walk-forward backtest (price units)", result.scores, columns))
    if len(result.coverage):
        out.print(_table("conformal intervals", result.coverage, [
            ("model", "model", "{}"), ("step", "step", "{}"), ("n", "n", "{}"),
            ("coverage", "coverage %", "{:.1f}"), ("mean_width", "mean width", "{:.2f}")]))
    for line in result.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


def _print_report(run_dir: Path) -> None:
    from marketcast.report import REPORT

    out.print(f"report: {Path(run_dir) / REPORT}", soft_wrap=True)


def _fmt(fmt: str, value) -> str:
    if isinstance(value, float) and value != value:
        return "-"
    return fmt.format(value)


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
