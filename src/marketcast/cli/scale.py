"""The commands that run many jobs or trials: ``batch`` and ``tune``."""

from __future__ import annotations

from pathlib import Path

import click

from marketcast.cli.console import err, out
from marketcast.cli.options import (
    config_options,
    require_tracking,
    resolve_config,
    rich_table,
    track_option,
)
from marketcast.cli.progress import CountProgress


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--tickers", required=True,
              help="Comma-separated tickers of a long file, or `all`; one job each.")
@click.option("--ray-address", default=None,
              help="Address of a running Ray cluster (default: start Ray locally).")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the results table to this CSV file.")
@click.argument("job", nargs=-1, type=click.UNPROCESSED, required=True)
def batch(tickers, ray_address, output, job) -> None:
    """One job per ticker on Ray: marketcast batch --tickers A,B -- run|backtest [options]."""
    from marketcast.errors import BatchError, ConfigError
    from marketcast.scale.batch import COMMANDS
    from marketcast.scale.batch import batch as batch_api

    name, args = job[0], list(job[1:])
    if name not in COMMANDS:
        raise ConfigError(f"batch runs {' or '.join(COMMANDS)} jobs, not {name!r}; "
                          "e.g. marketcast batch --tickers A,B -- run --epochs 5")
    command = click.get_current_context().find_root().command.commands[name]
    params = dict(command.make_context(name, args).params)
    config = resolve_config(command.callback.config_specs, params.pop("config_path"), params)
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
    out.print(rich_table(f"batch {name}: {len(table)} tickers", table, columns))
    for row in result.failed.itertuples():
        out.print(f"failed: {row.ticker}: {row.error}", soft_wrap=True)
    if output:
        from marketcast.files import write_csv

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


@click.command()
@config_options
@_tune_options
@track_option
def tune(config, trials, backend, output, timeout, ray_address, track, **ranges) -> None:
    """Search LSTM settings on the validation period (never the test period)."""
    from marketcast.scale.tune import parse_space
    from marketcast.scale.tune import tune as tune_api

    require_tracking(track)
    space = parse_space(ranges)
    with CountProgress(err, "trials", best=True) as on_trial:
        result = tune_api(config, trials, space, backend, output, ray_address, timeout,
                          on_trial)
    columns = [(c, c.replace("_", " "), "{:.4g}" if result.trials[c].dtype.kind == "f" else "{}")
               for c in result.trials.columns]
    out.print(rich_table(f"{len(result.trials)} trials ({backend})", result.trials, columns))
    out.print(f"best validation loss {result.best_value:.6g}; best configuration: "
              f"{result.path}  ({result.seconds:.1f} s)", soft_wrap=True)
    out.print(f"repeat it with: marketcast run --config {result.path}", soft_wrap=True)
    if track:
        from marketcast.api.tracking import log_tune

        out.print(f"tracked in MLflow: run {log_tune(track, result)} at {track}",
                  soft_wrap=True)
