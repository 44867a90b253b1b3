"""Mutated run folders and checkpoints, and the checks every load of them must pass.

Shared by ``tests/test_fuzz_artifacts.py`` (a few dozen cases per target in CI) and
``benchmarks/fuzz_loaders.py`` (thousands, on demand). :func:`build_fixtures` trains three
tiny folders once: a run of one series, a global model of three tickers, and a run stopped
after its first epoch (a checkpoint to resume). Each case copies one of them, damages one
file the way edits, truncation and bit rot do (JSON values replaced by other types, huge,
negative or NaN numbers, lists of the wrong length, keys dropped, added or renamed, deep
nesting, truncation, byte flips; safetensors headers with other shapes, dtypes and offsets,
NaN or infinite weights, truncated data) and loads the folder twice:

- ``kept``: the manifest (or the checkpoint's recorded sha256) is left alone; any change
  must be refused by that check;
- ``resealed``: the manifest is recomputed, as anyone editing a folder can; the load must be
  refused by the schema checks, or succeed with finite forecasts.

``checkpoint.json`` and ``session.json`` have no recorded sha256: they are loaded once
(``unsigned``). Outcomes: ``ok``, ``error`` (one of our errors, one line), ``crash``
(anything else), ``hang`` (counted by the harness of :mod:`fuzz_workers`).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import shutil
import struct
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout, suppress
from pathlib import Path

import numpy as np
import pandas as pd

# What each target damages, in which fixture folder, and how it is loaded.
TARGETS = ("model_json", "weights", "metrics_json", "config_toml", "checkpoint_state",
           "checkpoint_json", "session_json", "store_parquet")
HOSTILE = [None, True, False, "", "x", "NaN", "2020-02-30", "9999-12-31", "-0001-01-01",
           0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 10**400, 1e308, -1e308, 1e-320, 5e-324,
           float("nan"), float("inf"), float("-inf"), 0.5, -0.0, [], {}, [None], [1e308],
           {"a": 1}, "a" * 100_000, "\x00\u202e", "state-0001.safetensors", "../../x"]


# ---- fixtures ---------------------------------------------------------------------------

def build_fixtures(root: Path) -> dict[str, Path]:
    """Train the three folders every case copies (a few seconds); return their paths."""
    import dataclasses

    from conftest import long_prices, small_config, synthetic_prices

    from marketcast import api

    root = Path(root)
    synthetic_prices(160).to_csv(root / "prices.csv", index=False)
    long_prices(n=160).to_csv(root / "long.csv", index=False)
    tiny = {"lookback": 5, "layers": 1, "units": 4}
    config = small_config(root / "prices.csv", root / "runs", **tiny)
    one = dataclasses.replace(config, train=dataclasses.replace(config.train, max_epochs=1),
                              output=dataclasses.replace(config.output, name="r"))
    api.run(one)
    many = dataclasses.replace(
        small_config(root / "long.csv", root / "runs", **tiny),
        data=dataclasses.replace(config.data, source=str(root / "long.csv"),
                                 tickers=("AAA", "BBB", "CCC")),
        train=dataclasses.replace(config.train, max_epochs=1),
        output=dataclasses.replace(config.output, name="g"))
    api.run_global(many)
    stopped = dataclasses.replace(config, train=dataclasses.replace(config.train, max_epochs=2),
                                  output=dataclasses.replace(config.output, name="s",
                                                             runs_dir=str(root / "ck")))

    def stop(log, max_epochs):
        raise KeyboardInterrupt

    with suppress(KeyboardInterrupt):
        api.run(stopped, callback=stop)
    (root / "stopped.json").write_text(json.dumps(stopped.to_dict()))
    from marketcast.data.store import write_parquet

    raw = synthetic_prices(160)
    frame = raw.drop(columns="Date").set_axis(pd.DatetimeIndex(raw["Date"]), axis=0)
    frame.columns = ["open", "high", "low", "close", "adj_close", "volume"]
    frame = frame.astype("float64")  # the store keeps floats only
    write_parquet(root / "store" / "AAA.parquet", frame, {
        "format_version": 1, "ticker": "AAA", "source": "yahoo", "downloads": [
            {"at": "2024-01-02T10:00:00+00:00", "start": "2015-01-02", "end": "2015-08-20",
             "rows_added": 160, "refetched": False}]})
    return fixture_paths(root)


def fixture_paths(root: Path) -> dict[str, Path]:
    root = Path(root)
    return {"run": root / "runs" / "r", "global": root / "runs" / "g",
            "checkpoints": root / "ck", "stopped": root / "stopped.json",
            "prices": root / "prices.csv", "store": root / "store"}


# ---- mutations --------------------------------------------------------------------------

def hostile(rnd: random.Random):
    if rnd.random() < 0.15:
        return rnd.choice([rnd.uniform(-1e6, 1e6), rnd.randint(-10**6, 10**6),
                           "".join(rnd.choice("0123456789-:.Tabc ") for _ in range(10))])
    value = rnd.choice(HOSTILE)
    return json.loads(json.dumps(value)) if isinstance(value, list | dict) else value


def pick_node(rnd: random.Random, value, path=()):
    """A random path into a JSON value: descends while it can, stopping now and then."""
    while isinstance(value, dict | list) and value and rnd.random() < 0.8:
        key = rnd.choice(list(value)) if isinstance(value, dict) else rnd.randrange(len(value))
        path, value = (*path, key), value[key]
    return path, value


def set_at(doc, path, value):
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def mutate_value(rnd: random.Random, value):
    """One structural edit of a JSON value."""
    if isinstance(value, bool) or value is None:
        return hostile(rnd)
    if isinstance(value, int | float):
        op = rnd.randrange(5)
        if op == 0:
            factor = rnd.choice([-1, 0, 10, 1e10, 1e-10, 1e300, 1 + 1e-12])
            return value * factor if abs(value) < 1e300 else value * int(factor)
        if op == 1 and isinstance(value, int):
            return value + rnd.choice([-2, -1, 1, 2, 1000])
        if op == 2:
            return str(value)
        return hostile(rnd)
    if isinstance(value, str):
        return rnd.choice([value + "x", value[:-1], value.upper(), value[::-1], "",
                           value.replace("-", "/"), value * 2, hostile(rnd)])
    if isinstance(value, list):
        value = list(value)
        op = rnd.randrange(7)
        if op == 0 and value:
            del value[rnd.randrange(len(value))]
        elif op == 1 and value:
            value.insert(rnd.randrange(len(value)), value[rnd.randrange(len(value))])
        elif op == 2:
            value = value[:rnd.randrange(len(value) + 1)]
        elif op == 3:
            rnd.shuffle(value)
        elif op == 4:
            value = value * rnd.choice([2, 50])
        elif op == 5 and value:
            value[rnd.randrange(len(value))] = hostile(rnd)
        else:
            value = value[::-1]
        return value
    value = dict(value)
    op = rnd.randrange(4)
    if op == 0 and value:
        del value[rnd.choice(list(value))]
    elif op == 1:
        value[rnd.choice(["extra", "kind", "fan", "tickers", "x" * 200])] = hostile(rnd)
    elif op == 2 and value:
        key = rnd.choice(list(value))
        value[key.upper() + "_"] = value.pop(key)
    else:
        value = {k: (hostile(rnd) if rnd.random() < 0.3 else v) for k, v in value.items()}
    return value


def mutate_json(rnd: random.Random, data: bytes) -> bytes:
    """A JSON file edited 1-3 times at random places, or damaged as text."""
    if rnd.random() < 0.25:
        return mutate_bytes(rnd, data, text=True)
    doc = json.loads(data)
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        path, value = pick_node(rnd, doc)
        doc = set_at(doc, path, hostile(rnd) if rnd.random() < 0.4 else mutate_value(rnd, value))
    text = json.dumps(doc, indent=rnd.choice([None, 2]))  # NaN and Infinity as JavaScript
    if rnd.random() < 0.05:  # deep nesting at a random place
        depth = rnd.choice([100, 5000, 200_000])
        path, _ = pick_node(rnd, json.loads(data))
        text = json.dumps(set_at(json.loads(data), path, "@@")).replace(
            '"@@"', "[" * depth + "]" * depth, 1)
    return text.encode()


def mutate_bytes(rnd: random.Random, data: bytes, text: bool = False) -> bytes:
    """Truncation, byte flips, inserted or appended junk, another encoding, emptiness."""
    data = bytearray(data)
    op = rnd.randrange(8 if text else 6)
    if op == 0:
        return bytes(data[:rnd.randrange(len(data) + 1)])
    if op == 1:
        for _ in range(rnd.choice([1, 1, 3, 20])):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        return bytes(data)
    if op == 2:
        at = rnd.randrange(len(data) + 1)
        return bytes(data[:at] + rnd.randbytes(rnd.choice([1, 8, 1000])) + data[at:])
    if op == 3:
        return bytes(data) + rnd.choice([b"\x00", b"\n", b"{}", rnd.randbytes(64)])
    if op == 4:
        return rnd.choice([b"", b"\x00" * len(data), rnd.randbytes(rnd.choice([1, 7, 9, 500]))])
    if op == 5:
        at = rnd.randrange(len(data))
        return bytes(data[:at] + data[at + rnd.randrange(1, 20):])
    if op == 6:
        return bytes(data).decode("utf-8").encode(rnd.choice(["utf-16", "utf-32", "latin-1"]))
    return b"\xef\xbb\xbf" + bytes(data)


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join_safetensors(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def mutate_weights(rnd: random.Random, data: bytes) -> bytes:
    """A safetensors file with its header edited, its values poisoned, or its bytes damaged."""
    from safetensors.numpy import load, save

    op = rnd.randrange(10)
    if op <= 1:
        return mutate_bytes(rnd, data)
    header, body = split_safetensors(data)
    names = [k for k in header if k != "__metadata__"]
    name = rnd.choice(names)
    entry = header[name]
    if op == 2:  # the header's own JSON, edited like any JSON file
        return _header_json(rnd, header, body)
    if op == 3:
        entry["dtype"] = rnd.choice(["F16", "BF16", "F64", "I64", "I8", "U8", "BOOL", "XX", 1])
        return join_safetensors(header, body)
    if op == 4:
        shape = list(entry["shape"])
        shape = rnd.choice([shape[::-1], [*shape, 1], shape[:-1], [0], [-1, *shape[1:]],
                            [2**40, *shape[1:]], [s * 2 for s in shape], []])
        entry["shape"] = shape
        return join_safetensors(header, body)
    if op == 5:
        start, end = entry["data_offsets"]
        entry["data_offsets"] = rnd.choice([[end, start], [start, end + 4], [start + 4, end],
                                            [0, 4], [start, 2**62], [-4, end], [start]])
        return join_safetensors(header, body)
    if op == 6:  # a consistent header length field that lies
        n = struct.unpack("<Q", data[:8])[0]
        return struct.pack("<Q", rnd.choice([0, n - 1, n + 1, 2**63, len(data)])) + data[8:]
    arrays = load(data)
    if op == 7:  # poisoned values in a well-formed file
        a = arrays[name].copy()
        if a.size and a.dtype.kind == "f":
            flat = a.reshape(-1)
            flat[rnd.randrange(flat.size)] = rnd.choice([np.nan, np.inf, -np.inf, 3e38, 1e-45])
            if rnd.random() < 0.3:
                flat *= rnd.choice([1e20, -1e20, 0.0, 1e-30])
        arrays[name] = a
    elif op == 8:  # another dtype or shape, written properly
        a = arrays[name]
        arrays[name] = rnd.choice([a.astype(np.float64), a.astype(np.float16),
                                   a.astype(np.int32), a.reshape(-1), a.T.copy(),
                                   np.concatenate([a.reshape(-1)] * 2), a[:-1] if a.ndim else a])
    else:  # a tensor dropped, added or renamed
        choice = rnd.randrange(3)
        if choice == 0:
            del arrays[name]
        elif choice == 1:
            arrays["extra.weight"] = np.zeros((2, 2), np.float32)
        else:
            arrays[name + "x"] = arrays.pop(name)
    return save(arrays, metadata=rnd.choice([None, {"format": "marketcast"}]))


def _header_json(rnd: random.Random, header: dict, body: bytes) -> bytes:
    edited = mutate_json(rnd, json.dumps(header).encode())
    return struct.pack("<Q", len(edited)) + edited + body


def mutate_parquet(rnd: random.Random, data: bytes) -> bytes:
    """A store file with its ``marketcast`` metadata edited, or its bytes damaged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rnd.random() < 0.3:
        return mutate_bytes(rnd, data)
    table = pq.read_table(pa.BufferReader(data))
    meta = dict(table.schema.metadata)
    if rnd.random() < 0.8:
        meta[b"marketcast"] = mutate_json(rnd, meta[b"marketcast"])
    else:  # the pandas metadata, or the table itself
        op = rnd.randrange(3)
        if op == 0:
            meta[b"pandas"] = mutate_json(rnd, meta.get(b"pandas", b"{}"))
        elif op == 1:
            table = table.drop_columns([rnd.choice(table.column_names)])
        else:
            table = table.rename_columns([rnd.choice(["date", "close", "x", ""])
                                          for _ in table.column_names])
    out = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), out)
    return out.getvalue().to_pybytes()


