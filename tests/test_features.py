import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_prices

from marketcast.data import load_prices
from marketcast.data.features import add_features, compute_feature
from marketcast.errors import DataError
from marketcast.models import LinearForecaster
from marketcast.pipeline.series import series_from_frame

ALL = ["log_return", "range", "volatility20", "rsi14", "macd", "sma_ratio20"]


def prices(n=200, seed=0) -> pd.DataFrame:
    raw = synthetic_prices(n, seed=seed)
    frame = raw.drop(columns=["Date"]).rename(columns=lambda c: c.lower().replace(" ", "_"))
    return frame.set_axis(pd.DatetimeIndex(raw["Date"], name="date")).astype(float)


@pytest.mark.parametrize("name", ALL)
def test_features_up_to_t_ignore_every_later_day(name):
    """Scrambling every price after day t leaves each feature value up to t bit for bit."""
    frame = prices()
    t = 120
    later = frame.copy()
    rng = np.random.default_rng(1)
    later.iloc[t + 1:] *= rng.uniform(0.5, 2.0, size=later.iloc[t + 1:].shape)
    before = compute_feature(frame, name).to_numpy()
    after = compute_feature(later, name).to_numpy()
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.allclose(before[t + 1:], after[t + 1:])  # the scramble did reach the feature


def test_feature_values_on_a_known_series():
    close = np.array([10.0, 11.0, 12.0, 11.0, 13.0, 14.0])
    frame = pd.DataFrame({"close": close, "high": close + 1, "low": close - 1},
                         index=pd.bdate_range("2020-01-01", periods=6))
    np.testing.assert_allclose(compute_feature(frame, "log_return")[1:],
                               np.log(close[1:] / close[:-1]))
    np.testing.assert_allclose(compute_feature(frame, "range"), 2 / close)
    np.testing.assert_allclose(compute_feature(frame, "sma_ratio3")[2:],
                               close[2:] / [11.0, 34 / 3, 12.0, 38 / 3])
    vol = compute_feature(frame, "volatility2")
    assert np.isnan(vol.iloc[1])
    assert vol.iloc[2] == pytest.approx(np.std(np.log([11 / 10, 12 / 11]), ddof=1))
    rising = pd.DataFrame({"close": np.arange(1.0, 30.0)})
    rsi = compute_feature(rising, "rsi14")
    assert rsi.iloc[:14].isna().all() and (rsi.iloc[14:] == 100).all()
    falling = pd.DataFrame({"close": np.arange(30.0, 1.0, -1)})
    assert (compute_feature(falling, "rsi14").iloc[14:] == 0).all()


def test_macd_is_a_share_of_price():
    frame = prices(300)
    doubled = frame * 2
    np.testing.assert_allclose(compute_feature(frame, "macd"), compute_feature(doubled, "macd"))
    assert compute_feature(frame, "macd").iloc[:25].isna().all()


@pytest.mark.parametrize(
    ("name", "message"),
    [("rsi", "neither a column"), ("log_return5", "neither a column"),
     ("volatility1", "N >= 2"), ("momentum10", "neither a column")],
)
def test_unknown_feature_names(name, message):
    with pytest.raises(DataError, match=message):
        add_features(prices(40), [name])


def test_range_needs_high_and_low():
    with pytest.raises(DataError, match="range' needs high, low and close; the data lacks high"):
        add_features(prices(40).drop(columns=["high"]), ["range"])


def test_load_prices_warms_up_on_history_before_start(tmp_path):
    path = tmp_path / "p.csv"
    synthetic_prices(300).to_csv(path, index=False)
    full = load_prices(str(path), features=["close", "volume", "rsi14", "macd"])
    assert full.index[0] == pd.Timestamp(synthetic_prices(300)["Date"][25])  # macd warm-up
    assert not full[["rsi14", "macd"]].isna().any().any()
    cut = load_prices(str(path), start="2015-06-01", features=["close", "rsi14"])
    assert cut.index[0] == pd.Timestamp("2015-06-01")
    np.testing.assert_array_equal(cut["rsi14"], full.loc[cut.index, "rsi14"])


def test_linear_forecast_ignores_days_after_its_origin(tmp_path):
    """End to end: features from perturbed later prices do not change a forecast made at t."""
    raw = synthetic_prices(300)
    path_a, path_b = tmp_path / "a.csv", tmp_path / "b.csv"
    raw.to_csv(path_a, index=False)
    t = 250
    changed = raw.astype({"Volume": float})
    for column in ("Open", "High", "Low", "Close", "Volume"):
        changed.loc[t + 1:, column] *= 1.7
    changed.to_csv(path_b, index=False)
    features = ["close", "volume", "log_return", "range", "volatility20", "rsi14", "macd",
                "sma_ratio20"]
    a = series_from_frame(load_prices(str(path_a), features=features), "close", features)
    b = series_from_frame(load_prices(str(path_b), features=features), "close", features)
    assert a.X.shape[1] == len(features) - 1
    cutoff = np.array([t - 25])  # macd's 25 warm-up days are dropped
    assert a.dates[cutoff[0]] == pd.Timestamp(raw["Date"][t])
    model = LinearForecaster(lookback=20).fit(a.y[:200], a.X[:200], n_val=30)
    np.testing.assert_array_equal(model.predict_cutoffs(a.y, a.X, cutoff, 1),
                                  model.predict_cutoffs(b.y, b.X, cutoff, 1))
    assert not np.array_equal(model.predict_cutoffs(a.y, a.X, cutoff + 5, 1),
                              model.predict_cutoffs(b.y, b.X, cutoff + 5, 1))
