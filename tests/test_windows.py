import numpy as np
import pandas as pd
import pytest

from marketcast.config import SplitConfig
from marketcast.errors import DataError, NotFittedError
from marketcast.models.windows import MinMaxScaler, WindowTransform, split_rows


def test_window_alignment_on_arange():
    y = np.arange(1, 21, dtype=float)  # level values 1..20
    t = WindowTransform(lookback=3, horizon=2, target_transform="level").fit(y, None, 20)
    Z = t.inputs(y)
    cutoffs = t.cutoffs(0, 20)
    assert cutoffs[0] == 2 and cutoffs[-1] == 17  # first full window; last with 2 targets
    windows = t.scaler_.inverse_transform(t.windows(Z, cutoffs)[..., 0], column=0)
    targets = t.scaler_.inverse_transform(t.targets(Z, cutoffs), column=0)
    np.testing.assert_allclose(windows[0], [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(targets[0], [4, 5], atol=1e-5)
    np.testing.assert_allclose(windows[-1], [16, 17, 18], atol=1e-5)
    np.testing.assert_allclose(targets[-1], [19, 20], atol=1e-5)


def test_log_return_windows_start_after_first_return():
    y = np.exp(np.arange(10, dtype=float) * 0.01)
    t = WindowTransform(lookback=3, horizon=1, target_transform="log_return").fit(y, None, 10)
    assert t.cutoffs(0, 10)[0] == 3  # rows 1..3 hold returns; row 0 has none
    assert np.isnan(t.inputs(y)[0, 0])


def test_scaler_round_trip():
    Z = np.random.default_rng(0).normal(size=(50, 3)) * [1, 100, 1e6]
    scaler = MinMaxScaler().fit(Z)
    scaled = scaler.transform(Z)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaled), Z)
    again = MinMaxScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(Z), scaled)


def test_unfitted_scaler_raises():
    with pytest.raises(NotFittedError):
        MinMaxScaler().transform(np.zeros((2, 1)))


@pytest.mark.parametrize("transform", ["level", "log_return"])
def test_no_leakage_after_training_cutoff(transform):
    """Perturbing every value after the cutoff leaves the scaler and training windows unchanged."""
    rng = np.random.default_rng(1)
    y = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(200)))
    X = rng.uniform(1, 2, size=(200, 1))
    cutoff = 140
    y2, X2 = y.copy(), X.copy()
    y2[cutoff:] *= rng.uniform(0.2, 5, size=200 - cutoff)
    X2[cutoff:] *= 1000
    a = WindowTransform(20, 1, transform).fit(y, X, n_train=cutoff)
    b = WindowTransform(20, 1, transform).fit(y2, X2, n_train=cutoff)
    assert a.to_dict() == b.to_dict()
    cutoffs = a.cutoffs(0, cutoff)
    assert cutoffs[-1] + 1 < cutoff  # every training target is before the cutoff
    Za, Zb = a.inputs(y, X), b.inputs(y2, X2)
    np.testing.assert_array_equal(a.windows(Za, cutoffs), b.windows(Zb, cutoffs))
    np.testing.assert_array_equal(a.targets(Za, cutoffs), b.targets(Zb, cutoffs))


def test_split_fractions_and_dates():
    dates = pd.bdate_range("2020-01-01", periods=100)
    split = split_rows(dates, SplitConfig(), lookback=10, horizon=1, offset=1)
    assert (split.n_train, split.n_val, split.n_test) == (70, 15, 15)
    explicit = SplitConfig(val_start=str(dates[60].date()), test_start=str(dates[80].date()))
    split = split_rows(dates, explicit, lookback=10, horizon=1, offset=1)
    assert (split.n_train, split.n_val, split.n_test) == (60, 20, 20)


def test_too_few_rows_states_minimum():
    # Training needs lookback + horizon + 1 (the first return) = 62 rows after 2 x 15%.
    need = next(n for n in range(62, 200) if n - 2 * round(0.15 * n) >= 62)
    dates = pd.bdate_range("2020-01-01", periods=50)
    with pytest.raises(DataError, match=f"50 days are too few.* needs at least {need};"):
        split_rows(dates, SplitConfig(), lookback=60, horizon=1, offset=1)
    split = split_rows(pd.bdate_range("2020-01-01", periods=need), SplitConfig(), 60, 1, 1)
    assert split.n_train == 62
    with pytest.raises(DataError):
        split_rows(pd.bdate_range("2020-01-01", periods=need - 1), SplitConfig(), 60, 1, 1)
