import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from marketcast.evaluation.interval_summary import (
    intervals_by_ticker,
    summarize_intervals,
    summary_lines,
    ticker_rows,
)


def test_rejections_counted_raw_and_after_benjamini_hochberg():
    p = np.array([0.001, 0.004, 0.03, 0.04, 0.2, 0.6])
    rows = pd.DataFrame({
        "ticker": list("ABCDEF"), "model": "lstm", "method": ["aci"] * 4 + ["scaled"] * 2,
        "n": [100, 100, 100, 100, 50, 50], "coverage": [80, 85, 88, 90, 92, 100.0],
        "coverage_low": [90, 90, 95, 95, np.nan, 100.0], "kupiec_p": p,
        "christoffersen_cc_p": p[::-1],
    })
    summary = summarize_intervals(rows, 0.9)
    one = summary["models"]["lstm"]
    assert one["kupiec_rejected"] == 4 and one["christoffersen_rejected"] == 4
    # By hand: BH-adjusted p = min over k >= i of p_(k) * m / k with m = 6:
    # 0.006, 0.012, 0.06, 0.06, 0.24, 0.6: two below 0.05.
    np.testing.assert_allclose(multipletests(p, method="fdr_bh")[1],
                               [0.006, 0.012, 0.06, 0.06, 0.24, 0.6])
    assert one["kupiec_rejected_adjusted"] == 2
    assert one["christoffersen_rejected_adjusted"] == 2
    assert one["pooled_coverage"] == pytest.approx((80 + 85 + 88 + 90) * 100 / 500
                                                   + (92 + 100) * 50 / 500)
    assert one["median_coverage"] == 89.0 and one["median_coverage_low"] == 95.0
    assert one["methods"] == {"aci": 4, "scaled": 2}
    line = summary_lines(summary)[0]
    assert "over 6 tickers" in line and "Kupiec rejects 4 at 5% (2 after" in line
    # A p-value just under 5% among many large ones survives raw but not after adjustment.
    many = rows.assign(kupiec_p=[0.04, 0.5, 0.6, 0.7, 0.8, 0.9])
    counted = summarize_intervals(many, 0.9)["models"]["lstm"]
    assert counted["kupiec_rejected"] == 1 and counted["kupiec_rejected_adjusted"] == 0


def test_each_ticker_is_calibrated_on_its_own():
    class One:
        def __init__(self, y):
            self.dates, self.y = pd.bdate_range("2012-01-02", periods=len(y)), y

    rng = np.random.default_rng(0)
    series = {"A": One(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))),
              "B": One(50 * np.exp(np.cumsum(rng.normal(0, 0.03, 300))))}
    frames = []
    for ticker, one in series.items():
        c = np.arange(100, 299)
        frames.append(pd.DataFrame({
            "ticker": ticker, "model": "naive", "cutoff": one.dates[c],
            "date": one.dates[c + 1], "step": 1, "y": one.y[c + 1], "y_hat": one.y[c],
            "y_cutoff": one.y[c]}))
    table = pd.concat(frames, ignore_index=True)
    banded, by_ticker = intervals_by_ticker(table, series, 0.9, "conformal")
    alone, _ = intervals_by_ticker(table[table["ticker"] == "A"], series, 0.9, "conformal")
    np.testing.assert_array_equal(banded.loc[banded["ticker"] == "A", "upper"],
                                  alone["upper"])
    rows = ticker_rows(by_ticker)
    assert rows["ticker"].tolist() == ["A", "B"] and (rows["method"] == "conformal").all()
    assert rows["n"].tolist() == [199 - 20, 199 - 20]
    # B's returns are three times as volatile: its relative band is about three times wider.
    width = (banded["upper"] / banded["y_hat"]).groupby(banded["ticker"]).median()
    assert 2 < np.log(width["B"]) / np.log(width["A"]) < 4
