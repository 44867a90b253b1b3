"""A Parquet file or store file is input: its ``marketcast`` metadata and its columns are
checked field by field, and a violation is one error line naming the file and the field."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import synthetic_prices
from test_cli import FAST, assert_one_line_error, cli

from marketcast.data.parquet import MAX_LOG, MAX_META_BYTES, read_parquet, write_parquet
from marketcast.data.store import download, read_stored
from marketcast.errors import DataError

LOG = {"at": "2025-01-31T14:25:01+00:00", "start": "2015-01-02", "end": "2016-04-01",
       "rows_added": 320, "refetched": False}
META = {"format_version": 1, "ticker": "AAA", "source": "fake", "downloads": [LOG]}


def store_frame(n=320) -> pd.DataFrame:
    raw = synthetic_prices(n)
    frame = raw.drop(columns="Date").set_axis(pd.DatetimeIndex(raw["Date"], name="date"))
    frame.columns = ["open", "high", "low", "close", "adj_close", "volume"][:frame.shape[1]]
    return frame.astype(np.float64)


def write_raw(path, frame, meta) -> None:
    """A Parquet file as pyarrow writes it, metadata as given (bytes or JSON)."""
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    if meta is not None:
        value = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        table = table.replace_schema_metadata({b"marketcast": value})
    pq.write_table(table, path)


def with_log(**changes):
    return {**META, "downloads": [{**LOG, **changes}]}


BAD_META = [
    (b"{not json", "metadata 'marketcast' is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "metadata 'marketcast' is not JSON"),
    (b" " * (MAX_META_BYTES + 1), f"more than {MAX_META_BYTES}"),
    ([1, 2], "metadata 'marketcast' must be a JSON object, not list"),
    ({**META, "extra": 1}, "has an unknown key 'extra'"),
    ({k: v for k, v in META.items() if k != "source"}, "lacks 'source'"),
    ({**META, "format_version": 2}, "format_version is 2, not 1"),
    ({**META, "format_version": True}, "format_version is True"),
    ({**META, "ticker": 5}, "ticker is 5, not a ticker symbol"),
    ({**META, "ticker": "../../etc"}, "ticker is '../../etc', not a ticker symbol"),
    ({**META, "ticker": "A" * 100_000}, "ticker is 'AAAA"),
    ({**META, "source": ["x"]}, "source is ['x'], not a name"),
    ({**META, "source": "x" * 10_000}, "source is 'xxxx"),
    ({**META, "downloads": {"a": 1}}, "downloads must be a list"),
    ({**META, "downloads": [LOG] * (MAX_LOG + 1)}, f"at most {MAX_LOG} downloads"),
    ({**META, "downloads": [5]}, "downloads[0] must be a JSON object, not int"),
    ({**META, "downloads": [{**LOG, "x": 1}]}, "downloads[0] has an unknown key 'x'"),
    (with_log(at="yesterday"), "downloads[0].at is 'yesterday', not an ISO date"),
    (with_log(start="2015-13-01"), "downloads[0].start is '2015-13-01', not an ISO date"),
    (with_log(end=20150101), "downloads[0].end is 20150101, not an ISO date"),
    (with_log(rows_added=-1), "downloads[0].rows_added is -1, not a count of rows"),
    (with_log(rows_added=1.5), "downloads[0].rows_added is 1.5"),
    (with_log(refetched="no"), "downloads[0].refetched is 'no', not true or false"),
]


@pytest.mark.parametrize(("meta", "fragment"), BAD_META,
                         ids=[f[1][:30] for f in BAD_META])
def test_metadata_that_is_not_ours_is_one_error_line(capsys, tmp_path, meta, fragment):
    path = tmp_path / "AAA.parquet"
    write_raw(path, store_frame(), meta)
    for args in (["data", "--data", str(path)], ["data", "list", "--store", str(tmp_path)]):
        code, _, err = cli(capsys, *args)
        assert_one_line_error(code, err, fragment)
        assert str(path) in err and "delete it and download it again" in err
        assert len(err) < 400  # a long value is cut, never echoed
    with pytest.raises(DataError, match="it was edited or not written by marketcast"):
        read_stored("AAA", tmp_path)
    before = path.read_bytes()
    with pytest.raises(DataError, match="it was edited or not written by marketcast"):
        download(["AAA"], store=tmp_path, fetch=lambda *a: pytest.fail("fetched"))
    assert path.read_bytes() == before  # an update never rewrites a file it cannot read


def frame_with(column, row, value):
    frame = store_frame()
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


BAD_FRAMES = [
    (frame_with("close", 5, np.inf), "column 'close' holds inf on 2015-01-09"),
    (frame_with("volume", 7, -1.0), "column 'volume' holds -1.0"),
    (frame_with("open", 3, -np.inf), "column 'open' holds -inf"),
    (store_frame().assign(note="x"), "column 'note' is not one of open, high"),
    (store_frame().drop(columns="close"), "column 'close' is missing"),
    (store_frame().astype({"volume": np.int64}), "column 'volume' holds int64 values"),
    (store_frame().iloc[::-1], "column 'date' is not strictly increasing"),
    (pd.concat([store_frame().iloc[:3], store_frame().iloc[2:]]),
     "column 'date' is not strictly increasing (2015-01-06 follows 2015-01-06)"),
    (store_frame().set_axis(store_frame().index.strftime("%Y-%m-%d").rename("date")),
     "column 'date' is missing or holds no timestamps"),
]


@pytest.mark.parametrize(("frame", "fragment"), BAD_FRAMES,
                         ids=[f[1][:30] for f in BAD_FRAMES])
def test_a_store_file_s_columns_are_checked(capsys, tmp_path, frame, fragment):
    path = tmp_path / "AAA.parquet"
    write_raw(path, frame, META)
    code, _, err = cli(capsys, "run", "--data", str(path), "--runs-dir",
                       str(tmp_path / "runs"), *FAST)
    assert_one_line_error(code, err, fragment)
    runs = tmp_path / "runs"
    assert str(path) in err and not (runs.exists() and any(runs.iterdir()))


def test_a_store_file_of_another_ticker_is_refused(tmp_path):
    write_raw(tmp_path / "AAA.parquet", store_frame(), {**META, "ticker": "BBB"})
    with pytest.raises(DataError, match="AAA.parquet: ticker is 'BBB', not AAA"):
        read_stored("aaa", tmp_path)


def test_what_the_store_writes_it_reads_back_and_it_never_writes_what_it_would_refuse(
        tmp_path):
    frame = store_frame().assign(volume=np.nan)  # a blank column stays for --fill
    write_parquet(tmp_path / "AAA.parquet", frame, META)
    back, meta = read_parquet(tmp_path / "AAA.parquet", "AAA")
    pd.testing.assert_frame_equal(back, frame, check_freq=False)
    assert meta == META
    with pytest.raises(DataError, match="close' holds -1.0 .*nothing was written"):
        write_parquet(tmp_path / "BBB.parquet", frame_with("close", 0, -1.0), META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["AAA.parquet"]

    def negative(ticker, start, end):
        return frame_with("close", 1, -5.0).loc[start:end]

    with pytest.raises(DataError, match="the source sent what the store does not keep"):
        download(["CCC"], start="2015-01-02", end="2015-02-01", store=tmp_path,
                 fetch=negative)
    assert not (tmp_path / "CCC.parquet").exists()


@pytest.mark.parametrize(("table", "fragment"), [
    (pa.table({"date": ["2015-01-02", "not a date"], "close": [1.0, 2.0]}),
     "column 'date' holds a value that is not a date"),
    (pa.table({"date": [20150102, 20150105], "close": [1.0, 2.0]}),
     "column 'date' holds int64 values, not dates"),
    (pa.table({"date": ["2015-01-02", None], "close": [1.0, 2.0]}),
     "column 'date' has missing dates"),
    (pa.table({"when": ["2015-01-02"], "close": [1.0]}), "has no date column"),
    (pa.table({"date": ["2015-01-02"], "Close": [1.0], "close": [2.0]}),
     "two columns named 'close'"),
])
def test_a_foreign_parquet_file_s_dates_and_columns(capsys, tmp_path, table, fragment):
    path = tmp_path / "prices.parquet"
    pq.write_table(table, path)
    code, _, err = cli(capsys, "data", "--data", str(path))
    assert_one_line_error(code, err, fragment)


def test_a_foreign_file_s_pandas_metadata_is_not_trusted(capsys, tmp_path):
    frame = store_frame()
    path = tmp_path / "prices.parquet"
    frame.to_parquet(path)  # the date as pandas' index, described by its metadata
    assert read_parquet(path)[1] == {}
    pd.testing.assert_frame_equal(read_parquet(path)[0], frame, check_freq=False)
    table = pq.read_table(path)
    for crafted in (b'{"index_columns": 5}', b"[" * 100_000):  # the second crashed pyarrow
        pq.write_table(table.replace_schema_metadata({b"pandas": crafted}), path)
        pd.testing.assert_frame_equal(read_parquet(path)[0], frame, check_freq=False)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not parquet PAR1")
    code, _, err = cli(capsys, "data", "--data", str(tmp_path / "bad.parquet"))
    assert_one_line_error(code, err, "cannot read")


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX modes and umask")
def test_store_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        write_parquet(tmp_path / "AAA.parquet", store_frame(), META)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "AAA.parquet").stat().st_mode) == 0o640


def test_a_parquet_file_s_size_is_checked_from_its_footer_first(capsys, tmp_path, monkeypatch):
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [1.0] for i in range(30)}), path)
    monkeypatch.setattr("marketcast.data.parquet.MAX_COLUMNS", 20)
    code, _, err = cli(capsys, "data", "--data", str(path))
    assert_one_line_error(code, err, "1 rows and 30 columns, more than the")
    monkeypatch.setattr("marketcast.data.parquet.MAX_COLUMNS", 5000)
    monkeypatch.setattr("marketcast.data.parquet.MAX_ROWS", 100)
    write_raw(tmp_path / "AAA.parquet", store_frame(), META)
    with pytest.raises(DataError, match="320 rows and 7 columns, more than the 100 rows"):
        read_parquet(tmp_path / "AAA.parquet")
