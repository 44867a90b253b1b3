"""Hypothesis strategies for messy price files, and the checks every outcome must pass.

Shared by ``tests/test_fuzz.py`` (a few hundred cases in CI) and
``benchmarks/fuzz_loaders.py`` (thousands, on demand). A file starts as a plausible price
table in one of the layouts we read (Yahoo, Stooq, generic, long multi-ticker) and is then
damaged the way real files are: columns dropped, added, renamed or duplicated; cells
replaced by text, huge, negative, zero, NaN or empty values; dates duplicated, shuffled,
reversed or unreadable; other delimiters, line endings, encodings and a BOM; gzip;
truncation. Some files are random bytes.
"""

from __future__ import annotations

import collections
import gzip
import io
import math
import random
import re
import tempfile
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from marketcast.cli import main
from marketcast.data import load_prices
from marketcast.errors import ArtifactError, MarketcastError
from marketcast.runs.folder import check_run

LAYOUTS = {
    "yahoo": ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"],
    "stooq": ["<TICKER>", "<PER>", "<DATE>", "<TIME>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>",
              "<VOL>", "<OPENINT>"],
    "generic": ["Day", "Price", "Close"],
    "long": ["date", "Name", "close", "volume"],
}
NAMES = ["Date", "date", " DATE ", "Timestamp", "time", "When", "Close", "close", "CLOSE",
         "Adj Close", "adj-close", "Open", "Volume", "Name", "ticker", "Symbol", "price", "",
         "Unnamed: 0", "Schlusskurs", "收盘", "close ", "<CLOSE>", "a,b", 'q"uote']
# Formats of injected dates; the table itself writes ISO, YYYYMMDD or US dates.
DATE_FORMATS = ["%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S+05:00", "%d.%m.%Y", "%b %d, %Y"]
JUNK_DATES = ["", "NaN", "2020-02-30", "0000-00-00", "99999999", "1677-01-01", "2262-05-01",
              "9999-12-31", "yesterday", "2020-13-01", "  ", "1e10", "-1"]
JUNK_NUMBERS = ["", "NaN", "nan", "null", "N/A", "-", "1,234.5", "1.234,5", "1e400", "-1e400",
                "1e308", "-1e308", "1e-320", "0", "-0", "-5", "twelve", "$12", "12%", " 7 ",
                "0x10", "inf", "-inf", "Infinity", "1" * 40, "TRUE", "\u00a012"]
DELIMITERS = {",": 60, ";": 10, "\t": 10, "|": 8, " ": 6, ":": 6}
ENCODINGS = {"utf-8": 55, "utf-8-sig": 10, "utf-16": 8, "utf-16-le": 3, "utf-32": 3,
             "latin-1": 8, "cp1252": 8, "shift_jis": 5}

dates = st.one_of(
    st.dates(min_value=pd.Timestamp("1700-01-01").date(),
             max_value=pd.Timestamp("2200-12-31").date()).flatmap(
        lambda d: st.sampled_from(DATE_FORMATS).map(d.strftime)),
    st.sampled_from(JUNK_DATES),
    st.text(max_size=12),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=1e-3, max_value=1e6).map(lambda x: f"{x:.4f}"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(JUNK_NUMBERS),
    st.text(max_size=8),
)


# Structure is drawn from a plain Random seeded by hypothesis: realistic weights (most files
# are nearly fine, so success paths run too) that hypothesis' edge-seeking Random would skew.
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def pick(rnd: random.Random, weights: dict):
    """One key of ``weights``, drawn with those relative weights."""
    return rnd.choices(list(weights), weights=list(weights.values()))[0]


