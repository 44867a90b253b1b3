"""The numpy forecast path (marketcast.nn.inference, marketcast.models.lstm_numpy) against
the torch network it was trained as, and the promise that a forecast never imports torch.

Tolerance: relative 1e-5 on prices (and on the network's scaled outputs, with an absolute
1e-6 for outputs near zero). Both paths compute with the same float32 weights; they differ
only in the order float32 sums are taken (BLAS kernels, one fused bias against two), about
1e-7 relative per operation. Through 60 days, 3 layers and 30 recursive steps the gaps
measured here stay below ~1e-6, so 1e-5 keeps an order of magnitude of headroom while a
wrong gate order, a missing bias or a wrong state carried between steps is off by far more
(a percent or more of the scaled output).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import long_prices, small_config

import marketcast
from marketcast import api
from marketcast.models import LSTMForecaster, NumpyLSTMForecaster
from marketcast.nn.inference import NumpyLSTM
from marketcast.nn.network import StackedLSTM

RTOL = 1e-5


def numpy_weights(net: StackedLSTM) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(("features", "layers", "horizon"), [(1, 3, 1), (3, 2, 4), (1, 1, 1)])
def test_network_output_equals_torch(features, layers, horizon):
    torch.manual_seed(features + layers)
    net = StackedLSTM(features, 16, layers, dropout=0.2, horizon=horizon).eval()
    x = torch.rand(7, 30, features)
    with torch.inference_mode():
        expected = net(x).numpy()
    got = NumpyLSTM(numpy_weights(net))(x.numpy())
    assert got.shape == (7, horizon) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-6)


def test_recursive_forecast_equals_torch():
    torch.manual_seed(1)
    net = StackedLSTM(1, 50, 3, dropout=0.2, horizon=1).eval()
    x = torch.rand(5, 60, 1)
    with torch.inference_mode():
        expected = net.forecast(x, 30).numpy()
    got = NumpyLSTM(numpy_weights(net)).forecast(x.numpy(), 30)
    assert got.shape == (5, 30)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-6)
    # The steps differ from each other: the state really advances.
    assert np.ptp(got, axis=1).min() > 1e-4


def test_swapped_gates_are_detected():
    """The comparison can fail: the forget and input gates swapped is far off."""
    torch.manual_seed(2)
    net = StackedLSTM(1, 8, 2, dropout=0.0, horizon=1).eval()
    weights = numpy_weights(net)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        w = weights[f"lstm.{name}"]
        weights[f"lstm.{name}"] = np.concatenate([w[8:16], w[:8], w[16:]])
    x = torch.rand(4, 20, 1)
    with torch.inference_mode():
        expected = net(x).numpy()
    assert not np.allclose(NumpyLSTM(weights)(x.numpy()), expected, rtol=RTOL, atol=1e-6)


def test_weights_that_are_not_an_lstm_are_refused():
    net = StackedLSTM(1, 8, 2, dropout=0.0, horizon=1)
    weights = numpy_weights(net)
    with pytest.raises(ValueError, match="stacked LSTM"):
        NumpyLSTM({k: v for k, v in weights.items() if k != "lstm.bias_hh_l1"})
    weights["lstm.weight_hh_l1"] = weights["lstm.weight_hh_l1"][:, :4]
    with pytest.raises(ValueError, match="shapes"):
        NumpyLSTM(weights)


def fitted(config, X=None, rows=300):
    y = 100 * np.exp(np.cumsum(0.01 * np.random.default_rng(0).standard_normal(rows)))
    torch.manual_seed(0)
    model = LSTMForecaster.from_config(config.model, config.train).fit(y, X, n_val=40)
    return model, y


@pytest.mark.parametrize("transform", ["log_return", "level"])
def test_model_forecasts_equal_torch_at_every_cutoff(config, transform):
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, target_transform=transform))
    model, y = fitted(config)
    numpy_model = model.to_numpy()
    assert isinstance(numpy_model, NumpyLSTMForecaster)
    cutoffs = np.arange(20, len(y) - 1)
    for stateful in (True, False):  # recursion advancing the state, or sliding windows
        NumpyLSTMForecaster.stateful = LSTMForecaster.stateful = stateful
        try:
            np.testing.assert_allclose(numpy_model.predict_cutoffs(y, None, cutoffs, 10),
                                       model.predict_cutoffs(y, None, cutoffs, 10), rtol=RTOL)
        finally:
            NumpyLSTMForecaster.stateful = LSTMForecaster.stateful = True
    np.testing.assert_allclose(numpy_model.predict(30), model.predict(30), rtol=RTOL)


def test_model_with_extra_features_and_direct_horizon_equals_torch(config):
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, horizon=3))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 2))
    model, y = fitted(config, X)
    cutoffs = np.arange(20, len(y) - 3)
    got = model.to_numpy().predict_cutoffs(y, X, cutoffs, 3)
    np.testing.assert_allclose(got, model.predict_cutoffs(y, X, cutoffs, 3), rtol=RTOL)


def forecast_both(run_dir, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (api.forecast(run_dir, engine="numpy", **kwargs),
            api.forecast(run_dir, engine="torch", **kwargs))


def assert_same_forecast(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_series_equal(a["date"], b["date"])
    for column in a.columns.drop("date"):
        np.testing.assert_allclose(a[column], b[column], rtol=RTOL, err_msg=column)
    assert not a["lstm"].equals(a["naive"])


def test_saved_run_forecasts_equal_torch(config):
    """A `run` folder (with its interval) and a `train` folder (without)."""
    result = api.run(config)
    a, b = forecast_both(result.path)
    assert "lstm_lower" in a.columns and len(a) == 30
    assert_same_forecast(a, b)
    # run wrote forecast.csv with the numpy engine: reproduced to the last digit.
    text = a.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.10g")
    assert text == (result.path / "forecast.csv").read_text()
    trained_config = dataclasses.replace(config, output=dataclasses.replace(
        config.output, name="trained"))
    _, path = api.train_run(trained_config)
    assert_same_forecast(*forecast_both(path, days=12))


def test_saved_run_with_extra_features_forecasts_equal_torch(config):
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, features=("close", "volume")),
        model=dataclasses.replace(config.model, horizon=2))
    result = api.run(config)
    a, b = forecast_both(result.path)
    assert len(a) == 2  # with extra features, only --horizon days
    assert_same_forecast(a, b)


def test_global_model_forecasts_equal_torch(tmp_path):
    path = tmp_path / "long.csv"
    long_prices().to_csv(path, index=False)
    config = small_config(path, tmp_path / "runs", layers=2)
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, tickers=("all",)), output=dataclasses.replace(config.output, name="g"))
    folder = api.run_global(config).path
    a = api.forecast_tickers(folder, ["all"], engine="numpy")
    b = api.forecast_tickers(folder, ["all"], engine="torch")
    assert a["ticker"].unique().tolist() == ["AAA", "BBB", "CCC"]
    for ticker in ("AAA", "CCC"):
        assert_same_forecast(a[a["ticker"] == ticker].drop(columns="ticker").reset_index(
            drop=True), b[b["ticker"] == ticker].drop(columns="ticker").reset_index(drop=True))
    saved = pd.read_csv(folder / "forecast.csv")  # numpy too: equal to the CSV's 10 digits
    np.testing.assert_allclose(saved["lstm"], a["lstm"], rtol=1e-9)


NO_TORCH = """
import sys
import marketcast
from marketcast.cli.main import cli

frame = marketcast.forecast(sys.argv[1], days=5)
assert len(frame) == 5 and frame["lstm"].notna().all(), frame
cli(["forecast", "--run", sys.argv[1], "--days", "3"], standalone_mode=False)
marketcast.evaluate_run(sys.argv[1])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, loaded[:5]
print("no torch")
"""


def test_forecast_and_evaluate_never_import_torch(config):
    run_dir = api.run(config).path
    src = str(Path(marketcast.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "no torch"
    assert "date,lstm" in done.stdout  # the CLI printed its table
