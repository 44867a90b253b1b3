"""Searches on the validation period as run folders: a 2 x 2 study and a 4-trial tune, their
tables, their reports in a real browser, and their blindness to the test period."""

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import Browser, browser_or_skip
from conftest import small_config, synthetic_prices
from test_cli import assert_one_line_error, cli
from test_tune import TINY, TINY_FLAGS

from marketcast.config import load_config
from marketcast.errors import ConfigError, DataError
from marketcast.models import LSTMForecaster
from marketcast.report import render_report
from marketcast.report.blocks import TITLES
from marketcast.report.search import STUDY_SECTIONS, TUNE_SECTIONS
from marketcast.runs.folder import kind_of, verify_folder
from marketcast.scale.study import study
from marketcast.scale.trial import fit_scored
from marketcast.scale.tune import PARAMS, tune, validation_data

# The settings both searches run with: tiny, seconds in all.
SMALL = {"layers": 1, "units": 4}
GRID = {"batch_size": (16, 32), "units": (4,)}
EPOCHS = (2, 3)
# Columns that hold times, which differ from one run to the next.
TIMES = ["seconds", "epoch_seconds"]


def prices(tmp_path, name="prices.csv", factor=1.0, rows=slice(272, None)):
    """The synthetic series with the close of ``rows`` (default: the test period) scaled."""
    frame = synthetic_prices()
    frame.loc[frame.index[rows], ["Close", "Adj Close"]] *= factor
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def searches(tmp_path, path, name):
    config = small_config(path, tmp_path / "runs", **SMALL)
    config = dataclasses.replace(
        config, output=dataclasses.replace(config.output, name=f"study-{name}"))
    studied = study(config, EPOCHS, GRID)
    config = dataclasses.replace(
        config, output=dataclasses.replace(config.output, name=f"tune-{name}"))
    return studied, tune(config, n_trials=4, space=TINY)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    studied, tuned = searches(tmp, prices(tmp), "clean")
    return {"study": studied, "tune": tuned, "tmp": tmp}


def naive_rmse(config):
    """The random walk's RMSE on the validation days, from the prices themselves."""
    seen, split = validation_data(config)
    y = seen.y
    return float(np.sqrt(np.mean(np.square(np.diff(y[split.n_train - 1 :])))))


def test_study_folder_holds_every_combination_at_every_epoch_count(folders):
    result = folders["study"]
    assert kind_of(result.path) == "study"
    assert set(verify_folder(result.path)) == {
        "config.toml", "best_config.toml", "study.csv", "epochs.csv", "metrics.json",
        "report.html"}
    table = pd.read_csv(result.path / "study.csv")
    assert len(table) == 4
    assert sorted(zip(table["batch_size"], table["epochs"], strict=True)) == [
        (16, 2), (16, 3), (32, 2), (32, 3)]
    epochs = pd.read_csv(result.path / "epochs.csv")
    assert epochs.groupby("combination")["epoch"].apply(list).tolist() == [[1, 2, 3]] * 2
    # The table is the epochs asked for, read off the one training per batch size.
    picked = epochs[epochs["epoch"].isin(EPOCHS)].reset_index(drop=True)
    np.testing.assert_allclose(table["val_rmse"], picked["val_rmse"], rtol=1e-9)
    np.testing.assert_allclose(table["seconds"],
                               epochs.groupby("combination")["epoch_seconds"].cumsum()
                               [epochs["epoch"].isin(EPOCHS)], rtol=1e-6)
    # Theil's U is the RMSE over the random walk's on the same validation days.
    config = load_config(result.path / "config.toml")
    np.testing.assert_allclose(table["val_theils_u"], table["val_rmse"] / naive_rmse(config),
                               rtol=1e-6)
    best = table.loc[table["val_rmse"].idxmin()]
    chosen = load_config(result.path / "best_config.toml")
    assert chosen.train.batch_size == best["batch_size"]
    assert chosen.train.max_epochs == best["epochs"] == chosen.train.patience
    assert chosen.model.units == 4 and chosen.data == config.data
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["grid"] == {"units": [4], "batch_size": [16, 32]}
    assert metrics["trainings"] == 2 and metrics["split"]["rows"] == [224, 48, 48]


