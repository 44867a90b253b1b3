import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, long_prices, small_config

from marketcast.errors import ConfigError, DataError
from marketcast.models.windows import WindowTransform
from marketcast.pipeline.panel import load_panel, parse_tickers, pool
from marketcast.pipeline.series import load_series


def panel_config(source, tmp_path, tickers=("all",), **model):
    config = small_config(source, tmp_path / "runs", **model)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, tickers=tickers))


def test_parse_tickers():
    assert parse_tickers(("all",)) is None
    assert parse_tickers((" aapl", "MSFT", "aapl")) == ["AAPL", "MSFT"]
    with pytest.raises(DataError, match="--tickers is empty"):
        parse_tickers(("",))


def test_load_panel_skips_and_records_unusable_tickers(long_csv, tmp_path):
    config = panel_config(long_csv, tmp_path)
    panel = load_panel(config)
    assert panel.tickers == ["AAA", "BBB", "CCC"]
    assert list(panel.skipped) == ["SHORT"] and "too few" in panel.skipped["SHORT"]
    assert panel.splits["AAA"].n_train == 140 and panel.splits["AAA"].n_test == 30
    chosen = load_panel(config, ["CCC", "NOPE"])
    assert chosen.tickers == ["CCC"] and "not in" in chosen.skipped["NOPE"]
    expected = long_prices()
    np.testing.assert_allclose(chosen.series["CCC"].y, expected.loc[400:, "close"].to_numpy())
    with pytest.raises(DataError, match="no usable ticker"):
        load_panel(config, ["SHORT"])


def test_pooled_origins_stay_inside_their_ticker(long_csv, tmp_path):
    config = panel_config(long_csv, tmp_path)
    panel = load_panel(config)
    pooled = pool(panel, config)
    lookback, h = config.model.lookback, config.model.horizon
    assert pooled.Z.dtype == np.float32
    assert pooled.starts.tolist() == [0, 170, 340, 510]  # 200 rows minus 30 test rows each
    block = np.searchsorted(pooled.starts, pooled.train_cutoffs, side="right") - 1
    first_row = pooled.train_cutoffs - lookback + 1
    assert (first_row >= pooled.starts[block] + 1).all()  # after the NaN first-return row
    assert (pooled.train_cutoffs + h < pooled.starts[block + 1]).all()
    # Training targets end before validation; validation targets before the test period.
    local = pooled.train_cutoffs - pooled.starts[block]
    assert local.max() + h < 140
    val_block = np.searchsorted(pooled.starts, pooled.val_cutoffs, side="right") - 1
    val_local = pooled.val_cutoffs - pooled.starts[val_block]
    assert val_local.min() == 139 and val_local.max() + h == 169
    assert len(pooled.train_cutoffs) == 3 * (140 - 1 - lookback)
    assert not np.isnan(pooled.Z[pooled.train_cutoffs]).any()


def test_each_ticker_is_scaled_on_its_own_training_rows(long_csv, tmp_path):
    config = panel_config(long_csv, tmp_path)
    panel = load_panel(config)
    pooled = pool(panel, config)
    for k, ticker in enumerate(panel.tickers):
        y = panel.series[ticker].y
        own = WindowTransform(config.model.lookback, 1).fit(y, None, n_train=140)
        np.testing.assert_array_equal(pooled.transforms[k].scaler_.min_, own.scaler_.min_)
        rows = pooled.Z[pooled.starts[k] + 1 : pooled.starts[k + 1]]
        np.testing.assert_array_equal(rows, own.inputs(y[:170])[1:])
        train_part = rows[: 140 - 1]
        assert train_part.min() == pytest.approx(0.0) and train_part.max() == pytest.approx(1.0)


def test_perturbing_a_tickers_test_rows_changes_nothing_pooled(tmp_path):
    frame = long_prices()
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    frame.to_csv(clean, index=False)
    bbb_test = frame.index[frame["Name"] == "BBB"][170:]
    frame.loc[bbb_test, ["close", "open"]] *= 50.0
    frame.to_csv(dirty, index=False)
    a = pool(load_panel(panel_config(clean, tmp_path)), panel_config(clean, tmp_path))
    b = pool(load_panel(panel_config(dirty, tmp_path)), panel_config(dirty, tmp_path))
    # Pooled transforms are in ticker order: AAA, BBB, CCC.
    for k in range(3):
        np.testing.assert_array_equal(a.transforms[k].scaler_.min_, b.transforms[k].scaler_.min_)
        np.testing.assert_array_equal(a.transforms[k].scaler_.range_,
                                      b.transforms[k].scaler_.range_)
    np.testing.assert_array_equal(a.Z, b.Z)
    np.testing.assert_array_equal(a.train_cutoffs, b.train_cutoffs)
    # The same change inside BBB's training rows does move its scaler (the test can fail).
    frame = long_prices()
    frame.loc[frame.index[frame["Name"] == "BBB"][100:140], "close"] *= 50.0
    frame.to_csv(dirty, index=False)
    c = pool(load_panel(panel_config(dirty, tmp_path)), panel_config(dirty, tmp_path))
    assert not np.array_equal(a.transforms[1].scaler_.range_, c.transforms[1].scaler_.range_)
    np.testing.assert_array_equal(a.transforms[0].scaler_.range_, c.transforms[0].scaler_.range_)


