"""Bounds before work: settings, CSV shape and decompressed size are refused with one line
stating the limit, before anything heavy is allocated or looped over."""

import gzip
import itertools
import os
import re
import subprocess
import sys
import textwrap
import zlib

import pandas as pd
import pytest
from test_cli import assert_one_line_error, cli

from marketcast.config import SplitConfig, load_config
from marketcast.data import load_prices, readers
from marketcast.errors import DataError, shown
from marketcast.models.windows import split_rows


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--lookback", "10000000000", "model.lookback 10000000000 is above its limit of 10000"),
    ("--horizon", "99999999999", "model.horizon 99999999999 is above its limit of 1000"),
    ("--seed", str(2**64), f"train.seed {2**64} is above its limit of {2**32 - 1}"),
    ("--seed", "-1", "train.seed must be 0 or more"),
    ("--units", "100000", "model.units 100000 is above its limit of 4096"),
    ("--units", "2000", "make about 9.6e+07 LSTM weights, above the limit of 2e+07"),
    ("--days", "100000", "forecast.days 100000 is above its limit of 10000"),
    ("--start", "nan", "--start (data.start) 'nan' is not a date; use YYYY-MM-DD"),
    ("--test-start", "x" * 1000, "--test-start (split.test_start) 'xxxxx"),
])
def test_settings_beyond_their_limits_are_one_line(capsys, tmp_path, flag, value, message):
    code, _, err = cli(capsys, "run", flag, value, "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, message)
    assert len(err) < 300 and not (tmp_path / "runs").exists()


def test_huge_or_deep_toml_values_are_one_line(tmp_path):
    from marketcast.errors import ConfigError

    for text, message in [("[model]\nlookback = 1" + "0" * 5000 + "\n", "not valid TOML"),
                          ("[model]\nhorizon = 10000000000\n", "above its limit of 1000"),
                          ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "too deeply")]:
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message) as caught:
            load_config(path)
        assert len(str(caught.value)) < 300


def test_unquoted_toml_dates_are_accepted(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[data]\nstart = 2015-01-01\nend = 2016-06-30T00:00:00\n"
                    "[split]\ntest_start = 2016-01-04\n")
    config = load_config(path)
    assert (config.data.start, config.split.test_start) == ("2015-01-01", "2016-01-04")
    assert config.data.end == "2016-06-30T00:00:00"


def reference_minimum_rows(split, lookback, horizon, offset, n=None):
    """The definition: the first row count, counting up from ``n`` (from the least rows
    that could do), whose split is enough."""
    n = lookback + horizon + offset if n is None else n
    while True:
        n_test, n_val = round(n * split.test_fraction), round(n * split.val_fraction)
        if (n - n_val - n_test >= lookback + horizon + offset and n_test >= horizon
                and (n_val >= horizon or split.val_fraction == 0)):
            return n
        n += 1


def stated_minimum(split, lookback, horizon, offset) -> int:
    dates = pd.bdate_range("2020-01-01", periods=5)
    with pytest.raises(DataError, match="days are too few") as caught:
        split_rows(dates, split, lookback, horizon, offset)
    return int(re.search(r"needs at least (\d+)", str(caught.value)).group(1))


def test_minimum_rows_stated_equals_the_definition_and_ends_for_any_lookback():
    for val, test in [(0.15, 0.15), (0.0, 0.2), (0.45, 0.45), (0.01, 0.01), (0.0, 0.99)]:
        split = SplitConfig(val_fraction=val, test_fraction=test)
        for lookback, horizon, offset in itertools.product((5, 7, 60, 333), (1, 3, 30), (0, 1)):
            assert stated_minimum(split, lookback, horizon, offset) == \
                reference_minimum_rows(split, lookback, horizon, offset)
    # Counting up from lookback + horizon would take 4e9 steps here (the old loop hung).
    split, big = SplitConfig(), (10**10, 10**9, 1)
    # n_train is at most 0.7 n + 1: no count below (sum - 1) / 0.7 can do.
    below = int((sum(big) - 1) / (1 - split.val_fraction - split.test_fraction)) - 5
    assert stated_minimum(split, *big) == reference_minimum_rows(split, *big, n=below)


