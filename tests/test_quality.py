import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, synthetic_prices

from marketcast.data import CHECKS, check_data, check_prices, summarize
from marketcast.data.quality import quality_summary

ALL_STOCKS = SHARED_DATA / "all_stocks_5yr.csv.gz"


def prices(n=320, seed=0) -> pd.DataFrame:
    raw = synthetic_prices(n, seed=seed)
    frame = raw.drop(columns=["Date"]).rename(columns=lambda c: c.lower().replace(" ", "_"))
    return frame.set_axis(pd.DatetimeIndex(raw["Date"], name="date")).astype(float)


def found(frame, **kwargs) -> dict[str, list[str]]:
    return {name: [d.date().isoformat() for d in dates]
            for name, dates in check_prices(frame, **kwargs).items() if len(dates)}


@pytest.mark.parametrize("seed", range(4))
def test_clean_random_walks_raise_nothing(seed):
    assert found(prices(seed=seed)) == {}


def day(frame, i) -> str:
    return frame.index[i].date().isoformat()


def test_each_planted_defect_is_found_on_its_date():
    frame = prices()
    f = frame.copy()
    f.iloc[20, f.columns.get_loc("volume")] = 0
    f.iloc[30, f.columns.get_loc("high")] = f["low"].iloc[30] * 0.99  # high < low
    f.iloc[40, f.columns.get_loc("open")] = np.nan
    # A halted quote: rows 60-65 repeat one price, i.e. five repeats of day 60's close.
    f.iloc[60:66, [f.columns.get_loc(c) for c in ("open", "high", "low", "close")]] = \
        f["close"].iloc[60]
    for column in ("open", "high", "low", "close", "adj_close"):
        f.iloc[100, f.columns.get_loc(column)] *= 0.5  # one bad print, reverted next day
        f.iloc[150:, f.columns.get_loc(column)] /= 3  # 3-for-1 split never adjusted
        f.iloc[220:, f.columns.get_loc(column)] *= 1.7  # a jump that stays
    weekend = f.iloc[[250]].set_axis(pd.DatetimeIndex(["2015-12-26"], name="date"))
    f = pd.concat([f.drop(f.index[[200]]), weekend, f.iloc[[10]]])  # a gap, a Saturday, a dup
    assert found(f) == {
        "duplicate_dates": [day(frame, 10)],
        "missing_sessions": [day(frame, 200)],
        "non_sessions": ["2015-12-26"],
        "missing_values": [day(frame, 40)],
        "zero_volume": [day(frame, 20)],
        "ohlc": [day(frame, 30)],
        "outlier": [day(frame, 100)],
        "split": [day(frame, 150)],
        "jump": [day(frame, 220)],
        "stale": [day(frame, i) for i in range(61, 66)],
    }


def test_four_equal_closes_are_not_stale_and_a_crash_that_holds_is_not_an_outlier():
    f = prices()
    f.iloc[60:64, f.columns.get_loc("close")] = f["close"].iloc[60]
    f.iloc[100:, f.columns.get_loc("close")] *= 0.75  # -29%: big, but no revert, no split
    assert found(f[["close"]]) == {}


def test_a_swing_in_a_turbulent_month_is_not_a_bad_print():
    f = prices()[["close"]].copy()
    rng = np.random.default_rng(3)
    turbulent = np.exp(np.cumsum(0.06 * rng.standard_normal(40)))
    f.iloc[100:140, 0] = f["close"].iloc[99] * turbulent
    f.iloc[140, 0] = f["close"].iloc[139] * 1.2  # +18% then back, amid 6% days
    f.iloc[141, 0] = f["close"].iloc[139]
    assert "outlier" not in found(f)


def test_summary_counts_and_dates_go_to_run_metrics():
    f = prices()
    f.iloc[5, f.columns.get_loc("volume")] = 0
    summary = quality_summary(f)
    assert set(summary) == set(CHECKS)
    assert summary["zero_volume"] == {"count": 1, "dates": [day(f, 5)]}
    assert summarize(f)["quality"]["zero_volume"]["count"] == 1


def test_check_data_long_file_reports_per_ticker(tmp_path):
    a, b = prices(seed=1), prices(seed=2)
    b.iloc[7, b.columns.get_loc("volume")] = 0
    long = pd.concat([a.assign(Name="AAA"), b.assign(Name="BBB")]).reset_index()
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    report = check_data(str(path))
    assert report.tickers == ("AAA", "BBB")
    assert report.summary() == [
        {"ticker": "BBB", "check": "zero_volume", "count": 1, "dates": day(b, 7)}]
    assert check_data(str(path), ticker="aaa").findings.empty
    assert check_data(str(path), start=day(b, 8)).findings.empty


@pytest.mark.skipif(not ALL_STOCKS.exists(), reason="shared data absent")
def test_all_stocks_5yr_known_defects_and_no_flood():
    report = check_data(str(ALL_STOCKS))
    f = report.findings
    assert len(report.tickers) == 505

    def at(check):
        rows = f[f["check"] == check]
        return {(t, d.date().isoformat()) for t, d in zip(rows["ticker"], rows["date"],
                                                          strict=True)}

    # The defects listed in shared/data/README.md.
    assert {("LNT", "2016-05-19")} <= at("outlier")
    assert {("LNT", "2016-05-19"), ("CHD", "2014-05-19")} <= at("ohlc")
    assert at("split") == {("DISCA", "2014-08-07"), ("DISCK", "2014-08-07")}
    assert {("EBAY", "2015-07-20"), ("NI", "2015-07-02"), ("BAX", "2015-07-01")} <= at("jump")
    assert len(at("ohlc")) == 12
    assert len(at("zero_volume")) == 4
    assert len(at("missing_values")) == 11  # NaN opens
    # The bad print's way back up is not a second finding.
    assert ("LNT", "2016-05-20") not in at("jump") | at("outlier")
    # No flood: 470 of 505 tickers are complete and clean.
    assert f["ticker"].nunique() <= 40
    assert at("stale") == set() and at("duplicate_dates") == set()
