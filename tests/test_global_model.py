import base64
import dataclasses
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import small_config
from test_cli import assert_one_line_error, cli
from test_report import PNG, Parsed

from marketcast import api
from marketcast.api import run_global
from marketcast.evaluation.multiple import adjust_p_values
from marketcast.pipeline.global_model import summarize_tickers
from marketcast.report import REPORT, render_report, report
from marketcast.report.panel import GLOBAL_SECTIONS
from marketcast.runs.folder import check_run


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
    np.testing.assert_array_equal(table["dm_p_adjusted"], adjust_p_values(table["dm_p_value"]))
    u = table["theils_u_lstm"]
    assert result.distribution["theils_u_lstm"]["median"] == pytest.approx(u.median())
    assert set(table["lstm_vs_naive"]) <= {"better", "worse", "not significant"}
    saved = json.loads((result.path / "metrics.json").read_text())
    assert saved["tickers"] == 3 and saved["skipped"] == 1
    assert saved["windows_train"] == 3 * (140 - 1 - 10)
    assert len(pd.read_csv(result.path / "per_ticker.csv")) == 3
    assert pd.read_csv(result.path / "skipped.csv")["ticker"].tolist() == ["SHORT"]
    assert "tickers = [" in (result.path / "config.toml").read_text()
    # Each ticker's intervals judged on its own, and the tests' rejections counted.
    intervals = pd.read_csv(result.path / "intervals.csv")
    assert sorted(set(intervals["ticker"])) == ["AAA", "BBB", "CCC"]
    assert set(intervals["model"]) == {"lstm", "naive", "linear"}
    lstm = saved["intervals"]["models"]["lstm"]
    assert lstm["tickers"] == 3 and 0 <= lstm["kupiec_rejected_adjusted"] <= 3
    assert lstm["kupiec_rejected"] == int((intervals.query("model == 'lstm'")["kupiec_p"]
                                           < 0.05).sum())


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
    assert "; with no skill, chance alone would put 2.5% of tickers in each direction" in out
    assert "after Benjamini-Hochberg adjustment across tickers: " in out
    saved = json.loads((tmp_path / "runs" / "g" / "metrics.json").read_text())
    assert saved["chance_pct"] == 2.5
    assert {"lstm_better_adjusted_pct", "lstm_worse_adjusted_pct"} <= set(saved)
    assert "strategy: a long/flat strategy on the LSTM's forecasts" in out or \
        "strategy: over 2 tickers, a long/flat strategy on the LSTM's forecasts" in out
    assert (tmp_path / "runs" / "g" / "per_ticker.csv").is_file()
    strategy = pd.read_csv(tmp_path / "runs" / "g" / "strategy.csv")
    assert sorted(strategy["ticker"].unique()) == ["AAA", "CCC"]
    assert set(strategy["model"]) == {"buy_and_hold", "lstm", "linear"}
    assert out.rstrip().endswith(f"report: {tmp_path / 'runs' / 'g' / 'report.html'}")


