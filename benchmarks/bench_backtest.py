"""The 10-refit LSTM backtest: folds in worker processes against fits one after another.

Walk-forward over the default 250 cutoffs refitting every 25 (10 LSTM fits on 1,500 to
1,750 rows, lookback 60, the default model), with ``--epochs`` per fit (no early stopping:
patience above it) so that both variants do exactly the same work. Alternating:

* ``sequential``: ``--workers 1``: the folds fitted one after another in one process
  (torch's default 2 threads, tuned malloc);
* ``parallel``: the default, ``--workers 0`` (one process per core, one thread each).

Each variant is a fresh ``marketcast.pipeline.walkforward.walk_forward`` call in its own
process (timed
inside, data loading excluded). ``--full`` also times the default ``marketcast backtest``
command (all five models, early stopping) once.

    .venv/bin/python benchmarks/bench_backtest.py --repeats 2 --full
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

CHILD = """
import dataclasses, json, sys, time
from marketcast.pipeline.walkforward import walk_forward
from marketcast.config import Config
from marketcast.pipeline.series import load_series
epochs, workers = int(sys.argv[1]), int(sys.argv[2])
c = Config()
c = dataclasses.replace(
    c, train=dataclasses.replace(c.train, max_epochs=epochs, patience=epochs + 1),
    backtest=dataclasses.replace(c.backtest, models=("lstm",), workers=workers))
_, series = load_series(c)
started = time.perf_counter()
table, fits = walk_forward(series, c)
print(json.dumps({"seconds": time.perf_counter() - started, "fits": fits["lstm"],
                  "y_hat": table["y_hat"].tolist()}))
"""


def run_variant(name: str, epochs: int) -> dict:
    workers = 1 if name == "sequential" else 0
    done = subprocess.run([sys.executable, "-c", CHILD, str(epochs), str(workers)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    times = {"sequential": [], "parallel": []}
    gaps = []
    for r in range(args.repeats):
        order = ("sequential", "parallel") if r % 2 == 0 else ("parallel", "sequential")
        results = {}
        for name in order:
            results[name] = run_variant(name, args.epochs)
            times[name].append(results[name]["seconds"])
            print(f"repeat {r + 1} {name:10s} {results[name]['seconds']:8.1f} s "
                  f"({results[name]['fits']} fits)", flush=True)
        a, b = results["sequential"]["y_hat"], results["parallel"]["y_hat"]
        gaps.append(max(abs(x / y - 1) for x, y in zip(a, b, strict=True)))
    medians = {k: statistics.median(v) for k, v in times.items()}
    paired = [s / p for s, p in zip(times["sequential"], times["parallel"], strict=True)]
    print(f"median sequential {medians['sequential']:.1f} s, parallel {medians['parallel']:.1f} s;"
          f" speed-up {medians['sequential'] / medians['parallel']:.2f}x (pairs: "
          f"{', '.join(f'{p:.2f}' for p in paired)}); largest relative forecast difference "
          f"{max(gaps):.1e}")
    out = {"times": times, "paired": paired, "max_relative_gap": max(gaps)}
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "marketcast"), "backtest",
                            "--runs-dir", tmp], check=True, capture_output=True)
            out["full_seconds"] = time.perf_counter() - started
        print(f"default `marketcast backtest` (all models): {out['full_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