@st.composite
def price_tables(draw) -> list[list[str]]:
    """A header row and data rows of strings: a plausible table, then damaged.

    Bad cells come from hypothesis' own edge-seeking strategies.
    """
    rnd = random.Random(draw(seeds))
    columns = list(LAYOUTS[rnd.choice(sorted(LAYOUTS))])
    for _ in range(pick(rnd, {0: 70, 1: 15, 2: 10, 3: 5})):
        action = rnd.choice(["drop", "add", "rename", "duplicate"])
        if action == "drop" and columns:
            columns.pop(rnd.randrange(len(columns)))
        elif action == "add":
            columns.insert(rnd.randint(0, len(columns)), draw(st.sampled_from(NAMES)))
        elif action == "rename" and columns:
            columns[rnd.randrange(len(columns))] = draw(st.sampled_from(NAMES))
        elif action == "duplicate" and columns:
            columns.append(rnd.choice(columns))
    is_date = [name.strip("<> ").lower() in ("date", "day", "timestamp", "time")
               for name in columns]

    n = rnd.choice([0, 1, 2, 3]) if rnd.random() < 0.1 else rnd.randint(20, 90)
    start = pd.Timestamp(pick(rnd, {1950: 85, 1600: 5, 1880: 5, 2190: 5}), 1, 1)
    if rnd.random() < 0.8:  # otherwise New Year's Day, a holiday
        start += pd.Timedelta(days=rnd.randint(0, 80 * 365))
    days = pd.date_range(start, periods=n, freq=pick(rnd, {"B": 80, "D": 15, "W": 5}))
    scale = pick(rnd, {1e-300: 1, 1e-45: 2, 1e-6: 4, 1.0: 20, 100.0: 60, 1e12: 6, 1e45: 2,
                       1e99: 2, 1e150: 1, 1e307: 2})
    noise = np.random.default_rng(rnd.getrandbits(32))
    walk = np.cumsum(0.02 * noise.standard_normal(n))
    date_format = pick(rnd, {"%Y-%m-%d": 70, "%Y%m%d": 20, "%m/%d/%Y": 10})
    ticker = rnd.choice(["AAPL", "SPY.US", "", "MSFT"])
    rows = []
    for i in range(n):
        row = []
        for name, date_column in zip(columns, is_date, strict=True):
            key = name.strip("<> ").lower()
            if date_column:
                row.append(days[i].strftime(date_format))
            elif key in ("ticker", "name", "symbol"):
                row.append(ticker)
            elif key == "per":
                row.append("D")
            else:
                row.append(repr(scale * math.exp(walk[i] + 0.01 * noise.standard_normal())))
        rows.append(row)

    for _ in range(pick(rnd, {0: 60, 1: 20, 2: 10, 6: 10}) if n and columns else 0):
        i, j = rnd.randrange(n), rnd.randrange(len(columns))
        rows[i][j] = draw(dates if is_date[j] else numbers)
    if rows:
        order = pick(rnd, {"sorted": 60, "reversed": 15, "shuffled": 10, "duplicated": 15})
        if order == "reversed":
            rows.reverse()
        elif order == "shuffled":
            rnd.shuffle(rows)
        elif order == "duplicated":
            rows.insert(rnd.randint(0, len(rows)), list(rnd.choice(rows)))
        if rnd.random() < 0.05:  # ragged: a row with a cell too many or too few
            i = rnd.randrange(len(rows))
            rows[i] = rows[i][:-1] if rnd.random() < 0.5 else [*rows[i], "extra"]
    return [columns, *rows]


@st.composite
def price_files(draw) -> bytes:
    """The bytes of a messy price file (sometimes random bytes)."""
    rnd = random.Random(draw(seeds))
    if rnd.random() < 0.08:
        return draw(st.binary(max_size=400))
    table = draw(price_tables())
    sep = pick(rnd, DELIMITERS)
    quote = rnd.random() < 0.2
    newline = pick(rnd, {"\n": 70, "\r\n": 25, "\r": 5})
    lines = [sep.join(f'"{c}"' if quote else c for c in row) for row in table]
    text = newline.join(lines) + (newline if rnd.random() < 0.7 else "")
    data = text.encode(pick(rnd, ENCODINGS), errors="replace")
    if rnd.random() < 0.05:
        data = data[: rnd.randint(0, len(data))]  # truncated
    if rnd.random() < 0.1:
        data = gzip.compress(data, mtime=0)
    return data


@st.composite
def load_options(draw) -> dict:
    """Keyword arguments of ``load_prices``: mostly the defaults, sometimes odd ones."""
    rnd = random.Random(draw(seeds))
    return {
        "target": pick(rnd, {"close": 75, "adj_close": 10, "price": 10, "open": 5}),
        "features": pick(rnd, {("close",): 80, ("close", "volume"): 15, ("open",): 5}),
        "fill": pick(rnd, {"none": 60, "ffill": 20, "drop": 20}),
        "ticker": pick(rnd, {None: 92, "AAPL": 4, "spy.us": 4}),
        "start": pick(rnd, {None: 88, "2000-01-01": 6, "someday": 3, "1600-01-01": 3}),
        "end": pick(rnd, {None: 92, "2020-12-31": 6, "": 2}),
        "date_column": pick(rnd, {None: 92, "Date": 4, "day": 2, "missing": 2}),
    }


def outcome(exc: BaseException | None) -> str:
    """A short label for counting: ``ok`` or ``DataError: <first words>``."""
    if exc is None:
        return "ok"
    # Paths, names, values and numbers vary; the leading words say what went wrong.
    gist = re.sub(r"\([^)]*\)?|'[^']*'|\S*[\d/\\]\S*", "", str(exc).split(";")[0])
    return f"{type(exc).__name__}: {' '.join(gist.split()[:7])}"


def check_error(exc: MarketcastError) -> None:
    """Our errors carry a one-line message that says something."""
    message = str(exc)
    assert message.strip(), f"empty message from {type(exc).__name__}"
    assert "\n" not in message, f"multi-line message: {message!r}"


def check_contract(frame: pd.DataFrame, target: str, features) -> None:
    """A frame returned by load_prices satisfies the data contract."""
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "date"
    assert frame.index.tz is None
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert len(frame) > 0
    for name in dict.fromkeys([target, *features]):
        values = frame[name].to_numpy()
        assert values.dtype == np.float64
        assert all(math.isfinite(v) for v in values), name
    assert (frame[target].to_numpy() > 0).all()


