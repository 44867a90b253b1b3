import pandas as pd

from marketcast.calendar import next_trading_days


def test_forecast_dates_skip_weekends_and_nyse_holidays():
    days = next_trading_days(pd.Timestamp("2018-12-21"), 8)  # a Friday before Christmas
    assert [d.date().isoformat() for d in days] == [
        "2018-12-24", "2018-12-26", "2018-12-27", "2018-12-28", "2018-12-31",
        "2019-01-02", "2019-01-03", "2019-01-04",
    ]  # 25 Dec and 1 Jan are holidays, 22-23 and 29-30 Dec weekends
    mlk = next_trading_days(pd.Timestamp("2019-01-18"), 1)
    assert mlk[0] == pd.Timestamp("2019-01-22")  # Martin Luther King Jr. Day on the 21st
    assert all(d.weekday() < 5 for d in next_trading_days(pd.Timestamp("2018-12-31"), 300))


def test_day_of_mourning_is_skipped():
    # The NYSE closed on 2018-12-05 for President Bush's funeral.
    assert next_trading_days(pd.Timestamp("2018-12-04"), 1)[0] == pd.Timestamp("2018-12-06")