def test_ticker_and_tickers_together_is_an_error(capsys, long_csv, tmp_path):
    code, _, err = cli(capsys, "run", "--data", str(long_csv), "--tickers", "all",
                       "--ticker", "AAA", "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "not both")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_global_run_saves_a_model_that_forecasts_each_ticker(capsys, long_csv, tmp_path):
    result = run_global(global_config(long_csv, tmp_path))
    folder = result.path
    check_run(folder)  # the model files are signed with the rest
    saved = pd.read_csv(folder / "forecast.csv", parse_dates=["date"])
    assert saved["ticker"].unique().tolist() == ["AAA", "BBB", "CCC"]
    last = pd.read_csv(long_csv, parse_dates=["date"]).query("Name == 'BBB'")
    bbb = saved[saved["ticker"] == "BBB"].drop(columns="ticker").reset_index(drop=True)
    assert len(bbb) == 30 and bbb["date"].min() > last["date"].max()

    def text(frame):
        return frame.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")

    # Reloaded from safetensors + JSON, the ticker's forecast is the run's, digit for digit,
    # from the saved last days or from the data file itself.
    assert text(api.forecast(folder, ticker="bbb")) == text(bbb)
    assert text(api.forecast(folder, data=str(long_csv), ticker="BBB")) == text(bbb)
    # Different tickers, different scalers and histories: different forecasts.
    aaa = api.forecast(folder, ticker="AAA")
    assert not np.allclose(aaa["lstm"], bbb["lstm"])

    code, out, _ = cli(capsys, "forecast", "--run", str(folder), "--ticker", "CCC", "--days", "3")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 3
    code, _, err = cli(capsys, "forecast", "--run", str(folder))
    assert_one_line_error(code, err, "needs --ticker: one of AAA, BBB, CCC")
    code, _, err = cli(capsys, "forecast", "--run", str(folder), "--ticker", "ZZZ")
    assert_one_line_error(code, err, "has no ticker 'ZZZ'")
    # Every ticker's forecast has its own interval, calibrated on its own test residuals
    # (the first days: 30 test days leave too few residuals for the later steps).
    first = slice(0, 5)
    assert (bbb["lstm_lower"][first] < bbb["lstm"][first]).all()
    assert not np.allclose((aaa["lstm_upper"] / aaa["lstm"])[first],
                           (bbb["lstm_upper"] / bbb["lstm"])[first])
    # Each ticker's fan is drawn by the method its own test intervals chose, and saved.
    meta = json.loads((folder / "model.json").read_text())
    methods = pd.read_csv(folder / "intervals.csv").query("model == 'lstm'")
    for ticker, method in zip(methods["ticker"], methods["method"], strict=True):
        fan = meta["tickers"][ticker]["fan"]
        assert fan["method"] == method and (fan["volatility"] is None) == (method == "conformal")
    # Re-scored from the folder: every ticker's scores are the run's.
    again = api.evaluate_run(folder)
    numbers = [c for c in pd.read_csv(folder / "per_ticker.csv", nrows=0).columns
               if c not in ("ticker", "lstm_vs_naive")]
    scored = pd.read_csv(folder / "per_ticker.csv", keep_default_na=False,
                         na_values={c: [""] for c in numbers})
    assert {"sharpe_buy_and_hold", "sharpe_lstm_long_flat",
            "sharpe_diff_p_linear_long_short"} <= set(scored.columns)
    pd.testing.assert_frame_equal(again.per_ticker.reset_index(drop=True), scored,
                                  check_dtype=False, rtol=1e-9)
    code, out, _ = cli(capsys, "evaluate", "--run", str(folder))
    assert code == 0 and "BBB" in out and again.verdict.split(":")[0] in out
    # A file of one ticker's prices (no ticker column) forecasts that ticker too.
    alone = tmp_path / "ccc.csv"
    rows = pd.read_csv(long_csv).query("Name == 'CCC'").drop(columns="Name")
    rows.to_csv(alone, index=False)
    ccc = saved[saved["ticker"] == "CCC"].drop(columns="ticker").reset_index(drop=True)
    assert text(api.forecast(folder, data=str(alone), ticker=" ccc")) == text(ccc)


def test_ticker_on_a_single_series_folder_is_an_error(capsys, config):
    folder = api.run(dataclasses.replace(
        config, output=dataclasses.replace(config.output, name="one"))).path
    code, _, err = cli(capsys, "forecast", "--run", str(folder), "--ticker", "AAA")
    assert_one_line_error(code, err, "--ticker is for the folders of `marketcast run --tickers`")


def test_global_report(long_csv, tmp_path):
    result = run_global(global_config(long_csv, tmp_path))
    html = (result.path / REPORT).read_text(encoding="utf-8")
    parsed = Parsed(html)
    assert parsed.sections == list(GLOBAL_SECTIONS)
    # Loss curve, Theil's U histogram, and the median ticker's test period, two strategy
    # rules' equity and drawdown, forecast fan and residuals: the sections of a
    # single-series report.
    assert len(parsed.images) == 7
    median = result.per_ticker.sort_values(["theils_u_lstm", "ticker"])["ticker"].iloc[1]
    assert f"Shown for {median}, the ticker with the median Theil&#39;s U of 3" in html
    assert all(base64.b64decode(src.split(",", 1)[1]).startswith(PNG) for src in parsed.images)
    u = result.distribution["theils_u_lstm"]
    assert f"median Theil&#39;s U {u['median']:.3f}" in html
    scores = html[html.index('id="tickers"'):html.index('id="forecast"')]
    for ticker in result.per_ticker["ticker"]:
        assert f"<td>{ticker}</td>" in scores
    assert "SHORT" in html  # the skipped ticker, with its reason
    # The report is signed with the rest, and `marketcast report` renders the same bytes.
    check_run(result.path)
    before = (result.path / REPORT).read_bytes()
    report(result.path)
    assert (result.path / REPORT).read_bytes() == before
    assert "600 rows over 3 tickers" in html
    assert "BH-adjusted p" in scores and "Benjamini-Hochberg adjusted across tickers: " in html
    # A global folder from before its kind was recorded (in the manifest, or in
    # metrics.json) is still reported as one.
    older = shutil.copytree(result.path, tmp_path / "older")
    for name in ("metrics.json", "manifest.json"):
        recorded = json.loads((older / name).read_text())
        del recorded["kind"]
        (older / name).write_text(json.dumps(recorded))
    assert Parsed(render_report(older)).sections == list(GLOBAL_SECTIONS)


def test_train_tickers_saves_a_global_model_that_evaluate_scores_later(long_csv, tmp_path,
                                                                        capsys):
    runs = tmp_path / "runs"
    code, out, err = cli(capsys, "train", "--data", str(long_csv), "--tickers", "AAA,BBB",
                         "--lookback", "10", "--layers", "1", "--units", "8", "--epochs", "2",
                         "--runs-dir", str(runs), "--name", "t")
    assert code == 0, err
    assert "global model of 2 tickers" in out
    folder = check_run(runs / "t")
    assert not (folder / "per_ticker.csv").exists()
    assert "was not scored" in (folder / REPORT).read_text(encoding="utf-8")
    scored = api.evaluate_run(folder)
    assert list(scored.per_ticker["ticker"]) == ["AAA", "BBB"]
    assert np.isfinite(scored.per_ticker["theils_u_lstm"]).all()
    assert "dm_p_adjusted" in scored.per_ticker and "Benjamini-Hochberg" in scored.verdict
    assert len(api.forecast(folder, ticker="AAA", days=3)) == 3
    both = api.forecast_tickers(folder, ["all"], days=3)
    assert both["ticker"].tolist() == ["AAA"] * 3 + ["BBB"] * 3
    code, out, _ = cli(capsys, "forecast", "--run", str(folder), "--tickers", "bbb", "--days",
                       "2")
    assert code == 0 and pd.read_csv(io.StringIO(out))["ticker"].tolist() == ["BBB", "BBB"]
