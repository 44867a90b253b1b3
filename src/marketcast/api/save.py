"""Writing run folders: what each command saves, in one staged write per folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketcast import files
from marketcast.api.results import Evaluation, Trained
from marketcast.config import Config, config_to_toml
from marketcast.data import data_sha256, summarize
from marketcast.errors import os_errors
from marketcast.models.windows import Split
from marketcast.pipeline.series import wide_predictions
from marketcast.runs import folder as run_folder
from marketcast.runs import layout
from marketcast.runs.layout import RESIDUALS, Kind

# Versions saved in model.json: what loading the weights depends on.
MODEL_PACKAGES = ("marketcast", "torch", "numpy", "pandas", "scikit-learn", "safetensors")


@os_errors
def write_run(trained: Trained, evaluation: Evaluation | None, future: pd.DataFrame | None,
              seconds: float, runs_dir: str | Path | None = None,
              name: str | None = None) -> Path:
    """Write the run folder atomically; a failure leaves no folder behind.

    It goes to ``runs_dir/name``, by default the configured folder and name.
    """
    config = trained.config
    kind = Kind.TRAIN if evaluation is None else Kind.RUN
    with run_folder.staged(runs_dir or config.output.runs_dir, name or config.output.name,
                           label=label(config), kind=kind) as folder:
        _write_contents(folder.path, trained, evaluation, future, seconds)
    return folder.final


def _write_contents(out: Path, trained: Trained, evaluation, future, seconds) -> None:
    # Imported here: matplotlib and scipy.stats take ~1.3 s to import, which `forecast`
    # (and so `marketcast forecast`) never needs.
    from marketcast.report import plots, render_report

    config, split = trained.config, trained.split
    kind = Kind.TRAIN if evaluation is None else Kind.RUN
    files.write_text(out / layout.CONFIG, config_to_toml(config))
    history = trained.history()
    files.write_csv(out / layout.LOSS_HISTORY, history)
    plots.plot_loss(history, trained.lstm.best_epoch_, out / layout.LOSS_PLOT)
    tensors, meta = trained.lstm.get_state()
    # Forecasts start after the last day of the data, so that is the context saved with it.
    series, rows = trained.series, len(trained.lstm.y_)
    meta.update({
        "config": config.to_dict(),
        "features": list(series.feature_names),
        "context_y": series.y[-rows:].tolist(),
        "context_X": None if series.X is None else series.X[-rows:].tolist(),
        "context_dates": [d.date().isoformat() for d in series.dates[-rows:]],
        "data_sha256": data_sha256(trained.frame),
        "data_rows": len(trained.frame),
        "versions": files.package_versions(MODEL_PACKAGES),
    })
    if evaluation is not None and evaluation.fan is not None:
        meta["fan"] = evaluation.fan  # how `forecast` redraws the interval of the fan
    run_folder.save_model(out, tensors, meta)
    summary = {
        "data": summarize(trained.frame, config.data.target),
        "data_sha256": meta["data_sha256"],
        "split": split_dates(trained.series.dates, split),
        "best_epoch": trained.lstm.best_epoch_,
        "epochs_run": len(history),
        "wall_seconds": round(seconds, 2),
        "environment": files.environment(),
    }
    if evaluation is not None:
        files.write_csv(out / layout.TEST_FORECASTS, evaluation.table)
        predictions = wide_predictions(evaluation.table)
        files.write_csv(out / layout.PREDICTIONS, predictions)
        # Read back to calibrate forecast intervals: keep every digit.
        files.write_csv(out / RESIDUALS, evaluation.residuals, float_format="%.17g")
        plots.plot_test(predictions, config.data.target, out / layout.TEST_PLOT)
        summary["metrics"] = files.json_records(evaluation.scores)
        summary["metrics_by_step"] = files.json_records(evaluation.scores_by_step)
        # The p-values behind the verdict, exact: the report words its cards from these.
        summary["comparisons"] = files.json_records(evaluation.comparisons)
        summary["verdict"] = evaluation.verdict
        if evaluation.intervals is not None:
            summary["interval"] = config.forecast.interval
            summary["coverage"] = files.json_records(evaluation.intervals.scores)
            summary["interval_method"] = evaluation.intervals.to_dict()
        if evaluation.strategy is not None:
            files.write_csv(out / layout.STRATEGY, evaluation.strategy.table)
            summary["strategy"] = evaluation.strategy.summary
    if future is not None:
        files.write_csv(out / layout.FORECAST, future)
        target = pd.Series(trained.series.y, index=trained.series.dates)
        plots.plot_forecast(target, future, config.data.target, out / layout.FORECAST_PLOT)
    files.write_json(out / layout.METRICS, summary)
    # Rendered from the files above, before the manifest, which then vouches for it too.
    files.write_text(out / layout.REPORT, render_report(out, kind))


def label(config: Config) -> str:
    """What names an unnamed run: the ticker or the data source."""
    return config.data.ticker or config.data.source


def split_dates(dates: pd.DatetimeIndex, split: Split) -> dict:
    def span(a: int, b: int) -> list[str] | None:
        return [dates[a].date().isoformat(), dates[b - 1].date().isoformat()] if b > a else None

    return {
        "train": span(0, split.n_train),
        "validation": span(split.n_train, split.test_start),
        "test": span(split.test_start, len(dates)),
        "rows": [split.n_train, split.n_val, split.n_test],
    }