@pytest.mark.skipif(not (SHARED_DATA / "all_stocks_5yr.csv.gz").is_file(),
                    reason="shared data not available")
def test_real_long_file(tmp_path):
    source = SHARED_DATA / "all_stocks_5yr.csv.gz"
    config = panel_config(source, tmp_path, tickers=("AAPL", "MSFT", "ZZZZ"), lookback=60)
    panel = load_panel(config, parse_tickers(config.data.tickers))
    assert panel.tickers == ["AAPL", "MSFT"] and list(panel.skipped) == ["ZZZZ"]
    aapl = panel.series["AAPL"]
    assert len(aapl.y) == 1259
    assert aapl.y[0] == pytest.approx(67.8542) and pd.Timestamp("2013-02-08") == aapl.dates[0]
    pooled = pool(panel, config)
    assert len(pooled.Z) == 2 * panel.splits["AAPL"].test_start


def test_load_panel_date_bounds(long_csv, tmp_path):
    config = panel_config(long_csv, tmp_path)
    later = dataclasses.replace(config, data=dataclasses.replace(config.data, start="2015-03-02",
                                                                 end="2015-09-30"))
    panel = load_panel(later)
    for one in panel.series.values():
        assert one.dates[0] == pd.Timestamp("2015-03-02")
        assert one.dates[-1] == pd.Timestamp("2015-09-30")
    # refused with the settings, before any data is read
    with pytest.raises(ConfigError, match=r"--start \(data.start\) 'soon' is not a date"):
        dataclasses.replace(config, data=dataclasses.replace(config.data, start="soon"))


def test_ticker_names_that_read_as_missing_are_kept(tmp_path):
    # Nasdaq's "NA" and a literal "NULL" are tickers, not missing values; a row with an
    # empty ticker is recorded, not dropped silently. Missing prices still read as NaN.
    frame = long_prices(("NA", "NULL", "AAA"))
    frame.loc[frame.index[-1], "Name"] = ""
    frame.loc[frame.index[5], "volume"] = None
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    panel = load_panel(panel_config(path, tmp_path))
    assert panel.tickers == ["NA", "NULL", "AAA"]
    assert "1 rows" in panel.skipped["(no ticker)"]
    raw = pd.read_csv(path, keep_default_na=False, na_values={"volume": [""]})
    assert raw["volume"].isna().sum() == 1 and raw["Name"].iloc[-1] == ""
    np.testing.assert_allclose(panel.series["NA"].y, raw.loc[raw["Name"] == "NA", "close"])


def test_panel_series_equal_single_ticker_loads(tmp_path, caplog):
    # Derived features, newest-first rows: each ticker of the panel is what `run --ticker`
    # would read, and the per-ticker notes are said once for all tickers.
    path = tmp_path / "long.csv"
    long_prices().iloc[::-1].to_csv(path, index=False)
    config = panel_config(path, tmp_path)
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, features=("rsi14", "volume")))
    with caplog.at_level("WARNING", logger="marketcast"):
        panel = load_panel(config)
    for ticker in ("AAA", "CCC"):
        one = dataclasses.replace(config.data, ticker=ticker, tickers=())
        _, alone = load_series(dataclasses.replace(config, data=one))
        got = panel.series[ticker]
        assert got.feature_names == ("close", "rsi14", "volume")
        pd.testing.assert_index_equal(got.dates, alone.dates)
        np.testing.assert_array_equal(got.y, alone.y)
        np.testing.assert_array_equal(got.X, alone.X)
    warm = [r for r in caplog.records if "warm-up" in r.getMessage()]
    sorted_notes = [r for r in caplog.records if "newest-first" in r.getMessage()]
    panel_notes = warm[:1] + sorted_notes[:1]
    assert all("(and 2 more tickers)" in r.getMessage() for r in panel_notes)
    assert len(panel_notes) == 2
