"""The commands that run many jobs or trials: ``batch``, ``tune`` and ``study``."""

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
    ("--output", click.Path(dir_okay=False), None,
     "Also write the best configuration (TOML for run --config) here; the run folder "
     "always holds it as best_config.toml."),
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


HEADINGS = {"value": "val loss", "val_theils_u": "Theil's U", "batch_size": "batch",
            "val_rmse": "RMSE",
            "learning_rate": "lr", "max_epochs": "epochs"}


def _tune_options(func):
    for flag, kind, default, help_text in reversed(TUNE_OPTIONS):
        func = click.option(flag, type=kind, default=default, show_default=default is not None,
                            help=help_text)(func)
    return func


@click.command()
@config_options(resumable=False)
@_tune_options
@track_option
def tune(config, trials, backend, output, timeout, ray_address, track, **ranges) -> None:
    """Search LSTM settings on the validation period (never the test period); write a run
    folder with every trial, the best configuration and a report."""
    from marketcast.report.search import tune_sentence
    from marketcast.scale.tune import PARAMS, parse_space
    from marketcast.scale.tune import tune as tune_api

    require_tracking(track)
    space = parse_space(ranges)
    with CountProgress(err, "trials", best=True) as on_trial:
        result = tune_api(config, trials, space, backend, output, ray_address, timeout,
                          on_trial)
    # The scores at the best epoch and the settings fit a terminal; every column, and every
    # epoch, is in the folder's trials.csv.
    shown = result.trials[["trial", "state", "value", "val_theils_u", *PARAMS]]
    columns = [(c, HEADINGS.get(c, c.replace("_", " ")),
                "{:.4g}" if shown[c].dtype.kind == "f" else "{}") for c in shown.columns]
    out.print(rich_table(f"{len(shown)} trials ({backend})", shown, columns))
    out.print(tune_sentence(result.trials).replace("`", ""), soft_wrap=True)
    out.print(f"best validation loss {result.best_value:.6g}; best configuration: "
              f"{result.config_path}  ({result.seconds:.1f} s)", soft_wrap=True)
    out.print(f"run folder: {result.path}", soft_wrap=True)
    out.print(f"report: {result.path / 'report.html'}", soft_wrap=True)
    out.print(f"repeat it with: marketcast run --config {result.config_path}", soft_wrap=True)
    if track:
        from marketcast.api.tracking import log_tune

        out.print(f"tracked in MLflow: run {log_tune(track, result)} at {track}",
                  soft_wrap=True)


# The settings a study varies: (flag, key of scale.study.GRID, type, default, help).
STUDY_GRID = [
    ("--batch-sizes", "batch_size", int, "16,32,64", "Batch sizes, a list."),
    ("--lookback", "lookback", int, None, "Lookbacks, a list (default: the config's)."),
    ("--layers", "layers", int, None, "Stacked LSTM layers, a list (default: the config's)."),
    ("--units", "units", int, None, "Units per layer, a list (default: the config's)."),
    ("--dropout", "dropout", float, None, "Dropouts, a list (default: the config's)."),
    ("--learning-rate", "learning_rate", float, None,
     "Learning rates, a list (default: the config's)."),
]
# Setting flags of run that a study takes as lists (above) or turns off (patience).
STUDY_OMITS = ("--batch-size", "--lookback", "--layers", "--units", "--dropout",
               "--learning-rate", "--epochs", "--patience")


def _study_options(func):
    for flag, key, _, default, help_text in reversed(STUDY_GRID):
        func = click.option(flag, key, default=default, show_default=default is not None,
                            help=help_text)(func)
    func = click.option("--epochs", default="10,25,50,100", show_default=True,
                        help="Epoch counts scored, a list; each combination trains once, "
                             "to the largest, with early stopping off.")(func)
    return func


@click.command()
@config_options(resumable=False, omit=STUDY_OMITS)
@_study_options
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local (one training after another) or ray (Ray tasks).")
@click.option("--ray-address", default=None,
              help="Ray cluster address for --backend ray (default: local).")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the preferred configuration (TOML for run --config) here.")
def study(config, epochs, backend, ray_address, output, **lists) -> None:
    """Validation accuracy of every combination of epochs, batch sizes and other settings
    (the test period is never read); write a run folder with the table and a report."""
    from marketcast.report.search import study_sentence
    from marketcast.scale.study import parse_list
    from marketcast.scale.study import study as study_api

    grid = {key: parse_list(flag, lists[key], kind)
            for flag, key, kind, _, _ in STUDY_GRID if lists[key] is not None}
    counts = parse_list("--epochs", epochs, int)
    with CountProgress(err, "epochs trained") as on_done:
        result = study_api(config, counts, grid, backend, ray_address, output, on_done)
    settings = [k for k in grid if result.table[k].nunique() > 1] or list(grid)
    # The settings that vary fit a terminal; every column is in the folder's study.csv.
    table = result.table.sort_values(["combination", "epochs"])[
        [*settings, "epochs", "val_rmse", "val_theils_u", "seconds"]]
    columns = [(c, HEADINGS.get(c, c.replace("_", " ")),
                "{:.4g}" if table[c].dtype.kind == "f" else "{}") for c in table.columns]
    out.print(rich_table(f"study: {result.table['combination'].nunique()} trainings "
                         f"({backend}), validation period", table, columns))
    out.print(study_sentence(result.table, settings).replace("`", ""), soft_wrap=True)
    out.print(f"preferred configuration: {result.config_path}  ({result.seconds:.1f} s)",
              soft_wrap=True)
    out.print(f"run folder: {result.path}", soft_wrap=True)
    out.print(f"report: {result.path / 'report.html'}", soft_wrap=True)
    out.print(f"test it with: marketcast run --config {result.config_path}", soft_wrap=True)
