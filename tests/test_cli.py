import io
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import assert_same_run, synthetic_prices

from marketcast.cli import main

FAST = ["--lookback", "10", "--layers", "1", "--units", "8", "--epochs", "3", "--days", "5"]


def cli(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, fragment):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err


def test_run_train_forecast_evaluate(capsys, prices_csv, tmp_path):
    runs = str(tmp_path / "runs")
    code, out, _ = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir", runs,
                       "--name", "a", *FAST)
    assert code == 0
    assert "verdict: LSTM RMSE" in out and "the random walk (DM p = " in out
    assert "strategy: a long/flat strategy on the LSTM's forecasts " in out
    assert "lstm long/flat" in out and "buy-and-hold" in out  # the table of strategies
    sentence = next(line for line in out.splitlines() if line.startswith("strategy: "))
    assert "run folder: " in out
    assert out.rstrip().endswith(f"report: {tmp_path / 'runs' / 'a' / 'report.html'}")
    saved = (tmp_path / "runs" / "a" / "forecast.csv").read_text()
    code, out, _ = cli(capsys, "forecast", "--run", str(tmp_path / "runs" / "a"))
    assert code == 0 and out == saved
    code, again, _ = cli(capsys, "evaluate", "--run", str(tmp_path / "runs" / "a"))
    assert code == 0 and "verdict: LSTM RMSE" in again
    assert sentence in again  # re-scored: the same strategies, the same bootstrap
    code, out, _ = cli(capsys, "train", "--data", str(prices_csv), "--runs-dir", runs,
                       "--name", "b", *FAST)
    assert code == 0 and "best epoch" in out
    output = tmp_path / "f.csv"
    code, _, _ = cli(capsys, "forecast", "--run", str(tmp_path / "runs" / "b"), "--days", "3",
                     "--output", str(output))
    assert code == 0 and len(pd.read_csv(output)) == 3


def test_backtest_command(capsys, prices_csv, tmp_path):
    code, out, _ = cli(capsys, "backtest", "--data", str(prices_csv), "--runs-dir",
                       str(tmp_path / "runs"), "--name", "bt", "--models", "naive,drift,linear",
                       "--n-windows", "30", "--refit-every", "10", "--lookback", "10")
    assert code == 0
    assert "walk-forward backtest" in out
    # The default (auto) says which interval method won on the validation cutoffs and why.
    chosen = out.split("intervals: interval method ")[1].split(":")[0]
    assert chosen in ("conformal", "scaled", "aci") and f"{chosen} intervals" in out
    assert "lowest mean interval score on the validation cutoffs" in out
    assert "verdict: drift: RMSE" in out
    assert "verdict: model confidence set (90%): " in out
    assert "verdict: SPA vs the random walk: " in out and "(SPA p " in out
    assert "strategy: a long/flat strategy on the drift model's forecasts" in out
    assert (tmp_path / "runs" / "bt" / "backtest.csv").is_file()
    assert (tmp_path / "runs" / "bt" / "strategy.csv").is_file()
    assert f"report: {tmp_path / 'runs' / 'bt' / 'report.html'}" in out


