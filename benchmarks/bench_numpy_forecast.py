"""The numpy forecast path against the torch one: a cold `marketcast forecast` process and
an in-process 30-day forecast.

Trains the default model (3 x LSTM(50), lookback 60) for one epoch into a temporary run
folder (the weights do not matter for speed), then times, alternating numpy and torch:

* ``cli``: ``marketcast forecast --run DIR --engine numpy|torch`` as a fresh process, wall
  time (``--cli-repeats`` each, default 5);
* ``predict``: ``model.predict(30)`` of the loaded model (``load_run(engine=...)``), the
  stateful 30-step recursion and the inverse transform (``--repeats`` calls, default 300);
* ``api``: ``marketcast.forecast(DIR)`` in-process (read and verify the folder, forecast,
  calendar, interval), numpy engine;

plus ``python -c "import pandas"`` as the floor a process that prints a pandas table cannot
go below, and the largest relative gap between the two engines' forecasts.

    .venv/bin/python benchmarks/bench_numpy_forecast.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import marketcast
from marketcast.api import load_run

BIN = Path(sys.executable).parent


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    times = {k: [] for k in ("cli numpy", "cli torch", "predict numpy", "predict torch",
                             "api numpy", "import pandas")}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(BIN / "marketcast"), "train", "--epochs", "1", "--runs-dir", tmp,
                        "--name", "bench"], check=True, capture_output=True)
        run_dir = Path(tmp) / "bench"
        for _ in range(args.cli_repeats):
            for engine in ("numpy", "torch"):
                cli = [str(BIN / "marketcast"), "forecast", "--run", str(run_dir),
                       "--engine", engine]
                times[f"cli {engine}"].append(timed(
                    lambda cli=cli: subprocess.run(cli, check=True, capture_output=True)))
            times["import pandas"].append(timed(lambda: subprocess.run(
                [sys.executable, "-c", "import pandas"], check=True, capture_output=True)))
        models = {e: load_run(run_dir, engine=e)[1] for e in ("numpy", "torch")}
        gap = float(np.max(np.abs(models["numpy"].predict(30) / models["torch"].predict(30)
                                  - 1)))
        for _ in range(args.repeats):
            for engine, model in models.items():
                times[f"predict {engine}"].append(timed(lambda m=model: m.predict(30)))
        for _ in range(max(args.repeats // 10, 3)):
            times["api numpy"].append(timed(lambda: marketcast.forecast(run_dir)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(f"{name:14s} median {1000 * medians[name]:9.2f} ms  min "
              f"{1000 * min(values):9.2f} ms  ({len(values)} runs)")
    print(f"ratio cli torch / numpy (median): "
          f"{medians['cli torch'] / medians['cli numpy']:.2f}x")
    print(f"ratio predict torch / numpy (median): "
          f"{medians['predict torch'] / medians['predict numpy']:.2f}x")
    print(f"numpy vs torch 30-day forecast: max relative gap {gap:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "max_relative_gap": gap}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
