import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import small_config
from test_cli import assert_one_line_error, cli

from marketcast.api import run_global
from marketcast.global_model import summarize_tickers


def global_config(source, tmp_path, tickers=("all",)):
    config = small_config(source, tmp_path / "runs", layers=1)
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, tickers=tickers),
        output=dataclasses.replace(config.output, name="g"),
    )


def test_run_global_scores_every_ticker(long_csv, tmp_path):
    result = run_global(global_config(long_csv, tmp_path))
    table = result.per_ticker
    assert table["ticker"].tolist() == ["AAA", "BBB", "CCC"]
    assert list(result.skipped) == ["SHORT"]
    assert (table["n_test"] == 30).all()
    # The random walk's RMSE is that of the one-day changes over the 30 test days.
    y = pd.read_csv(long_csv).query("Name == 'AAA'")["close"].to_numpy()
    assert table.loc[0, "rmse_naive"] == pytest.approx(np.sqrt(np.mean(np.diff(y)[169:] ** 2)))
    np.testing.assert_allclose(table["theils_u_lstm"], table["rmse_lstm"] / table["rmse_naive"])
    u = table["theils_u_lstm"]
    assert result.summary["theils_u_lstm"]["median"] == pytest.approx(u.median())
    assert set(table["lstm_vs_naive"]) <= {"better", "worse", "not significant"}
    saved = json.loads((result.path / "metrics.json").read_text())
    assert saved["tickers"] == 3 and saved["skipped"] == 1
    assert saved["windows_train"] == 3 * (140 - 1 - 10)
    assert len(pd.read_csv(result.path / "per_ticker.csv")) == 3
    assert pd.read_csv(result.path / "skipped.csv")["ticker"].tolist() == ["SHORT"]
    assert "tickers = [" in (result.path / "config.toml").read_text()


def test_summary_quartiles_and_shares():
    table = pd.DataFrame({
        "theils_u_lstm": [0.9, 1.0, 1.1, 1.2, np.nan],
        "theils_u_linear": [1.0] * 5,
        "lstm_vs_naive": ["better", "worse", "worse", "not significant", "not significant"],
    })
    summary = summarize_tickers(table)
    assert summary["theils_u_lstm"] == {"q1": pytest.approx(0.975), "median": pytest.approx(1.05),
                                        "q3": pytest.approx(1.125)}
    assert summary["lstm_better_pct"] == 20.0 and summary["lstm_worse_pct"] == 40.0


def test_run_tickers_command(capsys, long_csv, tmp_path):
    code, out, _ = cli(capsys, "run", "--data", str(long_csv), "--tickers", "AAA,CCC",
                       "--runs-dir", str(tmp_path / "runs"), "--name", "g", "--lookback", "10",
                       "--layers", "1", "--units", "4", "--epochs", "2")
    assert code == 0, out
    assert "global LSTM over 2 tickers: median Theil's U" in out
    assert (tmp_path / "runs" / "g" / "per_ticker.csv").is_file()


def test_ticker_and_tickers_together_is_an_error(capsys, long_csv, tmp_path):
    code, _, err = cli(capsys, "run", "--data", str(long_csv), "--tickers", "all",
                       "--ticker", "AAA", "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "not both")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
