"""Property-based tests: messy files end in success or our own one-line error, never a crash.

The strategies and checks live in ``messy_csv.py``; ``benchmarks/fuzz_loaders.py`` runs
thousands of cases on demand. Here a few hundred run, derandomized so CI is repeatable.
"""

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import synthetic_prices
from hypothesis import HealthCheck, given, settings
from messy_csv import fuzz, load_options, price_files, run_flags, try_cli, try_loader
from test_cli import cli

from marketcast.data import load_prices, summarize
from marketcast.errors import DataError

CI = settings(derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(CI, max_examples=250)
@given(data=price_files(), options=load_options())
def test_loader_gives_contract_frame_or_data_error(data, options):
    with tempfile.TemporaryDirectory() as tmp:
        try_loader(data, options, Path(tmp))


@settings(CI, max_examples=40)
@given(data=price_files(), options=load_options())
def test_data_command_exits_0_or_one_error_line(data, options):
    with tempfile.TemporaryDirectory() as tmp:
        try_cli("data", data, options, Path(tmp))


@settings(CI, max_examples=25)
@given(data=price_files(), options=load_options(), flags=run_flags())
def test_run_command_exits_0_or_one_error_line_and_no_run_folder(data, options, flags):
    with tempfile.TemporaryDirectory() as tmp:
        try_cli("run", data, options, Path(tmp), flags)


def test_fuzz_cases_reach_both_success_and_many_errors():
    counts, crashes = fuzz(cases=120, seed_value=0)
    assert crashes == {}
    assert sum(counts.values()) == 120
    ok = sum(n for label, n in counts.items() if label.endswith(" ok"))
    kinds = {label for label in counts if not label.endswith(" ok")}
    assert ok >= 20 and len(kinds) >= 10, counts  # the strategies are not vacuous


# Regressions the fuzzer found: each crashed with a non-marketcast exception before.

def test_header_only_file_with_end_date(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Date,Close\n")
    with pytest.raises(DataError, match="no rows"):
        load_prices(str(path), end="2020-12-31")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_with_bom_are_read(tmp_path, encoding):
    raw = synthetic_prices(30)
    plain, wide = tmp_path / "plain.csv", tmp_path / "wide.csv"
    raw.to_csv(plain, index=False)
    wide.write_bytes(plain.read_text().encode(encoding))  # the codec writes the BOM
    pd.testing.assert_frame_equal(load_prices(str(wide)), load_prices(str(plain)))


def test_data_starting_on_new_years_day(capsys, tmp_path):
    raw = synthetic_prices(30)
    raw["Date"] = pd.bdate_range("2016-01-01", periods=30).strftime("%Y-%m-%d")
    path = tmp_path / "p.csv"
    raw.to_csv(path, index=False)
    code, _, err = cli(capsys, "data", "--data", str(path))
    assert code == 0, err
    # Every NYSE session is there, plus two holidays (New Year's Day, Martin Luther King Day).
    assert summarize(load_prices(str(path)))["missing_nyse_sessions"] == 0


@pytest.mark.parametrize("start", ["1700-01-04", "2261-01-04"])
def test_dates_outside_the_nyse_calendar_are_a_data_error(tmp_path, start):
    raw = synthetic_prices(30)
    raw["Date"] = pd.bdate_range(start, periods=30).strftime("%Y-%m-%d")
    path = tmp_path / "p.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"dates run from {start} to .*, outside the NYSE "
                       r"calendar \(1886 to 2199\)"):
        load_prices(str(path))


@pytest.mark.parametrize("scale", [1e-60, 1e60, 1e306])
def test_prices_too_large_or_small_for_error_statistics_are_a_data_error(tmp_path, scale):
    raw = synthetic_prices(30)
    raw["Close"] *= scale  # 1e306 crashed the plots; 1e99 and 1e-300 gave NaN statistics
    path = tmp_path / "p.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"close runs from .* to .*; marketcast handles prices "
                       r"between 1e-50 and 1e\+50"):
        load_prices(str(path))
    assert load_prices(str(path), target="open", features=["open"])["open"].max() < 1e3
