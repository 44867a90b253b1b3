"""The GARCH(1,1)-t model: arch's variance, no look-ahead, intervals that cover."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from marketcast.api import backtest
from marketcast.config import BacktestConfig, Config
from marketcast.models import GARCHForecaster, make_model


@pytest.fixture(scope="module")
def garch_prices():
    """3,000 days of prices whose percent log returns are a GARCH(1,1)-t process."""
    return _simulate()


def _simulate():
    rng = np.random.default_rng(7)
    mu, omega, alpha, beta, nu = 0.03, 0.02, 0.10, 0.88, 6.0
    n = 3500
    variance, r = omega / (1 - alpha - beta), np.empty(n)
    for t in range(n):
        shock = rng.standard_t(nu) * np.sqrt((nu - 2) / nu)
        r[t] = mu + np.sqrt(variance) * shock
        variance = omega + alpha * (r[t] - mu) ** 2 + beta * variance
    returns = r[500:] / 100
    return 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


def test_variance_is_archs_forecast_from_the_data_up_to_the_cutoff(garch_prices):
    y = garch_prices
    model = GARCHForecaster().fit(y[:1501])
    cutoffs = np.array([1500, 2000, 2500])
    ours = model.variance_cutoffs(y, cutoffs, 3)
    for row, c in zip(ours, cutoffs, strict=True):
        returns = 100 * np.diff(np.log(y[: c + 1]))
        fixed = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fix(
            list(model.params_.values()))
        daily = fixed.forecast(horizon=3, reindex=False).variance.to_numpy()[-1]
        np.testing.assert_allclose(row, np.cumsum(daily) / 1e4, rtol=1e-10)
    # Later prices change nothing at a cutoff.
    changed = y.copy()
    changed[2001:] *= np.exp(np.linspace(0, 0.5, len(y) - 2001))
    np.testing.assert_array_equal(model.variance_cutoffs(changed, [2000], 5),
                                  model.variance_cutoffs(y, [2000], 5))
    lower, upper = model.predict_interval(y, None, np.array([2000]), 5, 0.9)
    again = model.predict_interval(changed, None, np.array([2000]), 5, 0.9)
    np.testing.assert_array_equal(lower, again[0])
    np.testing.assert_array_equal(upper, again[1])


def test_intervals_cover_and_follow_volatility(garch_prices):
    y = garch_prices
    model = make_model("garch", Config()).fit(y[:1001])
    cutoffs = np.arange(1000, len(y) - 1)
    lower, upper = model.predict_interval(y, None, cutoffs, 1, 0.9)
    inside = (y[cutoffs + 1] >= lower[:, 0]) & (y[cutoffs + 1] <= upper[:, 0])
    assert 0.87 <= inside.mean() <= 0.93  # 2,000 one-day intervals at 90%
    # Widths follow the conditional variance: they are not constant.
    relative = (upper[:, 0] - lower[:, 0]) / y[cutoffs]
    assert relative.max() / relative.min() > 2
    # Point forecast: the random walk with drift.
    np.testing.assert_allclose(model.predict_cutoffs(y, None, [1000], 2)[0],
                               y[1000] * np.exp(model.params_["mu"] / 100 * np.array([1, 2])))


def test_backtest_keeps_garchs_own_intervals(tmp_path, garch_prices):
    from conftest import small_config

    dates = pd.bdate_range("2008-01-01", periods=len(garch_prices))
    path = tmp_path / "garch.csv"
    pd.DataFrame({"date": dates, "close": garch_prices}).to_csv(path, index=False)
    config = small_config(path, tmp_path / "runs")
    config = dataclasses.replace(config, backtest=BacktestConfig(
        n_windows=60, refit_every=30, models=("naive", "garch"), workers=1))
    table = backtest(config, write=False).table
    garch = table[table["model"] == "garch"]
    naive = table[table["model"] == "naive"]
    assert garch["lower"].notna().all()  # from the first cutoff: no calibration needed
    assert naive["lower"].isna().sum() == 20  # conformal needs 20 known residuals first
    width = (garch["upper"] - garch["lower"]) / garch["y_cutoff"]
    assert width.std() > 0