def test_strategy_options(capsys, prices_csv, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = cli(capsys, "backtest", "--data", str(prices_csv), "--runs-dir", str(runs),
                         "--name", "s", "--models", "naive,linear", "--n-windows", "40",
                         "--refit-every", "0", "--lookback", "10", "--rule", "long_short",
                         "--threshold", "0.001", "--cost-bps", "10")
    assert code == 0, err
    assert "strategy: a long/short strategy on the linear model's forecasts" in out
    assert "after costs of 10 bps per unit traded" in out
    block = json.loads((runs / "s" / "metrics.json").read_text())["strategy"]
    assert (block["rules"], block["threshold"], block["cost_bps"]) == (["long_short"], 0.001, 10)
    assert list(block["models"]) == ["linear"] and list(block["models"]["linear"]) == \
        ["long_short"]
    days = pd.read_csv(runs / "s" / "strategy.csv")
    linear = days[days["model"] == "linear"]
    assert len(linear) == 40 and set(linear["position"]) <= {-1, 0, 1}
    turnover = linear["position"].diff().fillna(linear["position"]).abs()
    assert linear["cost"].to_numpy() == pytest.approx(0.001 * turnover.to_numpy(), abs=1e-12)
    # Cutoffs days apart: no strategy, and a note saying why.
    code, out, err = cli(capsys, "backtest", "--data", str(prices_csv), "--runs-dir",
                         str(runs), "--name", "far", "--models", "naive,linear",
                         "--n-windows", "10", "--stride", "3", "--lookback", "10")
    assert code == 0 and "note: no trading strategy in this backtest" in err
    assert "strategy: " not in out and not (runs / "far" / "strategy.csv").exists()


def test_forecast_interval_option(capsys, prices_csv, tmp_path):
    runs = tmp_path / "runs"
    code, _, _ = cli(capsys, "run", "--data", str(prices_csv), "--runs-dir", str(runs),
                     "--name", "i", "--test-fraction", "0.3", *FAST)
    assert code == 0
    code, out, _ = cli(capsys, "forecast", "--run", str(runs / "i"), "--interval", "0.5")
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["date", "lstm", "lstm_lower", "lstm_upper", "naive"]
    assert (frame["lstm_lower"] < frame["lstm"]).all()
    assert (frame["lstm"] < frame["lstm_upper"]).all()
    wide = pd.read_csv(runs / "i" / "forecast.csv")  # the run's 90% interval is wider
    width = frame["lstm_upper"] - frame["lstm_lower"]
    assert ((wide["lstm_upper"] - wide["lstm_lower"]) > width).all()


def test_target_other_than_close_is_the_only_input(capsys, tmp_path):
    # A file with no close column: --target alone must do, the model reads only that
    # column, and the 30-day forecast recurses on it.
    path = tmp_path / "adj.csv"
    frame = synthetic_prices()[["Date", "Adj Close"]]
    frame.to_csv(path, index=False)
    runs = tmp_path / "runs"
    code, out, err = cli(capsys, "run", "--data", str(path), "--target", "adj_close",
                         "--runs-dir", str(runs), "--name", "adj", *FAST)
    assert code == 0, err
    meta = json.loads((runs / "adj" / "model.json").read_text())
    assert meta["features"] == ["adj_close"]
    forecast = pd.read_csv(runs / "adj" / "forecast.csv")
    assert len(forecast) == 5  # --days 5, not cut to the horizon
    last = frame["Adj Close"].iloc[-1]
    assert forecast["lstm"].between(0.5 * last, 1.5 * last).all()


def test_config_file_and_flag_precedence(capsys, prices_csv, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[data]\nsource = "{prices_csv}"\n[model]\nlookback = 12\nunits = 4\n'
                      '[train]\nmax_epochs = 2\n')
    runs = tmp_path / "runs"
    code, _, _ = cli(capsys, "train", "--config", str(config), "--units", "6", "--layers", "1",
                     "--runs-dir", str(runs), "--name", "c")
    assert code == 0
    saved = (runs / "c" / "config.toml").read_text()
    assert "lookback = 12" in saved and "units = 6" in saved and "max_epochs = 2" in saved


def test_data_summary(capsys, prices_csv):
    code, out, _ = cli(capsys, "data", "--data", str(prices_csv))
    assert code == 0
    assert "320" in out and "2015-01-02" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--data", "missing.csv"], "data file missing.csv not found"),
        (["run", "--target", "price", "--epochs", "1"], "column 'price' not found"),
        (["run", "--dropout", "2"], "model.dropout must be in [0, 1)"),
        (["run", "--lookback", "abc"], "'abc' is not a valid integer"),
        (["run", "--bogus"], "No such option '--bogus'; see `marketcast run --help`"),
        (["run", "--start", "2018-11-01"], "days are too few"),
        (["forecast", "--run", "no/such/run"], "run folder no/such/run not found"),
        (["forecast", "--run", "."], "no manifest.json"),
        (["backtest", "--models", "lstm,gru"], "unknown model 'gru'"),
        (["report", "no/such/run"], "run folder no/such/run not found"),
        (["report", "."], "no manifest.json"),
        (["run", "--interval", "1.5"], "forecast.interval must be in [0, 1)"),
        (["data", "--data", "sp500", "--start", "someday"], "--start 'someday' is not a date"),
        (["run", "--cost-bps", "-1"], "strategy.cost_bps must be 0 or more basis points"),
        (["backtest", "--cost-bps", "nan"], "strategy.cost_bps must be 0 or more"),
        (["backtest", "--threshold", "abc"], "'abc' is not a valid float"),
        (["run", "--threshold", "-0.1"], "strategy.threshold must be a forecast return"),
        (["run", "--rule", "short"], "'short' is not one of 'long_flat', 'long_short'"),
    ],
)
def test_user_mistakes_give_one_line(capsys, args, fragment):
    code, _, err = cli(capsys, *args)
    assert_one_line_error(code, err, fragment)


