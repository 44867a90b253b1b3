import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_prices

from marketcast.api import backtest
from marketcast.config import BacktestConfig
from marketcast.errors import ConfigError, DataError
from marketcast.evaluation.multiple import describe, mcs_and_spa
from marketcast.models.arima import ARIMAForecaster
from marketcast.models.baselines import DriftForecaster
from marketcast.pipeline.series import load_series
from marketcast.pipeline.walkforward import cutoffs, folds, walk_forward


def with_backtest(config, **kwargs):
    # One process unless a test asks for workers: pytest-xdist already fills both cores.
    return dataclasses.replace(config, backtest=BacktestConfig(**{"workers": 1, **kwargs}))

def walk_forward_with_future_changed(config, row: int, tmp_path):
    """The walk-forward table of ``config`` on the synthetic prices with every price after
    ``row`` multiplied by 1.7."""
    raw = synthetic_prices()
    raw.loc[row + 1 :, ["Open", "High", "Low", "Close", "Adj Close"]] *= 1.7
    changed = tmp_path / "changed.csv"
    raw.to_csv(changed, index=False)
    changed_config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=str(changed)))
    _, series = load_series(changed_config)
    return walk_forward(series, changed_config)[0]



def test_cutoffs_and_folds():
    cuts = cutoffs(100, n_windows=5, stride=3, h=2)
    np.testing.assert_array_equal(cuts, [85, 88, 91, 94, 97])  # last = 100 - 1 - 2
    plan = folds(cuts, refit_every=2, train_size=None)
    assert [list(f.cutoffs) for f in plan] == [[85, 88], [91, 94], [97]]
    assert all(f.start == 0 for f in plan)
    fixed = folds(cuts, refit_every=0, train_size=50)
    assert len(fixed) == 1 and fixed[0].start == 36  # rows 36..85 are 50 rows


@pytest.mark.parametrize(("refit_every", "expected"), [(0, 1), (1, 6), (4, 2), (6, 1)])
def test_number_of_fits_follows_refit_policy(config, refit_every, expected):
    config = with_backtest(config, n_windows=6, refit_every=refit_every,
                           models=("naive", "drift", "linear"))
    _, series = load_series(config)
    table, fits = walk_forward(series, config)
    assert fits == {"naive": expected, "drift": expected, "linear": expected}
    assert len(table) == 3 * 6


def test_forecasts_at_a_cutoff_ignore_later_data(config, tmp_path):
    """Perturbing every price after a cutoff leaves the forecasts made at it unchanged."""
    config = with_backtest(config, n_windows=20, stride=2, refit_every=5,
                           models=("lstm", "naive", "drift", "linear", "arima"))
    _, series = load_series(config)
    table, _ = walk_forward(series, config)
    cutoff_index = int(cutoffs(len(series.y), 20, 2, 1)[7])
    table2 = walk_forward_with_future_changed(config, cutoff_index, tmp_path)
    cutoff = series.dates[cutoff_index]
    before = table[table["cutoff"] <= cutoff].reset_index(drop=True)
    after = table2[table2["cutoff"] <= cutoff].reset_index(drop=True)
    pd.testing.assert_series_equal(before["y_hat"], after["y_hat"])
    assert not np.allclose(table["y_hat"], table2["y_hat"])  # the perturbation mattered


def test_parallel_folds_give_the_sequential_table(config):
    """Folds fitted in two worker processes: the same rows, in the same order, same values."""
    config = with_backtest(config, n_windows=12, stride=2, refit_every=4,
                           models=("lstm", "naive", "arima"))
    _, series = load_series(config)
    sequential, fits = walk_forward(series, config)
    calls = []
    parallel, fits2 = walk_forward(series, with_backtest(
        config, n_windows=12, stride=2, refit_every=4, models=("lstm", "naive", "arima"),
        workers=2), on_fit=lambda *args: calls.append(args))
    assert fits == fits2 == {"lstm": 3, "naive": 3, "arima": 3}
    assert sorted(calls) == sorted((m, k, 3) for m in ("lstm", "naive", "arima")
                                   for k in range(3))
    pd.testing.assert_frame_equal(sequential.drop(columns="y_hat"),
                                  parallel.drop(columns="y_hat"))
    # Worker processes run torch on one thread: the LSTM's float32 sums may be grouped
    # differently, nothing more.
    np.testing.assert_allclose(parallel["y_hat"], sequential["y_hat"], rtol=1e-5)


