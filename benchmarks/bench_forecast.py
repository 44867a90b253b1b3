"""30-day forecast latency from a saved model: in-process and as a `marketcast forecast` call.

Trains the default model for one epoch (the weights do not matter for latency) into a
temporary run folder, loads it with ``marketcast.api.load_run`` and times, alternating:

* ``stateful``: ``model.predict(30)`` advancing the LSTM state (the default);
* ``sliding``: the same with ``LSTMForecaster.stateful = False`` (30 passes over the window);
* ``api``: ``marketcast.forecast(run_dir)`` (load, calendar, interval; what the CLI calls);

then ``marketcast forecast --run DIR`` as a fresh process, and ``python -c "import torch"``
as the floor a process that loads a torch model cannot go below.

    .venv/bin/python benchmarks/bench_forecast.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import marketcast
from marketcast.api import load_run
from marketcast.models import LSTMForecaster

BIN = Path(sys.executable).parent


def _timed(call, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(BIN / "marketcast"), "train", "--epochs", "1", "--runs-dir", tmp,
                        "--name", "bench"], check=True, capture_output=True)
        run_dir = Path(tmp) / "bench"
        _, model, _ = load_run(run_dir)

        def predict(stateful: bool):
            LSTMForecaster.stateful = stateful
            return model.predict(30)

        stateful, sliding = predict(True), predict(False)
        gap = np.abs(stateful / sliding - 1)
        times = {"stateful": [], "sliding": [], "api": []}
        for _ in range(args.repeats):
            times["stateful"] += _timed(lambda: predict(True), 1)
            times["sliding"] += _timed(lambda: predict(False), 1)
            LSTMForecaster.stateful = True
            times["api"] += _timed(lambda: marketcast.forecast(run_dir), 1)
        cli = [str(BIN / "marketcast"), "forecast", "--run", str(run_dir)]
        floor = [sys.executable, "-c", "import torch"]
        times["cli"], times["import torch"] = [], []
        for _ in range(args.cli_repeats):
            times["cli"] += _timed(lambda: subprocess.run(cli, check=True, capture_output=True), 1)
            times["import torch"] += _timed(
                lambda: subprocess.run(floor, check=True, capture_output=True), 1)
    print(f"stateful vs sliding 30-day forecast on the trained model: max relative gap "
          f"{gap.max():.2e} (step 30: {gap[-1]:.2e})")
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"{name:13s} median {1000 * medians[name]:9.2f} ms  min {1000 * min(values):9.2f}"
              f" ms  ({len(values)} runs)")
    print(f"ratio sliding / stateful (median): {medians['sliding'] / medians['stateful']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "max_relative_gap": float(gap.max())}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
