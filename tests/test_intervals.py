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