def test_bad_config_key(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 5\n")
    code, _, err = cli(capsys, "run", "--config", str(bad))
    assert_one_line_error(code, err, "unknown setting 'epochs'")


def test_run_folder_without_model(capsys, tmp_path):
    (tmp_path / "manifest.json").write_text('{"files": {}}')
    code, _, err = cli(capsys, "forecast", "--run", str(tmp_path))
    assert_one_line_error(code, err, "holds no model")


def test_module_entry_point_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Close\n2020-01-02,1\n2020-01-02,2\n")
    proc = subprocess.run([sys.executable, "-m", "marketcast", "run", "--data", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: 1 dates appear more than once (first: 2020-01-02); remove the duplicate rows, "
        "or pass --ticker for a multi-ticker file"
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_newest_first_note_on_stderr(capsys, tmp_path):
    path = tmp_path / "flipped.csv"
    synthetic_prices(40).iloc[::-1].to_csv(path, index=False)
    code, _, err = cli(capsys, "data", "--data", str(path))
    assert code == 0 and "note: dates run newest-first" in err


def planted_long_file(tmp_path):
    """Two tickers; BBB has a zero-volume day on its 8th row."""
    a, b = synthetic_prices(40, seed=1), synthetic_prices(40, seed=2)
    b.loc[7, "Volume"] = 0
    path = tmp_path / "long.csv"
    pd.concat([a.assign(Name="AAA"), b.assign(Name="BBB")]).to_csv(path, index=False)
    return path, b["Date"][7]


def test_data_check_reports_dates_and_strict_fails(capsys, tmp_path):
    path, date = planted_long_file(tmp_path)
    code, out, _ = cli(capsys, "data", "check", "--data", str(path))
    assert code == 0
    assert "BBB" in out and "zero_volume" in out and date in out
    assert "checked 2 tickers: 1 finding in 1 of them" in out
    code, out, err = cli(capsys, "data", "check", "--data", str(path), "--strict")
    assert date in out
    assert_one_line_error(code, err, f"1 problem in 1 ticker (first: BBB zero_volume on {date})")
    code, out, _ = cli(capsys, "data", "check", "--data", str(path), "--ticker", "AAA",
                       "--strict")
    assert code == 0 and "checked 1 ticker: 0 findings" in out


def test_data_list_and_group_options(capsys, tmp_path, monkeypatch):
    path, _ = planted_long_file(tmp_path)
    code, out, _ = cli(capsys, "data", "list", "--data", str(path))
    assert code == 0 and "AAA" in out and "BBB" in out and "2015-03-02" in out
    monkeypatch.setenv("MARKETCAST_STORE", str(tmp_path / "empty"))
    code, out, _ = cli(capsys, "data", "list")
    assert code == 0 and "no tickers" in out
    code, _, err = cli(capsys, "data", "--data", str(path), "check")
    assert_one_line_error(code, err, "put --data after the subcommand")
    code, out, _ = cli(capsys, "data", "--data", str(path), "--ticker", "BBB")
    assert code == 0 and "zero_volume 1" in out


def test_data_download_without_yfinance(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yfinance", None)
    code, _, err = cli(capsys, "data", "download", "AAPL", "--store", str(tmp_path))
    assert_one_line_error(code, err, 'pip install "marketcast[download]"')
    code, _, err = cli(capsys, "data", "download")
    assert_one_line_error(code, err, "Missing argument 'TICKERS...'")


def test_same_seed_gives_identical_results_in_two_processes(prices_csv, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "marketcast", "run", "--data", str(prices_csv),
                        "--features", "close,volume", "--horizon", "5", "--runs-dir", str(runs),
                        "--name", name, *FAST], check=True, capture_output=True, env=env)
    assert_same_run(runs / "a", runs / "b")
