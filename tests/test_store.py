"""The download store, offline: a fake fetch stands in for Yahoo, a fake module for yfinance."""

import logging
import sys
import time
import types

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import synthetic_prices

from marketcast.data import download, list_store, load_prices
from marketcast.data.store import missing_ranges, read_stored, yahoo_fetch
from marketcast.errors import ConfigError, DataError


def remote_prices(n=300) -> pd.DataFrame:
    """What the source holds: Yahoo's daily columns, indexed by Date."""
    raw = synthetic_prices(n)
    return raw.drop(columns="Date").set_axis(pd.DatetimeIndex(raw["Date"], name="Date"))


class FakeSource:
    """Serves slices of a frame like yfinance would, and records every request."""

    def __init__(self, frame):
        self.frame = frame
        self.calls = []

    def __call__(self, ticker, start, end):
        self.calls.append((ticker, start.date().isoformat(), end.date().isoformat()))
        return self.frame.loc[start:end].copy()


@pytest.fixture
def source():
    return FakeSource(remote_prices())


def day(frame, i) -> str:
    return frame.index[i].date().isoformat()


def test_first_download_stores_rows_and_metadata(tmp_path, source):
    remote = source.frame
    (report,) = download(["aaa"], start=day(remote, 0), end=day(remote, 99), store=tmp_path,
                         fetch=source, source="fake")
    assert source.calls == [("AAA", day(remote, 0), day(remote, 99))]
    assert report.path == tmp_path / "AAA.parquet" and report.rows_added == 100
    frame, meta = read_stored("AAA", tmp_path)
    np.testing.assert_array_equal(frame["close"], remote["Close"].iloc[:100])
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert meta["source"] == "fake" and meta["ticker"] == "AAA"
    assert meta["downloads"][0]["rows_added"] == 100
    assert pd.Timestamp(meta["downloads"][0]["at"]).tzinfo is not None  # UTC time kept
    assert b"pickle" not in pq.read_metadata(report.path).metadata.get(b"marketcast", b"")


def test_update_fetches_only_missing_days_and_never_duplicates(tmp_path, source):
    remote = source.frame
    download(["AAA"], start=day(remote, 50), end=day(remote, 99), store=tmp_path, fetch=source)
    source.calls.clear()
    (report,) = download(["AAA"], start=day(remote, 20), end=day(remote, 149), store=tmp_path,
                         fetch=source)
    # Each range starts or ends on the stored edge day, to notice restated history.
    assert source.calls == [("AAA", day(remote, 20), day(remote, 50)),
                            ("AAA", day(remote, 99), day(remote, 149))]
    assert report.rows_added == 30 + 50
    frame, meta = read_stored("AAA", tmp_path)
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    np.testing.assert_array_equal(frame["close"], remote["Close"].iloc[20:150])
    assert [d["rows_added"] for d in meta["downloads"]] == [50, 80]


def test_up_to_date_store_fetches_nothing_and_keeps_the_file(tmp_path, source):
    remote = source.frame
    download(["AAA"], start=day(remote, 0), end=day(remote, 99), store=tmp_path, fetch=source)
    before = (tmp_path / "AAA.parquet").read_bytes()
    source.calls.clear()
    (report,) = download(["AAA"], end=day(remote, 99), store=tmp_path, fetch=source)
    assert source.calls == [] and report.rows_added == 0
    assert (tmp_path / "AAA.parquet").read_bytes() == before