@pytest.mark.parametrize(("content", "message"), [
    (b"," * 10_000_000, "has a line over 1,048,576 bytes"),
    (b"," * 5_000_000 + b"\n1\n", "has a line over 1,048,576"),
    (b"date" + b",c" * 20_000 + b"\n", "has 20,001 columns, over the 5,000"),
])
def test_csv_shape_limits(tmp_path, content, message):
    path = tmp_path / "wide.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        load_prices(str(path))
    assert len(str(caught.value)) < 300


def test_long_lines_are_found_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE", 100)
    path = tmp_path / "p.csv"
    # Short lines, then one of 101 bytes split by the 1 MiB block edge.
    head = b"date,close\n" + b"2020-01-02,1\n" * ((1 << 20) // 13)
    path.write_bytes(head + b"9" * 101 + b"\n")
    with pytest.raises(DataError, match="has a line over 100 bytes"):
        load_prices(str(path))
    path.write_bytes(head + b"9" * 100 + b"\n")
    with pytest.raises(DataError, match="not a date|cannot read"):  # the 100 bytes are read
        load_prices(str(path))


def gzip_of(path, block: bytes, blocks: int) -> None:
    """A gzip file of ``blocks`` copies of ``block``, written without holding them all."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        for _ in range(blocks):
            fh.write(packer.compress(block))
        fh.write(packer.flush())


def test_decompressed_size_is_checked_as_it_grows(tmp_path, monkeypatch):
    path = tmp_path / "p.csv.gz"
    gzip_of(path, b"date,close\n" + b"2020-01-02,1\n" * 80_000, 4)  # 4 MB of text
    monkeypatch.setattr(readers, "MAX_BYTES", 2 << 20)
    with pytest.raises(DataError, match="is over 2 MB once decompressed"):
        load_prices(str(path))
    plain = tmp_path / "p.csv"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    with pytest.raises(DataError, match=r"p.csv is over 2 MB, the most"):
        load_prices(str(plain))


BOMB = """
import resource, sys
from marketcast.data import load_prices, readers
from marketcast.errors import DataError
readers.MAX_BYTES = int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_prices(sys.argv[1])
except DataError as exc:
    print(str(exc))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # KiB on Linux
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
@pytest.mark.parametrize(("block", "message"), [
    (b"\0" * (1 << 20), "is a binary file once decompressed"),
    (b"1," * (1 << 19), "has a line over"),
    (b"date,close\n" + b"2020-01-02,1\n" * 80_000, "is over 64 MB once decompressed"),
])
def test_gzip_bombs_are_refused_in_little_memory(tmp_path, block, message):
    path = tmp_path / "bomb.csv.gz"
    gzip_of(path, block, (256 << 20) // len(block))  # 256 MiB once decompressed
    assert path.stat().st_size < 2 << 20
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(BOMB), str(path),
                          str(64 << 20)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": "src", "OMP_NUM_THREADS": "1"})
    error, grown_kib = out.stdout.splitlines()
    assert message in error, out.stderr
    # At most the 64 MB cap and a block are held; the old reader held all 256 MiB and
    # then its decoded copy (over 512 MB).
    assert int(grown_kib) < 150 * 1024


def test_echoed_values_are_cut():
    assert shown("x" * 10_000) == "'" + "x" * 78 + "\u2026"
    assert len(shown("x" * 10_000)) == 80
    assert shown("ok") == "'ok'" and shown("\x1b[31m") == "'\\x1b[31m'"
    assert shown(10**5000).startswith("<an integer of")


HANG = """
import sys
import pandas as pd
from marketcast.config import SplitConfig
from marketcast.errors import DataError
from marketcast.models.windows import split_rows
try:
    split_rows(pd.bdate_range("2020-01-01", periods=5), SplitConfig(), 10**10, 10**9, 1)
except DataError as exc:
    print(f"error: {exc}")
"""


def test_inputs_that_hung_end_with_one_line_under_a_time_limit(tmp_path):
    """Each of these once hung (a loop counting to 4e9, pandas on a 10 MB line); each runs
    in its own process, killed after 60 s."""
    commas = tmp_path / "commas.csv"
    commas.write_bytes(b"," * 10_000_000)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src"),
           "OMP_NUM_THREADS": "1"}
    for args, message in [
        (["-m", "marketcast", "run", "--lookback", "10000000000", "--runs-dir",
          str(tmp_path / "runs")], "model.lookback 10000000000 is above its limit"),
        (["-m", "marketcast", "data", "--data", str(commas)], "has a line over 1,048,576"),
        (["-c", HANG], "days are too few"),
    ]:
        out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                             timeout=60, env=env)  # TimeoutExpired fails the test
        line = (out.stderr or out.stdout).strip()
        assert line.startswith("error: ") and "\n" not in line and message in line, line
        assert "Traceback" not in out.stderr


