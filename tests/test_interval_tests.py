import math

import numpy as np
import pandas as pd
import pytest

from marketcast.evaluation.interval_tests import (
    christoffersen,
    interval_evaluation,
    interval_score,
    kupiec_pof,
    pinball,
    volatility_regimes,
)


def test_kupiec_by_hand():
    # 3 misses in 10 at 90%: LR = -2 [log L(0.1) - log L(0.3)].
    misses = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    null = 3 * math.log(0.1) + 7 * math.log(0.9)
    fitted = 3 * math.log(0.3) + 7 * math.log(0.7)
    lr, p = kupiec_pof(misses, 0.9)
    assert lr == pytest.approx(-2 * (null - fitted), rel=1e-12)
    assert lr == pytest.approx(3.073272, abs=1e-6)
    assert p == pytest.approx(0.0796, abs=1e-4)
    # Exactly the promised rate: nothing to reject.
    assert kupiec_pof(np.r_[np.zeros(18), np.ones(2)], 0.9) == pytest.approx((0.0, 1.0))
    # No miss at all: log L of the fitted rate is 0.
    lr, _ = kupiec_pof(np.zeros(10), 0.9)
    assert lr == pytest.approx(-2 * 10 * math.log(0.9))


def test_christoffersen_by_hand():
    # Misses arrive in a run: after a miss another is likelier (2/3) than after a hit (1/6).
    x = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    n00, n01, n10, n11 = 5, 1, 1, 2
    restricted = 3 * math.log(1 / 3) + 6 * math.log(2 / 3)
    markov = (n01 * math.log(1 / 6) + n00 * math.log(5 / 6)
              + n11 * math.log(2 / 3) + n10 * math.log(1 / 3))
    got = christoffersen(x, 0.9)
    assert got["lr_ind"] == pytest.approx(-2 * (restricted - markov), rel=1e-12)
    pof = -2 * ((3 * math.log(0.1) + 6 * math.log(0.9))
                - (3 * math.log(1 / 3) + 6 * math.log(2 / 3)))
    assert got["lr_cc"] == pytest.approx(pof + got["lr_ind"], rel=1e-12)
    # Misses spread like the rest (pi01 = pi11 = pi): independence holds exactly.
    spread = christoffersen(np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0]), 0.9)
    assert spread["lr_ind"] == pytest.approx(0.0, abs=1e-12) and spread["p_ind"] == 1.0


def test_interval_score_and_pinball_by_hand():
    np.testing.assert_allclose(
        interval_score([1.0, 5.0, -2.0], [0.0] * 3, [2.0] * 3, 0.8), [2.0, 32.0, 22.0])
    np.testing.assert_allclose(pinball([3.0, 0.0], [1.0, 1.0], 0.9), [1.8, 0.1])


def test_volatility_regimes_use_only_the_past():
    rng = np.random.default_rng(0)
    sigma = np.r_[np.full(150, 0.005), np.full(100, 0.03)]
    y = 100 * np.exp(np.cumsum(rng.normal(0, sigma)))
    dates = pd.bdate_range("2020-01-01", periods=len(y))
    regimes = volatility_regimes(dates, y)
    # The first volatility needs 20 returns (date 20); a regime needs 60 of them (date 79).
    assert regimes.iloc[:79].isna().all() and regimes.iloc[79:].notna().all()
    assert (regimes.iloc[200:] == "high").mean() > 0.9  # the storm reads as high
    # Any change after a date leaves every regime up to it as it was.
    changed = y.copy()
    changed[180:] = y[179] * np.exp(np.cumsum(rng.normal(0, 0.001, len(y) - 180)))  # calm
    again = volatility_regimes(dates, changed)
    pd.testing.assert_series_equal(regimes.iloc[:180], again.iloc[:180])
    assert not regimes.iloc[180:].equals(again.iloc[180:])


def test_interval_evaluation_table():
    cutoffs = pd.bdate_range("2021-01-01", periods=10)
    table = pd.DataFrame({
        "model": "m", "step": 1, "cutoff": cutoffs, "y": np.arange(10.0),
        "lower": np.arange(10.0) - 1, "upper": np.arange(10.0) + 1,
    })
    table.loc[[3, 4], "y"] += 5  # two misses in a row, above the interval
    regimes = pd.Series(["low"] * 5 + ["high"] * 5, index=cutoffs)
    row = interval_evaluation(table, 0.8, regimes).iloc[0]
    assert row["n"] == 10 and row["coverage"] == pytest.approx(80.0)
    assert row["mean_width"] == pytest.approx(2.0)
    assert row["interval_score"] == pytest.approx(2.0 + 2 / 0.2 * 4 * 2 / 10)
    assert row["kupiec_p"] == pytest.approx(1.0)
    assert row["christoffersen_ind_p"] == pytest.approx(
        christoffersen((table["y"] > table["upper"]).to_numpy(), 0.8)["p_ind"])
    assert row["coverage_low"] == pytest.approx(60.0)
    assert row["coverage_high"] == pytest.approx(100.0)
    assert np.isnan(row["coverage_mid"])


def test_scaled_conformal_equals_plain_under_constant_volatility_and_adapts_otherwise():
    from marketcast.evaluation.intervals import add_sequential_intervals, ewma_volatility

    rng = np.random.default_rng(3)
    sigma = np.r_[np.full(300, 0.005), np.full(300, 0.02)]  # calm, then a storm
    y = 100 * np.exp(np.cumsum(rng.normal(0, sigma)))
    dates = pd.bdate_range("2015-01-01", periods=len(y))
    cutoffs = np.arange(100, len(y) - 1)
    table = pd.DataFrame({"model": "naive", "cutoff": dates[cutoffs],
                          "date": dates[cutoffs + 1], "step": 1, "y": y[cutoffs + 1],
                          "y_hat": y[cutoffs], "y_cutoff": y[cutoffs]})
    plain = add_sequential_intervals(table, 0.9)
    constant = add_sequential_intervals(table, 0.9, pd.Series(0.01, index=dates))
    np.testing.assert_allclose(constant["lower"], plain["lower"], rtol=1e-12)
    volatility = ewma_volatility(dates, y)
    scaled = add_sequential_intervals(table, 0.9, volatility)

    def storm_coverage(t):
        late = t[t["cutoff"] >= dates[350]]
        return ((late["y"] >= late["lower"]) & (late["y"] <= late["upper"])).mean()

    # Plain conformal, calibrated mostly on calm days, misses many stormy ones; scaled
    # intervals widen with the volatility and come close to the promised 90%.
    assert storm_coverage(plain) < 0.8 < 0.85 <= storm_coverage(scaled) <= 0.97
    # The volatility of a date uses returns up to it only.
    changed = y.copy()
    changed[400:] *= 1.3
    again = ewma_volatility(dates, changed)
    pd.testing.assert_series_equal(volatility.iloc[:400], again.iloc[:400])
    assert volatility.iloc[:20].isna().all() and volatility.iloc[20:].notna().all()