# `marketcast run` small enough to take about a second when the data are good; one-day
# forecasts, so that extra features never need future values.
TINY_RUN = ["--lookback", "2", "--layers", "1", "--units", "2", "--epochs", "2",
            "--batch-size", "16", "--patience", "2", "--days", "1"]


def try_loader(data: bytes, options: dict, folder: Path) -> str:
    """Load ``data`` with ``options``; return the outcome, failing on anything but success
    (satisfying the data contract) or one of our errors (with a one-line message)."""
    path = folder / "prices.csv"
    path.write_bytes(data)
    try:
        with redirect_stderr(io.StringIO()):  # notes, once the CLI has set up its handler
            frame = load_prices(str(path), **options)
    except MarketcastError as exc:
        check_error(exc)
        return outcome(exc)
    check_contract(frame, options["target"], options["features"])
    return "ok"


@st.composite
def run_flags(draw) -> list[str]:
    """Model flags for ``marketcast run``, on top of :data:`TINY_RUN`."""
    rnd = random.Random(draw(seeds))
    flags = pick(rnd, {(): 70, ("--target-transform", "level"): 15,
                       ("--horizon", "2", "--days", "2"): 10, ("--val-fraction", "0"): 5})
    return list(flags)


def try_cli(command: str, data: bytes, options: dict, folder: Path,
            flags: list[str] = ()) -> str:
    """Run ``marketcast data`` or ``marketcast run`` (with extra ``flags``) in-process on
    ``data``; return the outcome, failing unless it exits 0, or 2 with one ``error:`` line
    and no traceback."""
    path, runs = folder / "prices.csv", folder / "runs"
    path.write_bytes(data)
    args = [command, "--data", str(path), *cli_flags(command, options)]
    if command == "run":
        args += ["--runs-dir", str(runs), *TINY_RUN, *flags]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as shown:
        # What a user sees: every warning but deprecations, each time (not once per process).
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
    assert not shown, f"warnings on stderr: {[str(w.message) for w in shown]}"
    lines = err.getvalue().splitlines()
    visible = sorted(p for p in runs.glob("*") if not p.name.startswith("."))
    # Nothing but our notes on stderr: no warnings from libraries, no tracebacks.
    assert all(line.startswith("note: ") for line in lines[:-1]), err.getvalue()
    if code == 0:
        assert not lines or lines[-1].startswith("note: "), err.getvalue()
        if command == "run":
            assert len(visible) == 1, visible
            check_run(visible[0])
        return "ok"
    assert code == 2, (code, err.getvalue())
    assert lines and lines[-1].startswith("error: "), err.getvalue()
    assert visible == [], f"a failed run left {visible}"
    for hidden in runs.glob(".*"):
        try:
            check_run(hidden)
        except ArtifactError:
            continue
        raise AssertionError(f"{hidden} loads as a complete run")
    return "exit 2: " + outcome(MarketcastError(lines[-1][len("error: "):])).split(": ", 1)[1]


def cli_flags(command: str, options: dict) -> list[str]:
    flags = ["--target", options["target"]]
    if command == "run":
        flags += ["--features", ",".join(options["features"]), "--fill", options["fill"]]
    for key in ("ticker", "start", "end", "date_column"):
        if options[key] is not None:
            flags += [f"--{key.replace('_', '-')}", options[key]]
    return flags


# Share of cases per target in :func:`fuzz`: the loader is fast, a good `run` takes a second.
TARGETS = ["loader"] * 7 + ["data"] * 2 + ["run"]


def fuzz(cases: int, seed_value: int) -> tuple[collections.Counter, dict[str, str]]:
    """Run ``cases`` seeded cases over :data:`TARGETS` without stopping at a failure.

    Returns outcome counts (``"<target> <outcome>"``) and one report per distinct crash
    (``CRASH <exception> at <file>:<line>``: anything but success or one of our errors).
    """
    counts: collections.Counter = collections.Counter()
    crashes: dict[str, str] = {}

    @seed(seed_value)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=price_files(), options=load_options(), target=st.sampled_from(TARGETS),
           flags=run_flags())
    def one_case(data, options, target, flags):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                if target == "loader":
                    result = try_loader(data, options, Path(tmp))
                else:
                    result = try_cli(target, data, options, Path(tmp), flags)
            # A fuzz harness must survive every failure to count it.
            except Exception as exc:  # noqa: BLE001
                where = traceback.extract_tb(exc.__traceback__)[-1]
                result = f"CRASH {type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
                if isinstance(exc, AssertionError):  # a broken promise: say which
                    result += f" ({str(exc).splitlines()[0][:70]})" if str(exc) else ""
                crashes.setdefault(result, f"{target} {options} {flags}\nfile: {data[:300]!r}\n"
                                   + "".join(traceback.format_exception(exc)))
        counts[f"{target:6} {result}"] += 1

    one_case()
    return counts, crashes
