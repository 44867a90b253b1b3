import gzip

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, synthetic_prices

from marketcast.data import list_tickers, load_prices
from marketcast.data.store import write_parquet
from marketcast.errors import DataError


def wide_frame() -> pd.DataFrame:
    a, b = synthetic_prices(60, seed=1), synthetic_prices(60, seed=2)
    late = b["Close"].where(b.index >= 10)  # BBB lists on day 10
    return pd.DataFrame({"Date": a["Date"], "AAA": a["Close"], "BBB": late})


def test_wide_file_ticker_column_becomes_close(tmp_path):
    path = tmp_path / "wide.csv"
    wide = wide_frame()
    wide.to_csv(path, index=False)
    frame = load_prices(str(path), ticker="aaa")
    assert list(frame.columns) == ["close"]
    np.testing.assert_allclose(frame["close"], wide["AAA"])
    late = load_prices(str(path), ticker="BBB")  # trimmed to the days it trades
    assert late.index[0] == pd.Timestamp(wide["Date"][10]) and len(late) == 50
    with pytest.raises(DataError, match="nor a column named CCC"):
        load_prices(str(path), ticker="CCC")
    with pytest.raises(DataError, match="column 'close' not found.*needs --ticker NAME"):
        load_prices(str(path))
    listed = list_tickers(str(path))
    assert listed.to_dict("records") == [
        {"ticker": "AAA", "start": wide["Date"][0], "end": wide["Date"][59], "rows": 60},
        {"ticker": "BBB", "start": wide["Date"][10], "end": wide["Date"][59], "rows": 50},
    ]


def test_long_file_lists_tickers_with_ranges(tmp_path):
    a, b = synthetic_prices(30, seed=1), synthetic_prices(20, seed=2, start="2016-01-04")
    path = tmp_path / "long.csv.gz"
    long = pd.concat([b.assign(Name="BBB"), a.assign(Name="AAA")])
    path.write_bytes(gzip.compress(long.to_csv(index=False).encode()))
    assert list_tickers(str(path)).to_dict("records") == [
        {"ticker": "AAA", "start": a["Date"][0], "end": a["Date"][29], "rows": 30},
        {"ticker": "BBB", "start": b["Date"][0], "end": b["Date"][19], "rows": 20},
    ]
    np.testing.assert_allclose(load_prices(str(path), ticker="AAA")["close"], a["Close"])


def test_folder_of_per_ticker_files(tmp_path):
    folder = tmp_path / "stocks"
    folder.mkdir()
    a, b, c = (synthetic_prices(30, seed=s) for s in (1, 2, 3))
    a.to_csv(folder / "AAA.csv", index=False)
    # Kaggle's per-ticker files: TICKER_data.csv with a Name column.
    b.assign(Name="BRK.B").to_csv(folder / "BRK.B_data.csv", index=False)
    frame_c = load_prices_from(c, tmp_path)
    frame_c.to_parquet(folder / "CCC.parquet")
    (folder / "notes.md").write_text("not prices")
    np.testing.assert_allclose(load_prices(str(folder), ticker="aaa")["close"], a["Close"])
    np.testing.assert_allclose(load_prices(str(folder), ticker="BRK.B")["close"], b["Close"])
    pd.testing.assert_frame_equal(load_prices(str(folder), ticker="CCC"), frame_c)
    assert list(list_tickers(str(folder))["ticker"]) == ["AAA", "BRK.B", "CCC"]
    with pytest.raises(DataError, match="holds 3 tickers .*pass --ticker"):
        load_prices(str(folder))
    with pytest.raises(DataError, match="no file for ticker 'ZZZ'"):
        load_prices(str(folder), ticker="ZZZ")


def load_prices_from(raw: pd.DataFrame, tmp_path) -> pd.DataFrame:
    path = tmp_path / "one.csv"
    raw.to_csv(path, index=False)
    return load_prices(str(path))


def test_parquet_file_reads_like_its_csv(tmp_path):
    frame = load_prices_from(synthetic_prices(40), tmp_path)
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_prices(str(path)), frame)


def test_store_source_reads_the_store(tmp_path, monkeypatch):
    frame = load_prices_from(synthetic_prices(40), tmp_path)
    monkeypatch.setenv("MARKETCAST_STORE", str(tmp_path / "store"))
    write_parquet(tmp_path / "store" / "AAA.parquet", frame, {
        "format_version": 1, "ticker": "AAA", "source": "test", "downloads": []})
    pd.testing.assert_frame_equal(load_prices("store:aaa"), frame)
    with pytest.raises(DataError, match="BBB is not in the store .*data download BBB"):
        load_prices("store:BBB")
    with pytest.raises(DataError, match="already names the ticker; drop --ticker BBB"):
        load_prices("store:AAA", ticker="BBB")


@pytest.mark.skipif(not (SHARED_DATA / "skfolio_sp500_dataset.csv.gz").exists(),
                    reason="shared data absent")
def test_shared_wide_file_aapl():
    frame = load_prices(str(SHARED_DATA / "skfolio_sp500_dataset.csv.gz"), ticker="AAPL")
    assert (frame.index[0], frame.index[-1]) == (pd.Timestamp("1990-01-02"),
                                                 pd.Timestamp("2022-12-28"))
    move = frame["close"].pct_change().loc["2000-09-29"]
    assert move == pytest.approx(-0.52, abs=0.01)  # the real one-day fall the README names


@pytest.mark.skipif(not (SHARED_DATA / "all_stocks_5yr.csv.gz").exists(),
                    reason="shared data absent")
def test_shared_long_file_aapl():
    frame = load_prices(str(SHARED_DATA / "all_stocks_5yr.csv.gz"), ticker="AAPL")
    assert len(frame) == 1259
    assert frame["close"].iloc[0] == pytest.approx(67.8542, abs=1e-3)


@pytest.mark.parametrize("flags, named", [({"ticker": "AAPL"}, "--ticker"),
                                          ({"date_column": "Day"}, "--date-column")])
def test_file_flags_on_the_built_in_series_are_refused(flags, named):
    with pytest.raises(DataError, match=f"--data sp500 is one built-in series; {named}"):
        load_prices("sp500", **flags)
