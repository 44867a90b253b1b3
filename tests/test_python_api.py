"""The notebook way in: pandas in, pandas out, results that show themselves, no side effects."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import small_config, synthetic_prices
from matplotlib.figure import Figure
from sklearn.base import clone

import marketcast as mc
from marketcast.calendar import next_trading_days
from marketcast.errors import ConfigError, DataError, NotFittedError

TINY = {"lookback": 10, "layers": 1, "units": 8, "epochs": 2, "seed": 0}


@pytest.fixture
def pandas_csv(tmp_path, monkeypatch):
    """Prices saved by pandas' own ``to_csv()``: the dates in an unnamed first column."""
    monkeypatch.chdir(tmp_path)
    frame = synthetic_prices(n=260)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("Date")).to_numpy())
    frame[["Close"]].to_csv("prices.csv")
    return tmp_path / "prices.csv"


def test_the_readme_snippet_runs_in_memory_and_writes_nothing(pandas_csv, tmp_path):
    assert pandas_csv.read_text().startswith(",Close\n")
    y = mc.load_prices("prices.csv")["close"]
    assert len(y) == 260 and y.index[0] == pd.Timestamp("2015-01-02")

    model = mc.LSTMForecaster(**TINY)
    assert model.get_params()["epochs"] == 2 and model.units == 8
    copy = clone(model.set_params(units=4))
    assert copy is not model and copy.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(3)

    model.fit(y)
    future = model.predict(30)
    assert isinstance(future, pd.DataFrame) and future.shape == (30, 1)
    pd.testing.assert_index_equal(future.index, next_trading_days(y.index[-1], 30))
    assert np.isfinite(future["y_hat"]).all() and (future["y_hat"] > 0).all()
    assert model.n_features_in_ == 1 and list(model.feature_names_in_) == ["close"]
    assert not hasattr(clone(model), "net_")  # a clone is unfitted

    result = mc.run(y, epochs=2, lookback=10, layers=1, units=8, days=5)
    assert result.path is None
    assert list(result.forecast["date"]) == list(next_trading_days(y.index[-1], 5))
    page = result._repr_html_()
    assert page.count('<img src="data:image/png;base64,') == 1
    assert result.evaluation.verdict[0] in page.replace("&#x27;", "'")
    assert "<th>theils_u</th>" in page
    text = result.summary()
    assert result.evaluation.verdict[0] in text and "linear" in text
    for name in result.plots:
        assert isinstance(result.plot(name), Figure)
    assert len(result.plot("forecast").axes) == 1

    bt = mc.backtest(y, models=["lstm", "naive", "linear"], n_windows=20, epochs=1,
                     lookback=10, layers=1, units=8, workers=1)
    assert bt.path is None and bt.table["cutoff"].nunique() == 20
    assert set(bt.table["model"]) == {"lstm", "naive", "linear"}
    assert "Backtest: 20 forecast cutoffs" in bt._repr_html_()
    assert isinstance(bt.plot("residuals"), Figure)
    assert sorted(os.listdir(tmp_path)) == ["prices.csv"]  # no runs/ folder, no PNG


def test_write_true_or_a_path_saves_the_run(pandas_csv, tmp_path):
    y = mc.load_prices("prices.csv")["close"]
    result = mc.run(y, write=tmp_path / "kept", epochs=1, lookback=10, layers=1, units=8,
                    name="mine")
    assert result.path == tmp_path / "kept" / "mine"
    assert (result.path / "report.html").is_file() and (result.path / "forecast.csv").is_file()
    assert "saved in" in result.summary()


def test_fit_on_pandas_is_the_fit_on_arrays(pandas_csv):
    y = mc.load_prices("prices.csv")["close"]
    model = mc.LSTMForecaster(**TINY, val_fraction=0.2).fit(y)
    n_val = int(round(0.2 * len(y)))
    arrays = mc.LSTMForecaster(**TINY).fit(y.to_numpy(), n_val=n_val)
    np.testing.assert_array_equal(model.predict(7)["y_hat"].to_numpy(), arrays.predict(7))
    assert isinstance(arrays.predict(7), np.ndarray)


def test_a_frame_with_features_fits_target_and_features():
    frame = synthetic_prices(n=200).set_index("Date")
    frame.index = pd.to_datetime(frame.index)
    model = mc.LSTMForecaster(**TINY).fit(frame[["Close", "Volume"]])
    assert list(model.feature_names_in_) == ["close", "volume"] and model.n_features_in_ == 2
    assert model.predict(1).shape == (1, 1)  # beyond the horizon the features are unknown
    with pytest.raises(ConfigError, match="needs future feature values"):
        model.predict(5)


def test_the_data_contract_is_checked_on_a_series_as_on_a_file():
    frame = synthetic_prices(n=120)
    y = pd.Series(frame["Close"].to_numpy(), index=pd.to_datetime(frame["Date"]))
    y.iloc[50] = np.nan
    with pytest.raises(DataError, match=r"close has 1 NaN or non-positive values \(first on"):
        mc.LSTMForecaster(**TINY).fit(y)
    with pytest.raises(DataError, match="not dates"):
        mc.LSTMForecaster(**TINY).fit(pd.Series(np.arange(1.0, 100.0)))
    doubled = pd.concat([y.iloc[:60], y.iloc[59:60]])
    with pytest.raises(DataError, match="appear more than once"):
        mc.LSTMForecaster(**TINY).fit(doubled)


def test_unknown_settings_and_bad_values_are_config_errors(pandas_csv):
    y = mc.load_prices("prices.csv")["close"]
    with pytest.raises(ConfigError, match="unknown setting 'epoch'"):
        mc.run(y, epoch=2)
    with pytest.raises(ConfigError, match="model.units must be at least 1"):
        mc.LSTMForecaster(units=0).fit(y)


def test_a_config_still_writes_as_the_command_line_does(prices_csv, tmp_path):
    result = mc.run(small_config(prices_csv, tmp_path / "runs"), epochs=1)
    assert result.path.parent == tmp_path / "runs" and (result.path / "model.json").is_file()
    assert result.trained.config.train.max_epochs == 1


def test_importing_the_plots_leaves_the_backend_and_pyplot_alone():
    code = ("import sys, matplotlib; matplotlib.use('svg'); import marketcast.report.plots, "
            "marketcast.api; import marketcast as mc; mc.run; "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "MPLBACKEND": ""})
    assert done.stdout.split() == ["svg", "False"]


def test_a_tuning_trial_restores_torch_threads(prices_csv, tmp_path):
    import torch

    from marketcast.scale.tune import fit_trial, validation_data

    config = small_config(prices_csv, tmp_path / "runs")
    seen, split = validation_data(config)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        losses = []
        epochs = fit_trial(seen, split, config, lambda row: losses.append(row["val_loss"]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert epochs["val_loss"].tolist() == losses


def test_fit_leaves_the_callers_torch_random_state_alone(pandas_csv):
    import torch

    y = mc.load_prices("prices.csv")["close"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = mc.LSTMForecaster(**TINY).fit(y).predict(3)
    assert torch.equal(torch.rand(3), expected)
    again = mc.LSTMForecaster(**TINY).fit(y).predict(3)  # and the fit's own seed still rules
    pd.testing.assert_frame_equal(first, again)