TEN_MB = "x" * 10_000_000


@pytest.mark.parametrize("args", [
    *(["run", flag, TEN_MB] for flag in (
        "--name", "--start", "--target", "--features", "--tickers", "--data", "--runs-dir",
        "--config", "--fill", "--interval-method")),
    ["backtest", "--models", TEN_MB], ["backtest", "--rule", TEN_MB],
    ["forecast", "--run", TEN_MB], ["data", "download", TEN_MB], ["data", "--data", TEN_MB],
], ids=lambda args: " ".join(a for a in args if a != TEN_MB))
def test_a_10_mb_value_is_cut_in_the_error_line(capsys, tmp_path, args):
    """Ours and click's messages alike: the value is cut, the line stays one line."""
    runs = [] if args[0] not in ("run", "backtest") or "--runs-dir" in args else \
        ["--runs-dir", str(tmp_path / "runs")]
    code, _, err = cli(capsys, *args, *runs)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err[:200]
    assert len(err) < 600 and "x" * 300 not in err.lower()


def test_a_300_character_name_is_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--name", "n" * 300, "--runs-dir", str(tmp_path / "r"))
    assert_one_line_error(code, err, "must be a plain folder name")
    assert len(err) < 400 and not (tmp_path / "r").exists()


HARD_LIMIT = """
import resource, sys
from marketcast.data import load_prices, readers
from marketcast.errors import DataError
readers.MAX_BYTES = 64 << 20
with open("/proc/self/statm") as fh:  # pages of address space in use, libraries loaded
    used = int(fh.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (200 << 20), resource.RLIM_INFINITY))
try:
    load_prices(sys.argv[1])
except DataError as exc:
    print(f"error: {exc}")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
def test_a_gzip_bomb_is_refused_under_a_hard_memory_limit(tmp_path):
    """256 MiB of text once decompressed, read with 200 MiB of address space to spare: the
    reader stops at its 64 MB cap, never holding the whole text (a MemoryError fails)."""
    path = tmp_path / "bomb.csv.gz"
    gzip_of(path, b"date,close\n" + b"2020-01-02,1\n" * 80_000, 256)
    out = subprocess.run([sys.executable, "-c", HARD_LIMIT, str(path)], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src"),
                              "OMP_NUM_THREADS": "1"})
    assert out.stdout.startswith("error: ") and "is over 64 MB once decompressed" in \
        out.stdout, out.stderr[-500:]
    # The same limit is too small for the text itself: it does bite.
    whole = subprocess.run([sys.executable, "-c", HARD_LIMIT.replace(
        "load_prices(sys.argv[1])", "bytearray(300 << 20)"), str(path)],
        capture_output=True, text=True, timeout=120)
    assert "MemoryError" in whole.stderr


def test_a_toml_nested_100_000_deep_is_one_line_at_the_command_line(capsys, tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    code, _, err = cli(capsys, "run", "--config", str(path), "--runs-dir", str(tmp_path / "r"))
    assert_one_line_error(code, err, "too deeply")
    assert len(err) < 400 and not (tmp_path / "r").exists()
