"""Options shared by the commands: every setting flag, and how they resolve into a Config."""

from __future__ import annotations

import functools

import click
from rich.table import Table

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
    ("--lr-scaling", "train.lr_scaling", click.Choice(["none", "sqrt", "linear"]),
     "Scale the learning rate to the batch size, against batch 64: none, sqrt or linear "
     "(none)."),
    ("--warmup-steps", "train.warmup_steps", int,
     "Optimizer steps over which the learning rate rises linearly to its value (0)."),
    ("--patience", "train.patience", int, "Early-stopping patience in epochs (10)."),
    ("--seed", "train.seed", int, "Random seed (0)."),
    ("--days", "forecast.days", int, "Trading days to forecast (30)."),
    ("--interval", "forecast.interval", float,
     "Conformal prediction interval coverage, 0 for none (0.9)."),
    ("--interval-method", "backtest.interval_method",
     click.Choice(["auto", "conformal", "scaled", "aci"]),
     "Interval calibration: conformal, scaled by the EWMA volatility, aci (scaled, miss "
     "level adapted online) or auto: the best on the first third of cutoffs (auto)."),
    ("--runs-dir", "output.runs_dir", str, "Folder for run folders (runs)."),
    ("--name", "output.name", str, "Run folder name (default: time stamp and data)."),
]


BACKTEST_OPTIONS = [
    ("--n-windows", "backtest.n_windows", int, "Forecast cutoffs (250)."),
    ("--stride", "backtest.stride", int, "Trading days between cutoffs (1)."),
    ("--step", "backtest.step", int, "Old name of --stride (deprecated)."),
    ("--train-size", "backtest.train_size", int,
     "Fixed training rows per fit (default: expanding window)."),
    ("--refit-every", "backtest.refit_every", int,
     "Refit every k cutoffs; 0 fits once at the first (25)."),
    ("--refit", "backtest.refit", click.Choice(["cold", "warm"]),
     "LSTM refits from fresh weights (cold) or the previous fold's (warm) (cold)."),
    ("--models", "backtest.models", str,
     "Comma-separated models (lstm,naive,drift,linear,arima)."),
    ("--workers", "backtest.workers", int,
     "Processes fitting folds at once; 0 one per CPU core, 1 none (0)."),
]


# Trading rules on the forecasts (run and backtest).
STRATEGY_OPTIONS = [
    ("--rule", "strategy.rule", click.Choice(["long_flat", "long_short", "both"]),
     "Trading rule on the one-day-ahead forecasts (both)."),
    ("--threshold", "strategy.threshold", float,
     "Forecast return a trade needs, e.g. 0.001 for 0.1% (0)."),
    ("--cost-bps", "strategy.cost_bps", float,
     "Trading cost in basis points per unit of turnover (5)."),
]


def config_options(func=None, *, extra=(), resumable=True, omit=()):
    """Add --config, --data, --resume and every setting flag but those in ``omit``; pass the
    resolved Config as ``config`` and the checkpoint folder to resume (or False) as
    ``resume``. Commands that train no single model (``resumable=False``) get neither
    --resume nor ``resume``."""
    if func is None:
        return functools.partial(config_options, extra=extra, resumable=resumable, omit=omit)
    specs = [s for s in DATA_OPTIONS + MODEL_OPTIONS + list(extra) if s[0] not in omit]
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
            return func(config=resolve_config(specs, config_path, kwargs), **kwargs)
        if resume is None:
            config = resolve_config(specs, config_path, kwargs)
            return func(config=config, resume=False, **kwargs)
        from marketcast.runs.session import resume_config

        config, folder = resume_config(resume, config_path, overrides(specs, kwargs))
        return func(config=config, resume=folder, **kwargs)

    wrapper.config_specs = specs
    return wrapper


def overrides(specs, kwargs: dict) -> dict:
    """Pop the setting flags out of ``kwargs`` as ``{"section.key": value}``."""
    keys = {k.replace(".", "__"): k for _, k, _, _ in specs} | {"data__source": "data.source"}
    return {keys[k]: kwargs.pop(k) for k in list(kwargs) if k in keys}


def resolve_config(specs, config_path, kwargs: dict):
    """Pop the setting flags out of ``kwargs`` and resolve defaults < file < flags."""
    from marketcast.config import load_config

    return load_config(config_path, overrides(specs, kwargs))


def rich_table(title: str, frame, columns) -> Table:
    table = Table(title=title)
    for _, heading, _ in columns:
        table.add_column(heading, justify="left" if heading in ("model",) else "right")
    for row in frame.to_dict(orient="records"):
        table.add_row(*[fmt_value(fmt, row[key]) for key, _, fmt in columns])
    return table


def fmt_value(fmt: str, value) -> str:
    if isinstance(value, float) and value != value:
        return "-"
    return fmt.format(value)


def track_option(func):
    """``--track URI``: log the command's run to MLflow (``marketcast[mlflow]``)."""
    return click.option(
        "--track", metavar="URI", default=None,
        help="Log settings, losses, scores, verdict and the run folder to the MLflow "
             "tracking server at URI (needs marketcast[mlflow]).")(func)


def require_tracking(track: str | None) -> None:
    """Before the work: the install hint of ``--track`` must not wait for a run."""
    if track:
        from marketcast.api.tracking import require_mlflow

        require_mlflow()