def test_drift_exact_values():
    y = np.array([10.0, 12.0, 11.0, 16.0])  # slope (16 - 10) / 3 = 2
    model = DriftForecaster().fit(y)
    np.testing.assert_allclose(model.predict(3), [18.0, 20.0, 22.0])
    np.testing.assert_allclose(model.predict_cutoffs(y, None, np.array([1]), 2), [[14.0, 16.0]])


def test_arima_recursion_matches_statsmodels():
    from statsmodels.tsa.arima.model import ARIMA

    rng = np.random.default_rng(5)
    r = np.zeros(400)
    e = 0.01 * rng.standard_normal(400)
    for t in range(1, 400):
        r[t] = 0.0003 + 0.5 * r[t - 1] + e[t] + 0.3 * e[t - 1]
    y = 100 * np.exp(np.cumsum(r))
    model = ARIMAForecaster(orders=((1, 1),)).fit(y[:300])
    reference = ARIMA(np.diff(np.log(y[:300])), order=(1, 0, 1), trend="c").fit(
        method="innovations_mle")
    for cutoff in (299, 350):
        returns = reference.apply(np.diff(np.log(y[: cutoff + 1]))).forecast(3)
        expected = y[cutoff] * np.exp(np.cumsum(returns))
        got = model.predict_cutoffs(y, None, np.array([cutoff]), 3)[0]
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_backtest_writes_scores_and_verdict(config):
    config = with_backtest(config, n_windows=40, refit_every=20,
                           models=("lstm", "drift", "linear"))
    result = backtest(config)
    assert set(result.scores["model"]) == {"lstm", "naive", "drift", "linear"}  # naive added
    assert result.fits["lstm"] == 2
    lstm = result.scores.set_index("model").loc["lstm"]
    assert 0 <= lstm["dm_p_value"] <= 1 and lstm["theils_u"] > 0
    assert len(result.verdict) >= 3
    assert "the random walk" in result.verdict[0]
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["fits"]["lstm"] == 2
    assert {m["model"] for m in metrics["metrics_log_return"]} >= {"lstm", "naive"}
    table = pd.read_csv(result.path / "backtest.csv")
    assert list(table.columns[:6]) == ["model", "cutoff", "date", "step", "y", "y_hat"]
    assert table["lower"].notna().sum() == 4 * (40 - 20)
    # Every model at once: the 90% model confidence set and the SPA test vs the random walk,
    # on the step-1 squared errors, saved and ending the verdict.
    mcs, spa = mcs_and_spa(result.table)
    assert result.mcs == mcs == metrics["mcs"] and result.spa == spa == metrics["spa"]
    assert set(mcs["pvalues"]) == {"lstm", "naive", "drift", "linear"} and mcs["n"] == 40
    assert spa["models"] == ["lstm", "drift", "linear"]
    assert result.verdict[-2:] == metrics["verdict"][-2:] == describe(mcs, spa)


def test_backtest_log_return_scores_match_price_direction(config):
    config = with_backtest(config, n_windows=30, refit_every=0, models=("naive", "linear"))
    result = backtest(config, write=False)
    price = result.scores.set_index("model")
    returns = result.scores_log_return.set_index("model")
    assert price.loc["linear", "directional_accuracy"] == returns.loc["linear",
                                                                      "directional_accuracy"]
    assert np.isnan(returns.loc["linear", "mape"])


def test_backtest_errors(config):
    with pytest.raises(DataError, match="fewer --n-windows"):
        walk_forward(load_series(config)[1], with_backtest(config, n_windows=315))
    with pytest.raises(ConfigError, match="unknown model 'gru'"):
        walk_forward(load_series(config)[1], with_backtest(config, models=("gru",)))


def test_public_backtest_stays_a_function_after_the_module_is_imported():
    import marketcast
    import marketcast.api
    import marketcast.pipeline.walkforward  # noqa: F401

    assert callable(marketcast.backtest)
    assert marketcast.backtest is marketcast.api.backtest


def test_old_step_name_still_works_with_a_note(caplog):
    from marketcast.config import Config

    with caplog.at_level("WARNING", logger="marketcast"):
        config = Config.from_dict({"backtest": {"step": 5}}, where="old.toml")
    assert config.backtest.stride == 5
    assert "[backtest] step is now called stride (old.toml)" in caplog.text
    with pytest.raises(ConfigError, match="has both step and stride"):
        Config.from_dict({"backtest": {"step": 5, "stride": 2}})
