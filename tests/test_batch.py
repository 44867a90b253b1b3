"""The per-ticker job of `marketcast batch`, without Ray (tests/test_ray.py runs it on Ray)."""

import dataclasses

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from marketcast.data.sources import read_source
from marketcast.scale.batch import adjust_columns, job_config, read_once, run_job


def test_the_driver_reads_every_ticker_once_in_file_order(long_csv, config):
    config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                  source=str(long_csv)))
    frames, names = read_once(config, ["all"])
    assert names == ["AAA", "BBB", "CCC", "SHORT"] == list(frames)
    pd.testing.assert_frame_equal(frames["BBB"], read_source(str(long_csv), ticker="bbb",
                                                             strict=("close",)))
    frames, names = read_once(config, ["ccc", "NOPE"])
    assert list(frames) == ["CCC"] and names == ["CCC", "NOPE"]


def test_a_job_uses_the_rows_it_is_given(long_csv, config, tmp_path):
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(long_csv)),
        backtest=dataclasses.replace(config.backtest, models=("naive",), n_windows=5,
                                     refit_every=0))
    frame = read_once(config, ["AAA"])[0]["AAA"]
    long_csv.unlink()  # the job cannot read the file
    row = run_job(config, "AAA", "backtest", frame)
    assert row["status"] == "ok", row["error"]
    assert row["rmse_naive"] > 0
    assert run_job(config, "AAA", "backtest")["status"] == "error"  # without the rows


def test_job_config_sets_the_ticker_and_names_the_run(config):
    named = dataclasses.replace(config, output=dataclasses.replace(config.output, name="b"))
    job = job_config(named, "MSFT")
    assert job.data.ticker == "MSFT" and job.output.name == "b-MSFT"
    assert job_config(config, "MSFT").output.name is None
    assert job.model == config.model and job.train == config.train


def test_run_job_turns_our_errors_into_a_row(long_csv, config):
    config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                  source=str(long_csv)))
    row = run_job(config, "NOPE", "run")
    assert row["ticker"] == "NOPE" and row["status"] == "error" and row["path"] == ""
    assert row["error"].startswith("ticker 'NOPE' not in")


def test_adjusted_p_value_beside_each_dm_p_value():
    table = pd.DataFrame({
        "ticker": ["A", "B", "C", "NOPE"], "status": ["ok"] * 3 + ["error"],
        "rmse_naive": [1.0, 1.0, 1.0, np.nan], "rmse_lstm": [1.0, 1.0, 1.0, np.nan],
        "dm_p_lstm": [0.01, 0.04, 0.03, np.nan], "rmse_linear": [1.0, 1.0, 1.0, np.nan],
        "dm_p_linear": [0.5, 0.2, 0.9, np.nan]})
    adjusted = adjust_columns(table)
    assert list(adjusted.columns) == [
        "ticker", "status", "rmse_naive", "rmse_lstm", "dm_p_lstm", "dm_p_adjusted_lstm",
        "rmse_linear", "dm_p_linear", "dm_p_adjusted_linear"]
    # Over the three tickers with a p-value (by hand: 0.03, 0.04, 0.03; the failed job stays
    # NaN), and exactly statsmodels' Benjamini-Hochberg.
    np.testing.assert_allclose(adjusted["dm_p_adjusted_lstm"], [0.03, 0.04, 0.04, np.nan],
                               rtol=1e-12)
    np.testing.assert_array_equal(adjusted["dm_p_adjusted_linear"][:3],
                                  multipletests([0.5, 0.2, 0.9], method="fdr_bh")[1])
    pd.testing.assert_frame_equal(adjusted[table.columns], table)