def mutate_toml(rnd: random.Random, data: bytes) -> bytes:
    """A ``config.toml`` with a value replaced, a line dropped or doubled, or damaged bytes."""
    if rnd.random() < 0.3:
        return mutate_bytes(rnd, data, text=True)
    lines = data.decode().splitlines()
    at = rnd.randrange(len(lines))
    op = rnd.randrange(4)
    if op == 0 and "=" in lines[at]:
        key = lines[at].split("=", 1)[0]
        value = rnd.choice(['"x"', "-1", "1e999", "nan", "inf", "[]", "{}", "true", '""',
                            "9" * 40, "2020-02-30", '"' + "a" * 10_000 + '"', "[[1]]"])
        lines[at] = f"{key}= {value}"
    elif op == 1:
        del lines[at]
    elif op == 2:
        lines.insert(at, lines[at])
    else:
        lines.insert(at, rnd.choice(["[extra]", "x = 1", "[data.deep.deeper]", "a.b.c = 1"]))
    return ("\n".join(lines) + "\n").encode()


# ---- one case ---------------------------------------------------------------------------

def reseal(folder: Path) -> None:
    """Recompute a run folder's manifest as `RunFolder.finish` does."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                         for name in manifest["files"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def copy_fixture(target: str, kind: str, fixtures: dict, tmp: Path) -> tuple[Path, Path]:
    """A fresh copy of the folder ``target`` damages, in ``tmp``: (folder, damaged file)."""
    if target == "store_parquet":
        shutil.copytree(fixtures["store"], tmp / "store")
        return tmp / "store", tmp / "store" / "AAA.parquet"
    if target.startswith(("checkpoint", "session")):
        shutil.copytree(fixtures["checkpoints"], tmp / "ck")
        folder = tmp / "ck" / ".checkpoints" / "s"
        info = json.loads((folder / "checkpoint.json").read_text())
        name = {"checkpoint_state": info["state_file"], "checkpoint_json": "checkpoint.json",
                "session_json": "session.json"}[target]
    else:
        folder = tmp / kind
        shutil.copytree(fixtures[kind], folder)
        name = {"model_json": "model.json", "weights": "model.safetensors",
                "metrics_json": "metrics.json", "config_toml": "config.toml"}[target]
    return folder, folder / name


def modes(target: str) -> tuple[str, ...]:
    return ("unsigned",) if target in ("checkpoint_json", "session_json",
                                       "store_parquet") else ("kept",
                                                                                  "resealed")


def run_case(target: str, case: int, seed_value: int, fixtures: dict, tmp: Path) -> list:
    """Damage one file and load a fresh copy of its folder in each mode; return
    ``[(mode, outcome, label, detail)]`` with outcome ``ok``, ``error`` or ``crash``."""
    rnd = random.Random(f"{seed_value}-{target}-{case}")
    kind = "global" if rnd.random() < 0.3 else "run"
    mutate = {"weights": mutate_weights, "checkpoint_state": mutate_weights,
              "config_toml": mutate_toml, "store_parquet": mutate_parquet}.get(target,
                                                                              mutate_json)
    results = []
    for mode in modes(target):
        folder, path = copy_fixture(target, kind, fixtures, tmp / mode)
        original = path.read_bytes()
        if mode == modes(target)[0]:
            damaged = mutate(rnd, original)
        path.write_bytes(damaged)
        changed = damaged != original
        if mode == "resealed" and target == "checkpoint_state":
            info = json.loads((folder / "checkpoint.json").read_text())
            info["state_sha256"] = hashlib.sha256(damaged).hexdigest()
            (folder / "checkpoint.json").write_text(json.dumps(info))
        elif mode == "resealed":
            reseal(folder)
        loader = choose_loader(rnd, target, folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome, label = loader(folder, fixtures)
            if mode == "kept" and changed and outcome != "error":
                outcome, label = "crash", f"CRASH kept manifest passed ({label})"
            elif mode == "kept" and changed and "sha256" not in label:
                outcome, label = "crash", f"CRASH kept manifest not the refusal ({label})"
            detail = ""
        # A fuzz harness must survive every failure to count it.
        except Exception as exc:  # noqa: BLE001
            where = traceback.extract_tb(exc.__traceback__)[-1]
            outcome = "crash"
            label = f"CRASH {type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
            detail = "".join(traceback.format_exception(exc))[-3000:]
        results.append((mode, outcome, f"{loader.__name__}: {label}", detail))
    return results


def gist(message: str) -> str:
    """The leading words of an error, without paths, names and numbers (for counting)."""
    words = re.sub(r"\([^)]*\)?|'[^']*'|\S*[\d/\\]\S*", "", message.split(";")[0]).split()
    return " ".join(words[:8]) + (" [sha256]" if "sha256" in message else "")


def caught(call) -> tuple[str, str]:
    """``("ok", "ok")`` if ``call()`` returns, ``("error", gist)`` for one of our one-line
    errors; anything else propagates (a crash)."""
    from marketcast.errors import MarketcastError

    try:
        call()
    except MarketcastError as exc:
        message = str(exc)
        if not message.strip() or "\n" in message:
            raise AssertionError(f"not a one-line message: {message[:200]!r}") from None
        return "error", f"{type(exc).__name__}: {gist(message)}"
    return "ok", "ok"


def finite(frame: pd.DataFrame) -> None:
    """Forecasts are finite numbers; an interval is missing (NaN, on steps the test period
    has no residuals for) or finite around its forecast."""
    point = [c for c in frame.columns if c in ("lstm", "naive", "y_hat")]
    values = frame[point].to_numpy(dtype=np.float64)
    if not len(frame) or not np.isfinite(values).all():
        raise AssertionError(f"success with non-finite forecasts: {frame.head(3)!r}")
    if "lstm_lower" in frame.columns:
        lower, upper = (frame[c].to_numpy(dtype=np.float64) for c in ("lstm_lower",
                                                                      "lstm_upper"))
        there = ~np.isnan(lower)
        if (np.isnan(upper) != ~there).any() or not (
                np.isfinite(lower[there]).all() and np.isfinite(upper[there]).all()):
            raise AssertionError(f"success with a broken interval: {frame.head(3)!r}")


# ---- loaders ----------------------------------------------------------------------------

def api_forecast(folder: Path, fixtures: dict):
    from marketcast import api

    if (folder / "model.json").is_file() and folder.name == "global":
        return caught(lambda: finite(api.forecast_tickers(folder, ["all"])))
    return caught(lambda: finite(api.forecast(folder)))


def api_forecast_torch(folder: Path, fixtures: dict):
    from marketcast import api

    ticker = "AAA" if folder.name == "global" else None
    return caught(lambda: finite(api.forecast(folder, ticker=ticker, engine="torch", days=3)))


def api_forecast_data(folder: Path, fixtures: dict):
    from marketcast import api

    if folder.name == "global":
        return caught(lambda: finite(api.forecast(folder, ticker="BBB", interval=0.8)))
    return caught(lambda: finite(api.forecast(folder, data=str(fixtures["prices"]))))


def api_evaluate(folder: Path, fixtures: dict):
    from marketcast import api

    def call():
        result = api.evaluate_run(folder)
        finite(result.table[["y_hat"]])

    return caught(call)


def api_report(folder: Path, fixtures: dict):
    from marketcast.report import report

    return caught(lambda: report(folder))


def api_resume(folder: Path, fixtures: dict):
    from marketcast import api
    from marketcast.config import Config

    config = Config.from_dict(json.loads(fixtures["stopped"].read_text()))
    runs = folder.parent.parent
    config = _with_runs(config, runs)
    return caught(lambda: finite(api.run(config, resume=True).forecast))


def _with_runs(config, runs: Path):
    import dataclasses

    return dataclasses.replace(config, output=dataclasses.replace(config.output,
                                                                  runs_dir=str(runs)))


def cli_command(folder: Path, fixtures: dict, args: list[str]):
    """``marketcast ARGS`` in-process: exit 0, or one ``error:`` line and no traceback."""
    from marketcast.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code
    lines = [line for line in err.getvalue().splitlines() if not line.startswith("note: ")]
    if code == 0:
        if lines:
            raise AssertionError(f"exit 0 with stderr {err.getvalue()[-500:]!r}")
        if args[0] == "forecast":
            finite(pd.read_csv(io.StringIO(out.getvalue())))
        return "ok", "ok"
    if not (len(lines) == 1 and lines[0].startswith("error: ") and code != 0):
        raise AssertionError(f"exit {code} with stderr {err.getvalue()[-800:]!r}")
    return "error", f"exit {code}: {gist(lines[0][len('error: '):])}"


def cli_forecast(folder, fixtures):
    extra = ["--tickers", "all"] if folder.name == "global" else []
    return cli_command(folder, fixtures, ["forecast", "--run", str(folder), *extra])


def cli_evaluate(folder, fixtures):
    return cli_command(folder, fixtures, ["evaluate", "--run", str(folder)])


def cli_report(folder, fixtures):
    return cli_command(folder, fixtures, ["report", str(folder)])


def cli_resume(folder, fixtures):
    return cli_command(folder, fixtures, ["run", "--runs-dir", str(folder.parent.parent),
                                          "--name", "s", "--resume"])


def store_list(folder: Path, fixtures: dict):
    from marketcast.data import list_store

    def call():
        table = list_store(folder)
        if len(table) != 1:
            raise AssertionError(f"list_store gave {len(table)} rows")

    return caught(call)


def store_prices(folder: Path, fixtures: dict):
    from messy_csv import check_contract

    from marketcast.data import load_prices

    return caught(lambda: check_contract(load_prices(str(folder / "AAA.parquet")), "close",
                                         ["close"]))


LOADERS = {  # relative weights of the loaders of each kind of target
    "model": {api_forecast: 40, api_forecast_torch: 15, api_forecast_data: 15,
              api_evaluate: 12, cli_forecast: 8, cli_evaluate: 5, api_report: 5},
    "report": {api_report: 85, cli_report: 15},
    "resume": {api_resume: 85, cli_resume: 15},
    "store": {store_list: 50, store_prices: 50},
}


def choose_loader(rnd: random.Random, target: str, folder: Path):
    group = ("model" if target in ("model_json", "weights") else
             "report" if target in ("metrics_json", "config_toml") else
             "store" if target == "store_parquet" else "resume")
    if target == "session_json":  # only the command line reads the saved settings
        return cli_resume
    weights = LOADERS[group]
    return rnd.choices(list(weights), list(weights.values()))[0]



# ---- the harness: cases in reused worker processes, a timeout, peak memory ---------------

def peak_reset() -> None:
    """Start a new peak resident-memory measurement (Linux; elsewhere nothing is measured)."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def memory_kib(field: str = "VmHWM") -> int | None:
    """The peak resident memory of this process since :func:`peak_reset` (``VmHWM``), or
    the resident memory now (``VmRSS``), in KiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(found.group(1)) if found else None


def worker(conn, root: str, quiet: bool) -> None:
    """Run the cases sent over ``conn`` until None arrives; send back results and peak."""
    import os
    import tempfile

    if quiet:  # notes of the command line, progress of training
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
    import marketcast.api.panel  # noqa: F401  (imported once, before the first case)
    import marketcast.api.single  # noqa: F401
    import marketcast.cli  # noqa: F401
    import marketcast.report  # noqa: F401

    fixtures = fixture_paths(Path(root))
    while (task := conn.recv()) is not None:
        target, case, seed_value = task
        peak_reset()
        base = memory_kib("VmRSS")
        with tempfile.TemporaryDirectory() as tmp:
            results = run_case(target, case, seed_value, fixtures, Path(tmp))
        peak = memory_kib()
        conn.send((results, None if peak is None else (peak, peak - base)))


class Pool:
    """``n`` worker processes (forked when the platform can) fed one case at a time; a case
    past ``timeout`` seconds kills its worker, counts as a hang, and a new worker starts."""

    def __init__(self, n: int, root: Path, timeout: float, quiet: bool = True):
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.root, self.timeout, self.quiet = str(root), timeout, quiet
        self.workers = [self._start() for _ in range(n)]

    def _start(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker, args=(child, self.root, self.quiet),
                                       daemon=True)
        process.start()
        return {"process": process, "conn": parent, "task": None, "since": 0.0}

    def run(self, tasks, on_result, budget: float | None = None) -> None:
        """Call ``on_result(task, results, peak_kib)`` for each task; results is "hang" for a
        case past the timeout and "died" for a worker that exited mid-case. After ``budget``
        seconds no new task starts."""
        import time
        from multiprocessing.connection import wait

        tasks = list(tasks)[::-1]
        started = time.monotonic()
        while tasks or any(w["task"] for w in self.workers):
            if budget is not None and time.monotonic() - started > budget:
                tasks = []
            for w in self.workers:
                if w["task"] is None and tasks:
                    w["task"], w["since"] = tasks.pop(), time.monotonic()
                    w["conn"].send(w["task"])
            busy = [w for w in self.workers if w["task"]]
            wait([w["conn"] for w in busy], timeout=1.0)
            for i, w in enumerate(self.workers):
                if w["task"] is None:
                    continue
                if w["conn"].poll():
                    try:
                        results, peak = w["conn"].recv()
                    except EOFError:
                        results, peak = "died", None
                elif not w["process"].is_alive():
                    results, peak = "died", None
                elif time.monotonic() - w["since"] > self.timeout:
                    results, peak = "hang", None
                else:
                    continue
                on_result(w["task"], results, peak)
                if results in ("hang", "died"):
                    w["process"].kill()
                    w["process"].join()
                    self.workers[i] = self._start()
                else:
                    w["task"] = None

    def close(self) -> None:
        for w in self.workers:
            w["conn"].send(None)
            w["process"].join(timeout=10)


def fuzz_artifacts(targets, cases: int, seed_value: int, root: Path, workers: int = 1,
                   timeout: float = 30.0, budget: float | None = None,
                   progress=None) -> dict:
    """``cases`` cases of each target in ``workers`` processes (fixtures built in ``root``
    first, unless there). Returns per target: ``counts`` (``{mode: {outcome: n}}``, outcomes
    ok, error, crash, hang), ``labels`` (``"mode outcome label"``: n), ``crashes`` (label:
    traceback) and ``peak`` (the largest peak resident memory of a case, KiB, and its case)."""
    import collections

    root = Path(root)
    if not (root / "stopped.json").is_file():
        build_fixtures(root)
    report = {t: {"counts": collections.defaultdict(collections.Counter),
                  "labels": collections.Counter(), "crashes": {}, "peak": [0, None],
                  "rise": [0, None]}
              for t in targets}

    done = collections.Counter()

    def on_result(task, results, peak):
        target, case, _ = task
        done[target] += 1
        if progress:
            progress(done)
        one = report[target]
        if isinstance(results, str):  # hang or died: every mode of the case
            for mode in modes(target):
                outcome = "hang" if results == "hang" else "crash"
                one["counts"][mode][outcome] += 1
                one["labels"][f"{mode} {outcome} worker {results}"] += 1
            one["crashes"].setdefault(f"worker {results}", f"case {case}")
            return
        for mode, outcome, label, detail in results:
            one["counts"][mode][outcome] += 1
            one["labels"][f"{mode} {outcome} {label}"] += 1
            if outcome == "crash":
                one["crashes"].setdefault(label, f"case {case} ({mode})\n{detail}")
        if peak is not None:
            for key, value in zip(("peak", "rise"), peak, strict=True):
                if value > one[key][0]:
                    one[key] = [value, case]

    pool = Pool(workers, root, timeout)
    try:
        pool.run([(t, c, seed_value) for c in range(cases) for t in targets], on_result, budget)
    finally:
        pool.close()
    for target, one in report.items():
        one["counts"] = {mode: dict(c) for mode, c in one["counts"].items()}
        one["cases"] = done[target]
    return report