def test_one_training_gives_every_epoch_count(folders, tmp_path):
    """A training stopped at 2 epochs passes the weights the study read at epoch 2."""
    config = load_config(folders["study"].path / "config.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, batch_size=16, max_epochs=2, patience=2), model=dataclasses.replace(
        config.model, units=4))
    seen, split = validation_data(config)
    short = fit_scored(seen, split, config)
    table = pd.read_csv(folders["study"].path / "study.csv")
    row = table[(table["batch_size"] == 16) & (table["epochs"] == 2)].iloc[0]
    assert short["val_loss"].iloc[-1] == pytest.approx(row["val_loss"], rel=1e-7)
    assert short["val_rmse"].iloc[-1] == pytest.approx(row["val_rmse"], rel=1e-7)


def test_epoch_scores_are_those_of_the_fitted_lstm(config):
    """fit_scored trains as LSTMForecaster.fit does; its RMSE is the forecaster's."""
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_epochs=1))
    seen, split = validation_data(config)
    scored = fit_scored(seen, split, config)
    model = LSTMForecaster.from_config(config.model, config.train)
    model.fit(seen.y, seen.X, n_val=split.n_val)
    assert scored["val_loss"].tolist() == [e.val_loss for e in model.history_]
    cutoffs = np.arange(split.n_train - 1, len(seen.y) - 1)
    y_hat = model.predict_cutoffs(seen.y, seen.X, cutoffs, 1)[:, 0]
    rmse = np.sqrt(np.mean((seen.y[cutoffs + 1] - y_hat) ** 2))
    assert scored["val_rmse"].iloc[0] == pytest.approx(rmse, rel=1e-9)


def test_tune_folder_holds_every_trial_and_epoch(folders):
    result = folders["tune"]
    assert kind_of(result.path) == "tune"
    assert set(verify_folder(result.path)) == {
        "config.toml", "best_config.toml", "trials.csv", "metrics.json", "report.html"}
    epochs = pd.read_csv(result.path / "trials.csv")
    assert sorted(epochs["trial"].unique()) == [0, 1, 2, 3]
    assert set(epochs["state"]) <= {"COMPLETE", "PRUNED"}
    runs = epochs.groupby("trial").agg(n=("epoch", "size"), top=("epoch", "max"),
                                       cap=("max_epochs", "first"), state=("state", "first"))
    assert (runs["n"] == runs["top"]).all() and (runs["top"] <= runs["cap"]).all()
    assert (epochs["val_theils_u"] > 0).all() and (epochs["seconds"] > 0).all()
    trials = result.trials
    np.testing.assert_allclose(trials["value"], epochs.groupby("trial")["val_loss"].min(),
                               rtol=1e-9)
    done = trials[trials["state"] == "COMPLETE"]
    best = done.loc[done["value"].idxmin()]
    chosen = load_config(result.path / "best_config.toml")
    assert chosen.model.lookback == best["lookback"] and chosen.model.units == best["units"]
    assert chosen.train.batch_size == best["batch_size"]
    assert result.best_value == pytest.approx(best["value"])
    importances = json.loads((result.path / "metrics.json").read_text())["importances"]
    assert set(importances["values"]) == set(PARAMS)
    assert sum(importances["values"].values()) == pytest.approx(1.0)


def test_reports_say_how_far_the_best_is(folders):
    html = (folders["tune"].path / "report.html").read_text()
    assert "has the lowest validation loss" in html and "The runner-up, trial" in html
    assert "the best of 4 trials is an optimistic estimate" in html
    assert "get_param_importances" in html
    html = (folders["study"].path / "report.html").read_text()
    assert "The validation period prefers batch size" in html
    assert "the best of 4 combinations is an optimistic estimate" in html
    assert "marketcast run --config best_config.toml" in html


def test_importances_need_two_completed_trials(config):
    result = tune(config, n_trials=1, space=TINY)
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["importances"]["values"] is None
    html = (result.path / "report.html").read_text()
    assert "importances could not be computed" in html and "need at least two" in html


