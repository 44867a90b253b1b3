"""Warm-started refits (`backtest --refit warm`): the LSTM's refits after the first start
from the previous fold's network and scaler, with their own epochs and patience, and still
never see a row after their cutoff."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_backtest import walk_forward_with_future_changed, with_backtest
from test_global_backtest import panel_backtest_config

from marketcast import api
from marketcast.config import Config
from marketcast.errors import ConfigError
from marketcast.pipeline.series import load_series
from marketcast.pipeline.walkforward import cutoffs, fit_fold, folds, walk_forward

WARM = {"refit": "warm", "warm_epochs": 2, "warm_patience": 1}


def test_warm_refit_never_sees_rows_after_its_cutoff(config, tmp_path):
    """Perturb every price after the third fold's cutoff t: every forecast made at or before
    t (the third fold's at t included, fitted warm from the first two) is unchanged."""
    config = with_backtest(config, n_windows=15, stride=2, refit_every=5, models=("lstm",),
                           **WARM)
    _, series = load_series(config)
    table, fits = walk_forward(series, config)
    assert fits == {"lstm": 3}
    t = int(cutoffs(len(series.y), 15, 2, 1)[10])  # first cutoff of the third fold
    table2 = walk_forward_with_future_changed(config, t, tmp_path)
    seen = table["cutoff"] <= series.dates[t]
    assert seen.sum() == 11  # cutoffs 0..10, one step each
    pd.testing.assert_series_equal(table.loc[seen, "y_hat"], table2.loc[seen, "y_hat"])
    assert not np.allclose(table.loc[~seen, "y_hat"], table2.loc[~seen, "y_hat"])


def test_warm_refit_starts_from_the_previous_fold_and_runs_fewer_epochs(config):
    config = dataclasses.replace(
        with_backtest(config, n_windows=10, refit_every=5, models=("lstm",), **WARM),
        train=dataclasses.replace(config.train, max_epochs=6, patience=6))
    _, series = load_series(config)
    first, second = folds(cutoffs(len(series.y), 10, 1, 1), 5, None)
    _, previous = fit_fold(series, config, first, "lstm")
    before = {k: v.clone() for k, v in previous.net_.state_dict().items()}
    _, cold = fit_fold(series, config, second, "lstm")
    _, warm = fit_fold(series, config, second, "lstm", warm_start=previous)
    assert len(cold.history_) == 6 and len(warm.history_) == 2  # warm_epochs
    # It starts from trained weights: its first epoch fits far better than a fresh start's.
    assert warm.history_[0].train_loss < 0.5 * cold.history_[0].train_loss
    # It keeps the scaler its starting weights were trained with (fitted before cutoff 0).
    assert warm.transform_ is previous.transform_
    # The previous fold's model is left as it was (its forecasts are already made).
    for name, value in previous.net_.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_warm_chain_in_worker_processes_gives_the_sequential_table(config):
    config = with_backtest(config, n_windows=9, stride=2, refit_every=3,
                           models=("lstm", "naive"), **WARM)
    _, series = load_series(config)
    sequential, _ = walk_forward(series, config)
    calls = []
    parallel, _ = walk_forward(series, dataclasses.replace(
        config, backtest=dataclasses.replace(config.backtest, workers=2)),
        on_fit=lambda *args: calls.append(args))
    assert sorted(calls) == sorted((m, k, 3) for m in ("lstm", "naive") for k in range(3))
    pd.testing.assert_frame_equal(sequential, parallel, rtol=1e-5)


def test_global_warm_refit_never_sees_the_future(long_csv, tmp_path):
    """`backtest --tickers --refit warm`: the second fold (warm, every ticker) at cutoff t
    and everything before it ignore every later price of every ticker."""
    config = panel_backtest_config(long_csv, tmp_path, **WARM)
    before = api.backtest(config, write=False).table
    frame = pd.read_csv(long_csv)
    second = sorted(before["cutoff"].unique())[20]
    frame.loc[pd.to_datetime(frame["date"]) > second, ["open", "high", "low", "close"]] *= 1.5
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    after = api.backtest(dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(changed))), write=False).table
    cols = ["ticker", "model", "cutoff", "step", "y_hat"]
    seen_before, seen_after = before["cutoff"] <= second, after["cutoff"] <= second
    assert seen_before.sum() == 3 * 3 * 21  # tickers x models x cutoffs
    pd.testing.assert_frame_equal(before.loc[seen_before, cols].reset_index(drop=True),
                                  after.loc[seen_after, cols].reset_index(drop=True))
    assert not np.allclose(before.loc[~seen_before, "y_hat"], after.loc[~seen_after, "y_hat"])


@pytest.mark.parametrize(("key", "value"), [("refit", "hot"), ("warm_epochs", 0),
                                            ("warm_patience", 0)])
def test_bad_warm_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"backtest.{key}"):
        Config.from_dict({"backtest": {key: value}})
