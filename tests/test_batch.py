"""The per-ticker job of `marketcast batch`, without Ray (tests/test_ray.py runs it on Ray)."""

import dataclasses

from marketcast.scale.batch import all_tickers, job_config, run_job


def test_all_tickers_in_file_order(long_csv):
    assert all_tickers(str(long_csv)) == ["AAA", "BBB", "CCC", "SHORT"]


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