def test_the_test_period_changes_nothing(folders):
    tmp = folders["tmp"]
    studied, tuned = searches(tmp, prices(tmp, "dirty.csv", factor=10.0), "dirty")
    clean = folders["study"].path
    for name in ("study.csv", "epochs.csv"):
        a, b = (pd.read_csv(folder / name).drop(columns=TIMES, errors="ignore")
                for folder in (clean, studied.path))
        pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        pd.read_csv(folders["tune"].path / "trials.csv").drop(columns=TIMES),
        pd.read_csv(tuned.path / "trials.csv").drop(columns=TIMES))
    for result, other in ((folders["study"], studied), (folders["tune"], tuned)):
        a, b = (tomllib.loads((r.path / "best_config.toml").read_text()) for r in (result, other))
        assert {k: v for k, v in a.items() if k not in ("data", "output")} == \
               {k: v for k, v in b.items() if k not in ("data", "output")}
    # A validation day changed does change the study (so the comparison can fail).
    changed = prices(tmp, "val.csv", factor=1.2, rows=slice(250, 260))
    config = small_config(changed, tmp / "runs", **SMALL)
    progress = []
    moved = study(config, EPOCHS, GRID, on_done=lambda d, n: progress.append((d, n)))
    assert progress == [(d, 6) for d in range(1, 7)]  # epochs trained of 2 x 3
    assert not np.allclose(moved.table["val_rmse"], folders["study"].table["val_rmse"])


def test_study_command(capsys, prices_csv, tmp_path):
    code, out, _ = cli(capsys, "study", "--data", str(prices_csv), "--epochs", "2,1",
                       "--batch-sizes", "16,32", "--units", "4", "--layers", "1",
                       "--lookback", "10", "--runs-dir", str(tmp_path / "runs"), "--name", "s",
                       "--output", str(tmp_path / "best.toml"))
    assert code == 0, out
    assert "study: 2 trainings (local)" in out and "The validation period prefers" in out
    table = pd.read_csv(tmp_path / "runs" / "s" / "study.csv")
    assert sorted(table["epochs"].unique()) == [1, 2] and set(table["lookback"]) == {10}
    assert load_config(tmp_path / "best.toml") == load_config(
        tmp_path / "runs" / "s" / "best_config.toml")
    code, _, err = cli(capsys, "study", "--data", str(prices_csv), "--batch-sizes", "16,x")
    assert_one_line_error(code, err, "--batch-sizes '16,x': expected comma-separated numbers")
    code, _, err = cli(capsys, "study", "--data", str(prices_csv), "--epochs", "0,2")
    assert_one_line_error(code, err, "every count must be at least 1")
    assert not (tmp_path / "runs" / "s-1").exists()


def test_tune_command_writes_a_folder(capsys, prices_csv, tmp_path):
    code, out, _ = cli(capsys, "tune", "--data", str(prices_csv), "--trials", "2",
                       "--runs-dir", str(tmp_path / "runs"), "--name", "t", *TINY_FLAGS)
    assert code == 0, out
    folder = tmp_path / "runs" / "t"
    assert f"best configuration: {folder / 'best_config.toml'}" in out
    assert f"run folder: {folder}" in out and "Of 2 trials" in out
    assert pd.read_csv(folder / "trials.csv")["trial"].nunique() == 2


# --- in a real browser ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with browser_or_skip(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


@pytest.mark.parametrize("kind, keys, n_images", [("tune", TUNE_SECTIONS, 5),
                                                  ("study", STUDY_SECTIONS, 2)])
def test_report_in_headless_chromium(browser: Browser, folders, kind, keys, n_images):
    page = browser.open(folders[kind].path / "report.html")
    assert page.sections == [(key, TITLES[key]) for key in keys]
    assert len(page.images) == n_images and page.broken_images == []
    assert all(width >= 600 for width in page.image_widths)
    assert page.external_requests == [] and page.console_errors == []


def test_reports_render_again_from_the_folder(folders):
    """`marketcast report FOLDER` redraws a search's page from its files, byte for byte."""
    for kind in ("tune", "study"):
        folder = folders[kind].path
        assert render_report(folder) == (folder / "report.html").read_text()


def test_a_grid_that_does_not_fit_leaves_no_folder(config):
    with pytest.raises(DataError, match="lookback 500"):
        study(config, (1,), {"lookback": (10, 500)})
    with pytest.raises(ConfigError, match="cannot vary patience"):
        study(config, (1,), {"patience": (1, 2)})
    runs = Path(config.output.runs_dir)
    assert not runs.exists() or list(runs.iterdir()) == []
