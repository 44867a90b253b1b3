import numpy as np
import pandas as pd
import pytest

from marketcast.evaluation.intervals import (
    MIN_CALIBRATION,
    add_sequential_intervals,
    conformal_quantile,
    coverage,
)


def noise_table(n=2000, sigma=0.01, seed=0):
    """A one-step table whose log errors are i.i.d. normal: y = y_hat * exp(eps)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=n + 1)
    y_hat = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(n)))
    return pd.DataFrame({
        "model": "m", "cutoff": dates[:-1], "date": dates[1:], "step": 1,
        "y": y_hat * np.exp(sigma * rng.standard_normal(n)), "y_hat": y_hat, "y_cutoff": y_hat,
    })


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_conformal_coverage_on_iid_noise(level):
    cover = coverage(add_sequential_intervals(noise_table(), level))
    assert cover["n"].iloc[0] == 2000 - MIN_CALIBRATION
    # Binomial standard error at n = 1980 is under 1 point; allow 2.5.
    assert abs(cover["coverage"].iloc[0] - 100 * level) < 2.5


def test_interval_uses_only_residuals_known_at_the_cutoff():
    table = noise_table(100)
    banded = add_sequential_intervals(table, 0.9)
    row = 50  # cutoff = date of row 49: residuals of rows 0..49 are known
    residuals = np.abs(np.log(table["y"] / table["y_hat"]))[:50].to_numpy()
    q = conformal_quantile(residuals, 0.9)
    assert banded["upper"].iloc[row] == pytest.approx(table["y_hat"].iloc[row] * np.exp(q))
    # Changing a later outcome leaves earlier intervals untouched.
    later = table.copy()
    later.loc[60:, "y"] *= 3
    again = add_sequential_intervals(later, 0.9)
    np.testing.assert_array_equal(again["upper"][:61], banded["upper"][:61])
    assert banded["lower"][:MIN_CALIBRATION].isna().all()


def test_conformal_quantile_rank():
    values = np.arange(1, 100, dtype=float)  # n = 99
    assert conformal_quantile(values, 0.9) == 90.0  # ceil(100 * 0.9) = 90th smallest
    assert conformal_quantile(values[:10], 0.9) == np.inf  # too few to calibrate


def test_forecast_fan_widens_with_step_and_with_recent_volatility():
    from marketcast.pipeline.series import add_interval

    rng = np.random.default_rng(1)
    steps = np.tile(np.arange(1, 31), 200)
    vol = np.repeat(rng.uniform(0.005, 0.03, 200), 30)  # each cutoff's volatility
    # Residuals drawn with the spread the volatility and step give, plus noise: the
    # normalised quantiles per step differ a little, so only the sqrt(step) scaling and
    # the cumulative maximum make the fan monotone.
    residuals = pd.DataFrame({
        "step": steps, "volatility": vol,
        "abs_log_residual": np.abs(rng.standard_normal(len(steps))) * vol * np.sqrt(steps)})
    future = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=30),
                           "lstm": np.full(30, 100.0), "naive": 100.0})

    def width(sigma):
        fan = add_interval(future, residuals, 0.9, volatility=sigma)
        return np.log(fan["lstm_upper"] / fan["lstm"]).to_numpy()

    calm, storm = width(0.01), width(0.03)
    assert np.all(np.diff(calm) >= 0) and calm[-1] > 4 * calm[0]  # ~ sqrt(30) = 5.5
    np.testing.assert_allclose(storm, 3 * calm)  # three times the volatility
    # About 1.645 standard deviations of sigma * sqrt(step) at 90%.
    assert calm[0] == pytest.approx(1.645 * 0.01, rel=0.15)
    # Without the volatility, the plain per-step quantiles of the raw residuals.
    plain = add_interval(future, residuals, 0.9)
    expected = conformal_quantile(residuals.loc[steps == 5, "abs_log_residual"].to_numpy(), 0.9)
    assert plain["lstm_upper"].iloc[4] == pytest.approx(100 * np.exp(expected))
