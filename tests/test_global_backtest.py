"""`backtest --tickers`: the global LSTM refitted on every ticker at each refit, each ticker
scored (with intervals) as one series is."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from test_backtest import with_backtest
from test_cli import cli
from test_global_model import global_config
from test_report import Parsed

from marketcast import api
from marketcast.evaluation.multiple import adjust_p_values
from marketcast.report import REPORT
from marketcast.report.panel import GLOBAL_SECTIONS
from marketcast.runs.folder import kind_of, verify_folder
from marketcast.runs.layout import Kind


def panel_backtest_config(long_csv, tmp_path, **backtest):
    config = global_config(long_csv, tmp_path)
    settings = {"n_windows": 40, "refit_every": 20, "models": ("lstm", "naive", "linear"),
                **backtest}
    return with_backtest(config, **settings)


def test_global_backtest_scores_every_ticker(long_csv, tmp_path):
    config = panel_backtest_config(long_csv, tmp_path)
    result = api.backtest(config)
    table = result.table
    assert list(table.columns[:2]) == ["ticker", "model"]
    assert sorted(table["ticker"].unique()) == ["AAA", "BBB", "CCC"]
    assert "SHORT" in result.skipped
    assert result.fits == {"lstm": 2, "naive": 2, "linear": 2}
    # 40 cutoffs per ticker and model; intervals once 20 residuals are known (the last 20
    # cutoffs), each ticker's from its own residuals.
    assert (table.groupby(["ticker", "model"]).size() == 40).all()
    with_interval = table.dropna(subset=["lower"])
    assert (with_interval.groupby(["ticker", "model"]).size() == 20).all()
    assert (with_interval["lower"] < with_interval["y_hat"]).all()
    # The baselines are fitted per ticker: exactly one series' backtest of that ticker.
    alone = api.backtest(dataclasses.replace(
        config, data=dataclasses.replace(config.data, ticker="BBB", tickers=())), write=False)
    ours = table[(table["ticker"] == "BBB") & (table["model"] != "lstm")]
    theirs = alone.table[alone.table["model"] != "lstm"]
    columns = ["model", "cutoff", "date", "step", "y", "y_hat", "lower", "upper"]
    pd.testing.assert_frame_equal(ours[columns].reset_index(drop=True),
                                  theirs[columns].reset_index(drop=True))
    # The LSTM is one model for all tickers, so its forecasts differ from BBB's own model.
    assert not np.allclose(table[(table["ticker"] == "BBB") & (table["model"] == "lstm")]
                           ["y_hat"], alone.table[alone.table["model"] == "lstm"]["y_hat"])
    assert list(result.per_ticker["ticker"]) == ["AAA", "BBB", "CCC"]
    # Each ticker's DM p-value adjusted across the tickers (Benjamini-Hochberg).
    np.testing.assert_array_equal(result.per_ticker["dm_p_adjusted"],
                                  adjust_p_values(result.per_ticker["dm_p_value"]))
    assert result.distribution["chance_pct"] == 2.5
    assert "lstm_better_adjusted_pct" in result.distribution
    assert "after Benjamini-Hochberg adjustment across tickers: " in result.verdict[0]
    assert result.mcs is None and result.spa is None  # one series' tests only
    saved = pd.read_csv(result.path / "per_ticker.csv")
    np.testing.assert_allclose(saved["dm_p_adjusted"], result.per_ticker["dm_p_adjusted"])
    # Each ticker trades on its own: BBB's linear strategies are those of BBB alone.
    scores = result.strategy.scores
    ours = scores[(scores["ticker"] == "BBB") & (scores["model"] == "linear")]
    theirs = alone.strategy.scores[alone.strategy.scores["model"] == "linear"]
    pd.testing.assert_frame_equal(ours.drop(columns="ticker").reset_index(drop=True),
                                  theirs.reset_index(drop=True))
    assert result.per_ticker.set_index("ticker").loc["BBB", "sharpe_linear_long_flat"] == \
        theirs.set_index("rule").loc["long_flat", "sharpe"]
    assert result.strategy.summary["tickers"] == 3
    assert list(pd.read_csv(result.path / "strategy.csv", nrows=0).columns[:3]) == \
        ["ticker", "model", "rule"]
    # BBB's baselines' intervals are judged exactly as BBB's own backtest judges them.
    rows = result.interval_rows
    mine = rows[(rows["ticker"] == "BBB") & (rows["model"] == "naive")].iloc[0]
    own = alone.coverage[(alone.coverage["model"] == "naive")].iloc[0]
    for column in ("n", "coverage", "interval_score", "kupiec_p", "christoffersen_cc_p"):
        assert mine[column] == pytest.approx(own[column], nan_ok=True)
    assert mine["method"] == alone.interval_method
    counted = result.interval_summary["models"]["lstm"]
    assert counted["tickers"] == 3 and "Benjamini-Hochberg" in result.interval_summary["note"]
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["intervals"]["models"]["naive"]["kupiec_rejected"] == int(
        (rows.query("model == 'naive'")["kupiec_p"] < 0.05).sum())
    assert set(metrics["interval_method"]["tickers"]) == {"AAA", "BBB", "CCC"}
    assert len(pd.read_csv(result.path / "intervals.csv")) == 9
    # The folder: its kind recorded, every single-series section plus the tickers.
    assert kind_of(result.path) == Kind.BACKTEST
    html = (result.path / REPORT).read_text(encoding="utf-8")
    assert Parsed(html).sections == list(GLOBAL_SECTIONS)
    assert "intervals over tickers" in html


def test_global_backtest_never_sees_the_future(long_csv, tmp_path):
    # Every price after the first cutoff of the second fold changes (all tickers): the
    # forecasts of the first fold's cutoffs must not.
    config = panel_backtest_config(long_csv, tmp_path)
    before = api.backtest(config, write=False).table
    frame = pd.read_csv(long_csv)
    second = sorted(before["cutoff"].unique())[20]
    later = pd.to_datetime(frame["date"]) > second
    frame.loc[later, ["open", "high", "low", "close"]] *= 1.5
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    after = api.backtest(dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(changed))), write=False).table
    first = before["cutoff"] < second
    cols = ["ticker", "model", "cutoff", "step", "y_hat"]
    pd.testing.assert_frame_equal(before.loc[first, cols].reset_index(drop=True),
                                  after.loc[after["cutoff"] < second, cols].reset_index(drop=True))
    assert not np.allclose(before.loc[~first, "y_hat"], after.loc[after["cutoff"] >= second,
                                                                 "y_hat"])


def test_global_backtest_from_the_command_line(long_csv, tmp_path, capsys):
    code, out, _ = cli(capsys, "backtest", "--data", str(long_csv), "--tickers", "AAA,BBB",
                       "--n-windows", "10", "--refit-every", "10", "--models",
                       "lstm,naive,linear", "--epochs", "2", "--lookback", "10", "--units", "8",
                       "--runs-dir", str(tmp_path / "runs"), "--name", "bt", "--workers", "1")
    assert code == 0, out
    assert "global LSTM over 2 tickers" in out
    (line,) = [line for line in out.splitlines() if line.startswith("strategy: ")]
    # Over both tickers (medians), or that the tiny LSTM never took a position on either.
    assert "a long/flat strategy on the LSTM's forecasts" in line and "2 tickers" in line
    folder = tmp_path / "runs" / "bt"
    assert verify_folder(folder) and kind_of(folder) == Kind.BACKTEST
    code, _, err = cli(capsys, "backtest", "--data", str(long_csv), "--tickers", "AAA",
                       "--models", "naive,linear", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "keep lstm, naive and linear" in err
