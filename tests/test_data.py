import gzip
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, synthetic_prices

from marketcast.data import data_sha256, load_prices, summarize
from marketcast.errors import DataError


def write(tmp_path, frame, name="p.csv", **kwargs):
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def test_builtin_sp500_defaults_to_2010_onwards():
    frame = load_prices("sp500")
    assert frame.index[0] == pd.Timestamp("2010-01-04")
    assert frame.index[-1] == pd.Timestamp("2018-12-31")
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert frame["close"].dtype == np.float64


def test_yahoo_layout_normalises_names(tmp_path):
    raw = synthetic_prices(50)
    frame = load_prices(str(write(tmp_path, raw)))
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    np.testing.assert_allclose(frame["close"].to_numpy(), raw["Close"].to_numpy())
    assert frame.index.name == "date"


def test_gzip_file_reads_the_same(tmp_path):
    raw = synthetic_prices(50)
    plain = write(tmp_path, raw)
    gz = tmp_path / "p.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(load_prices(str(gz)), load_prices(str(plain)))


def test_stooq_bulk_layout(tmp_path):
    raw = synthetic_prices(30)
    stooq = pd.DataFrame({
        "<TICKER>": "SPY.US", "<PER>": "D",
        "<DATE>": pd.to_datetime(raw["Date"]).dt.strftime("%Y%m%d"), "<TIME>": "000000",
        "<OPEN>": raw["Open"], "<HIGH>": raw["High"], "<LOW>": raw["Low"],
        "<CLOSE>": raw["Close"], "<VOL>": raw["Volume"], "<OPENINT>": 0,
    })
    frame = load_prices(str(write(tmp_path, stooq)))
    assert frame.index[0] == pd.Timestamp(raw["Date"][0])
    np.testing.assert_allclose(frame["close"].to_numpy(), raw["Close"].to_numpy())


def test_generic_layout_semicolons_and_date_column(tmp_path):
    raw = synthetic_prices(30)
    generic = pd.DataFrame({"Day Of Trade": raw["Date"], "PX": raw["Close"]})
    path = write(tmp_path, generic, sep=";")
    frame = load_prices(str(path), date_column="Day Of Trade", target="px", features=["px"])
    np.testing.assert_allclose(frame["px"].to_numpy(), raw["Close"].to_numpy())


def test_newest_first_file_is_sorted_and_reported(tmp_path, caplog):
    raw = synthetic_prices(40)
    sorted_frame = load_prices(str(write(tmp_path, raw, "a.csv")))
    with caplog.at_level(logging.WARNING, logger="marketcast"):
        flipped = load_prices(str(write(tmp_path, raw.iloc[::-1], "b.csv")))
    pd.testing.assert_frame_equal(flipped, sorted_frame)
    assert "newest-first" in caplog.text


def test_duplicate_dates_are_named(tmp_path):
    raw = synthetic_prices(20)
    raw = pd.concat([raw, raw.iloc[[5]]])
    with pytest.raises(DataError, match=f"first: {raw['Date'].iloc[5]}"):
        load_prices(str(write(tmp_path, raw)))


def test_nan_target_names_first_bad_date(tmp_path):
    raw = synthetic_prices(20)
    raw.loc[7, "Close"] = np.nan
    raw.loc[9, "Close"] = -1.0
    expected = rf"2 NaN or non-positive values \(first on {raw['Date'][7]}"
    with pytest.raises(DataError, match=expected):
        load_prices(str(write(tmp_path, raw)))


def test_fill_policies(tmp_path):
    raw = synthetic_prices(20)
    raw.loc[7, "Close"] = np.nan
    path = write(tmp_path, raw)
    filled = load_prices(str(path), fill="ffill")
    assert filled["close"].iloc[7] == raw["Close"][6]
    assert len(load_prices(str(path), fill="drop")) == 19


def test_text_in_price_column_is_named(tmp_path):
    raw = synthetic_prices(20).astype({"Close": object})
    raw.loc[3, "Close"] = "twelve"
    expected = r"close has 1 non-numeric values \(first 'twelve' on 2015-01-07"
    with pytest.raises(DataError, match=expected):
        load_prices(str(write(tmp_path, raw)))


def test_long_file_needs_ticker(tmp_path):
    a, b = synthetic_prices(20, seed=1), synthetic_prices(20, seed=2)
    long = pd.concat([a.assign(Name="AAA"), b.assign(Name="BBB")])
    path = write(tmp_path, long)
    with pytest.raises(DataError, match="2 tickers .*--ticker"):
        load_prices(str(path))
    frame = load_prices(str(path), ticker="bbb")
    np.testing.assert_allclose(frame["close"].to_numpy(), b["Close"].to_numpy())
    with pytest.raises(DataError, match="ticker 'CCC' not in"):
        load_prices(str(path), ticker="CCC")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x00\x01\x02binary", "binary file"),
        (b"Date,Close\nnot-a-date,1.0\n", "cannot read 'not-a-date' as a date"),
        (b"When,Close\n2020-01-02,1.0\n", "no date column"),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_prices(str(path))


def test_missing_file_and_unknown_column(tmp_path, prices_csv):
    with pytest.raises(DataError, match="not found"):
        load_prices(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="column 'price' not found; the data has: open"):
        load_prices(str(prices_csv), target="price")


def test_date_bounds(prices_csv):
    frame = load_prices(str(prices_csv), start="2015-03-02", end="2015-03-31")
    assert frame.index[0] == pd.Timestamp("2015-03-02")
    assert frame.index[-1] == pd.Timestamp("2015-03-31")
    with pytest.raises(DataError, match="no rows between"):
        load_prices(str(prices_csv), start="2030-01-01")


def test_summary_counts_missing_sessions(prices_csv):
    frame = load_prices(str(prices_csv))
    holed = frame.drop(frame.index[[10, 11]])
    summary = summarize(holed)
    assert summary["rows"] == len(frame) - 2
    assert summary["missing_nyse_sessions"] == 2
    assert summary["first_missing_sessions"][0] == frame.index[10].date().isoformat()


def test_data_hash_changes_with_any_value(prices_csv):
    frame = load_prices(str(prices_csv))
    changed = frame.copy()
    changed.iloc[-1, 3] += 1e-9
    assert data_sha256(frame) == data_sha256(frame.copy())
    assert data_sha256(frame) != data_sha256(changed)


@pytest.mark.skipif(not (SHARED_DATA / "GSPC.csv.gz").exists(), reason="shared data absent")
def test_shared_gspc_matches_bundled_sp500():
    shared = load_prices(str(SHARED_DATA / "GSPC.csv.gz"), start="2010-01-01", end="2018-12-31")
    bundled = load_prices("sp500")
    assert shared.index.equals(bundled.index)
    np.testing.assert_allclose(shared["close"], bundled["close"], rtol=1e-8)
