import numpy as np
import pandas as pd
import pytest
from scipy import stats

from marketcast.evaluation.metrics import accuracy, compare, verdict
from marketcast.evaluation.stats import (
    autocorrelation,
    binomial_p_value,
    diebold_mariano,
    ljung_box,
)


def test_diebold_mariano_by_hand_h1():
    rng = np.random.default_rng(3)
    e1, e2 = rng.normal(0, 1.0, 80), rng.normal(0, 1.2, 80)
    d = e1**2 - e2**2
    n = len(d)
    dm = d.mean() / np.sqrt(d.var() / n)  # h = 1: variance is the lag-0 autocovariance
    statistic = dm * np.sqrt((n - 1) / n)  # HLN factor for h = 1
    p = 2 * stats.t.sf(abs(statistic), n - 1)
    got = diebold_mariano(e1, e2, h=1)
    assert got[0] == pytest.approx(statistic, rel=1e-12)
    assert got[1] == pytest.approx(p, rel=1e-10)


def test_diebold_mariano_by_hand_h3_bartlett():
    rng = np.random.default_rng(4)
    e1, e2 = rng.normal(size=60), rng.normal(size=60) * 1.5
    d = e1**2 - e2**2
    n, h = len(d), 3
    c = d - d.mean()
    gamma = [np.sum(c[k:] * c[: n - k]) / n for k in range(h)]
    lrv = gamma[0] + 2 * sum((1 - k / h) * gamma[k] for k in range(1, h))
    statistic = d.mean() / np.sqrt(lrv / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    got = diebold_mariano(e1, e2, h=h)
    assert got[0] == pytest.approx(statistic, rel=1e-12)
    assert got[0] < 0  # the first forecast has the smaller errors


def test_binomial_p_value():
    assert binomial_p_value(5, 10) == pytest.approx(1.0)
    # P(X >= 9) + P(X <= 1) for Binomial(10, 0.5) = 22 / 1024
    assert binomial_p_value(9, 10) == pytest.approx(22 / 1024)


def table(y_hat_lstm):
    y_cutoff = np.array([10.0, 11.0, 12.0, 11.0])
    y = np.array([11.0, 12.0, 11.0, 13.0])
    cutoff = pd.bdate_range("2020-01-01", periods=4)
    rows = []
    for model, y_hat in (("naive", y_cutoff), ("lstm", np.asarray(y_hat_lstm))):
        rows.append(pd.DataFrame({"model": model, "cutoff": cutoff,
                                  "date": cutoff + pd.offsets.BDay(), "step": 1, "y": y,
                                  "y_hat": y_hat, "y_cutoff": y_cutoff}))
    return pd.concat(rows, ignore_index=True)


def test_accuracy_values():
    scores = accuracy(table([10.5, 11.5, 11.5, 12.0])).set_index("model")
    lstm, naive = scores.loc["lstm"], scores.loc["naive"]
    assert naive["rmse"] == pytest.approx(np.sqrt((1 + 1 + 1 + 4) / 4))
    assert lstm["mae"] == pytest.approx((0.5 + 0.5 + 0.5 + 1.0) / 4)
    assert lstm["mape"] == pytest.approx(100 * np.mean([0.5 / 11, 0.5 / 12, 0.5 / 11, 1 / 13]))
    assert lstm["theils_u"] == pytest.approx(lstm["rmse"] / naive["rmse"])
    assert lstm["directional_accuracy"] == 100.0  # every direction called right
    assert np.isnan(naive["directional_accuracy"])  # a random walk calls no direction


def test_verdict_shows_the_difference_but_calls_it_not_significant():
    pairs = compare(table([10.0, 11.2, 12.1, 10.9]))
    (line,) = verdict(pairs)
    p = accuracy(table([10.0, 11.2, 12.1, 10.9])).set_index("model").loc["lstm", "dm_p_value"]
    assert p > 0.05
    # RMSE sqrt((1 + 0.64 + 1.21 + 4.41) / 4) = 1.347 against sqrt(7 / 4) = 1.323.
    assert line == ("LSTM RMSE 1.347 vs naive 1.323 (+1.8%): not significantly different from "
                    f"the random walk (DM p = {p:.3g})")


def test_autocorrelation_and_ljung_box_match_statsmodels():
    from statsmodels.stats.diagnostic import acorr_ljungbox
    from statsmodels.tsa.stattools import acf

    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=60)) * 0.1 + rng.normal(size=60)  # some autocorrelation
    np.testing.assert_allclose(autocorrelation(x, 8), acf(x, nlags=8, fft=False)[1:],
                               rtol=1e-12)
    expected = acorr_ljungbox(x, lags=[8])
    q, p = ljung_box(x, 8)
    assert q == pytest.approx(expected["lb_stat"].iloc[0], rel=1e-12)
    assert p == pytest.approx(expected["lb_pvalue"].iloc[0], rel=1e-10)
    assert ljung_box(np.sin(np.arange(60)), 8)[1] < 1e-6  # a clear pattern is caught


def test_scores_by_step_keep_integer_steps():
    scores = accuracy(table([10.5, 11.5, 11.5, 12.0]), by_step=True)
    assert scores["step"].tolist() == [1, 1]
    assert scores["step"].dtype.kind == "i"