def test_restated_history_is_fetched_again(tmp_path, source, caplog, monkeypatch):
    # The CLI stops propagation to print notes itself; caplog listens at the root.
    monkeypatch.setattr(logging.getLogger("marketcast"), "propagate", True)
    remote = source.frame
    download(["AAA"], start=day(remote, 0), end=day(remote, 99), store=tmp_path, fetch=source)
    price_columns = ["Open", "High", "Low", "Close", "Adj Close"]
    source.frame = remote.copy()
    source.frame[price_columns] /= 2  # a 2-for-1 split re-adjusts every earlier price
    (report,) = download(["AAA"], end=day(remote, 149), store=tmp_path, fetch=source)
    assert report.refetched and report.rows_added == 150
    frame, _ = read_stored("AAA", tmp_path)
    np.testing.assert_allclose(frame["close"], remote["Close"].iloc[:150] / 2)
    assert source.calls[-1] == ("AAA", day(remote, 0), day(remote, 149))
    assert "restated" in caplog.text


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, source, monkeypatch):
    remote = source.frame
    download(["AAA"], start=day(remote, 0), end=day(remote, 99), store=tmp_path, fetch=source)
    before = (tmp_path / "AAA.parquet").read_bytes()

    def crash(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(DataError, match=r"cannot write to the store .* \(disk full\)"):
        download(["AAA"], end=day(remote, 149), store=tmp_path, fetch=source)
    assert (tmp_path / "AAA.parquet").read_bytes() == before
    # the lock file stays (an empty hidden file); nothing else is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [".AAA.parquet.lock", "AAA.parquet"]


def test_bad_symbol_and_empty_answer(tmp_path, source):
    with pytest.raises(DataError, match="'AA/PL' is not a ticker symbol"):
        download(["AAA", "AA/PL"], store=tmp_path, fetch=source)
    assert source.calls == []  # every symbol is checked before anything is fetched
    with pytest.raises(DataError, match="returned no prices for ZZZ"):
        download(["ZZZ"], start="1990-01-01", end="1990-12-31", store=tmp_path, fetch=source)
    assert [p.name for p in tmp_path.iterdir()] == [".ZZZ.parquet.lock"]


def test_missing_ranges():
    stored = pd.bdate_range("2020-02-03", "2020-02-28")
    ts = pd.Timestamp
    assert missing_ranges(None, ts("2020-01-01"), ts("2020-03-31")) == [
        (ts("2020-01-01"), ts("2020-03-31"))]
    assert missing_ranges(stored, ts("2020-02-03"), ts("2020-02-28")) == []
    assert missing_ranges(stored, ts("2020-02-10"), ts("2020-03-31")) == [
        (ts("2020-02-28"), ts("2020-03-31"))]


def test_store_is_a_data_source_and_is_listed(tmp_path, source, monkeypatch):
    monkeypatch.setenv("MARKETCAST_STORE", str(tmp_path))
    remote = source.frame
    download(["AAA"], start=day(remote, 0), end=day(remote, 199), fetch=source, source="fake")
    frame = load_prices("store:AAA", features=["close", "volume"])
    np.testing.assert_array_equal(frame["volume"], remote["Volume"].iloc[:200])
    listed = list_store().to_dict("records")
    assert len(listed) == 1
    assert listed[0]["ticker"] == "AAA" and listed[0]["rows"] == 200
    assert listed[0]["source"] == "fake" and listed[0]["downloaded"] is not None


def recorded_yfinance_frame(ticker: str) -> pd.DataFrame:
    """The shape yfinance 1.x returns: (Price, Ticker) column levels, a tz-naive Date index."""
    remote = remote_prices(5)
    columns = pd.MultiIndex.from_tuples([(c, ticker) for c in remote.columns],
                                        names=["Price", "Ticker"])
    return pd.DataFrame(remote.to_numpy(), index=remote.index, columns=columns)


def test_yahoo_fetch_through_a_fake_yfinance(tmp_path, monkeypatch):
    calls = []

    def fake_download(tickers, **kwargs):
        calls.append((tickers, kwargs))
        return recorded_yfinance_frame(tickers)

    module = types.ModuleType("yfinance")
    module.download = fake_download
    exceptions = types.ModuleType("yfinance.exceptions")
    exceptions.YFException = type("YFException", (Exception,), {})
    monkeypatch.setitem(sys.modules, "yfinance", module)
    monkeypatch.setitem(sys.modules, "yfinance.exceptions", exceptions)
    raw = yahoo_fetch("AAPL", pd.Timestamp("2015-01-02"), pd.Timestamp("2015-01-08"))
    (ticker, kwargs), = calls
    assert ticker == "AAPL" and kwargs["start"] == "2015-01-02"
    assert kwargs["end"] == "2015-01-09"  # yfinance's end is exclusive
    assert kwargs["auto_adjust"] is False and kwargs["progress"] is False
    (report,) = download(["AAPL"], start="2015-01-02", end="2015-01-08", store=tmp_path,
                         fetch=yahoo_fetch, source="Yahoo")
    frame, _ = read_stored("AAPL", tmp_path)
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    np.testing.assert_array_equal(frame["close"], raw[("Close", "AAPL")])


def test_without_yfinance_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yfinance", None)  # import yfinance -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "marketcast\[download\]"'):
        download(["AAPL"], store=tmp_path)
    assert not tmp_path.joinpath("AAPL.parquet").exists()


# Downloads one range of the recorded frame with a slow fetch, so two at once overlap.
CONCURRENT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from test_store import remote_prices
from marketcast.data import download

remote, go = remote_prices(), Path(sys.argv[3])
first, last = (int(v) for v in sys.argv[2].split(":"))

def slow(ticker, start, end):
    time.sleep(1.0)
    return remote.loc[start:end].copy()

while not go.exists():
    time.sleep(0.01)
download(["AAA"], start=remote.index[first].date().isoformat(),
         end=remote.index[last].date().isoformat(), store=sys.argv[1], fetch=slow, source="x")
"""


def test_two_processes_downloading_one_ticker_keep_both_rows_and_log_entries(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    go = tmp_path / "go"
    tests = str(Path(__file__).parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path / "store"), span,
                               str(go), tests], env=env, stderr=subprocess.PIPE, text=True)
             for span in ("0:99", "150:199")]
    time.sleep(1.5)  # both imported and waiting
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stderr.close()
    frame, meta = read_stored("AAA", tmp_path / "store")
    remote = remote_prices()
    assert frame.index[0] == remote.index[0] and frame.index[-1] == remote.index[199]
    assert len(frame) == 200 and len(meta["downloads"]) == 2
    assert [p.name for p in (tmp_path / "store").iterdir() if p.suffix == ".tmp"] == []


def test_stale_temporary_files_are_removed_and_foreign_metadata_refused(tmp_path, source):
    remote = source.frame
    stale = tmp_path / ".AAA.parquet.abc123.tmp"
    stale.write_bytes(b"half a file")
    download(["AAA"], start=day(remote, 0), end=day(remote, 9), store=tmp_path, fetch=source)
    assert not stale.exists()
    import pyarrow as pa

    table = pa.table({"date": pd.to_datetime(["2020-01-02"]), "close": [1.0]})
    pq.write_table(table.replace_schema_metadata({b"marketcast": b"{not json"}),
                   tmp_path / "BBB.parquet")
    with pytest.raises(DataError, match="metadata .marketcast. is not JSON; it was edited"):
        read_stored("BBB", tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="cannot write to the store .*file"):
        download(["AAA"], store=tmp_path / "file", fetch=source)
