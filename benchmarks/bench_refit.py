"""Warm against cold refits on the default backtest: time, LSTM step-1 RMSE and coverage.

Each run is the default `marketcast backtest` (250 cutoffs, 10 refits, all five default
models, folds in worker processes) with ``backtest.refit`` cold or warm, in a fresh process,
timed inside (``marketcast.api.backtest(write=False)``, data loading included). Cold runs
with ``--seeds`` (default 0 1 2: the seed-to-seed spread a warm run has to stay within),
warm with ``--warm-seeds`` (default 0); the runs alternate cold / warm so that load on the
machine hits both alike. Printed: each run's seconds, the LSTM's step-1 RMSE (price) and
interval coverage, and the ratio of the median cold time to the median warm time.

    .venv/bin/python benchmarks/bench_refit.py                  # ~25-40 min on 2 cores
    .venv/bin/python benchmarks/bench_refit.py --epochs 1 --n-windows 30 --refit-every 10 \\
        --seeds 0 --models lstm                                  # a smoke test, ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import dataclasses, json, sys, time
from marketcast.api import backtest
from marketcast.config import Config

settings = json.loads(sys.argv[1])
c = Config()
train, b = c.train, c.backtest
if settings["epochs"]:
    train = dataclasses.replace(train, max_epochs=settings["epochs"])
    b = dataclasses.replace(b, warm_epochs=min(b.warm_epochs, settings["epochs"]))
b = dataclasses.replace(b, refit=settings["refit"], workers=settings["workers"],
                        **{k: settings[k] for k in ("n_windows", "refit_every", "models")
                           if settings[k] is not None})
c = dataclasses.replace(c, train=dataclasses.replace(train, seed=settings["seed"]), backtest=b)
started = time.perf_counter()
result = backtest(c, write=False)
seconds = time.perf_counter() - started
s = result.scores
score = s[(s["model"] == "lstm") & (s["step"] == 1)].iloc[0]
cover = result.coverage  # empty when no cutoff has enough residuals for an interval
if len(cover):
    cover = cover[(cover["model"] == "lstm") & (cover["step"] == 1)]
print(json.dumps({"seconds": seconds, "rmse": float(score["rmse"]),
                  "coverage": float(cover["coverage"].iloc[0]) if len(cover) else None,
                  "n": int(cover["n"].iloc[0]) if len(cover) else 0}))
"""


def run(refit: str, seed: int, args) -> dict:
    settings = {"refit": refit, "seed": seed, "epochs": args.epochs, "workers": args.workers,
                "n_windows": args.n_windows, "refit_every": args.refit_every,
                "models": args.models.split(",") if args.models else None}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{refit} seed {seed} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{refit:4s} seed {seed}: {result['seconds']:7.1f} s  LSTM step-1 RMSE "
          f"{result['rmse']:.3f}  coverage {result['coverage']}% of {result['n']}  "
          f"(load {os.getloadavg()[0]:.2f})", flush=True)
    return {"refit": refit, "seed": seed, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--warm-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="cap train.max_epochs (and warm_epochs) for a quick look")
    parser.add_argument("--n-windows", type=int, default=None)
    parser.add_argument("--refit-every", type=int, default=None)
    parser.add_argument("--models", default=None, help="comma-separated (default: all five)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    runs = []
    cold, warm = list(args.seeds), list(args.warm_seeds)
    while cold or warm:  # alternate so that both see the same load
        if cold:
            runs.append(run("cold", cold.pop(0), args))
        if warm:
            runs.append(run("warm", warm.pop(0), args))
    summary = {}
    for refit in ("cold", "warm"):
        mine = [r for r in runs if r["refit"] == refit]
        rmse = [r["rmse"] for r in mine]
        coverage = [r["coverage"] for r in mine if r["coverage"] is not None]
        summary[refit] = {"median_seconds": statistics.median(r["seconds"] for r in mine),
                          "rmse_range": [min(rmse), max(rmse)],
                          "coverage_range": [min(coverage), max(coverage)] if coverage else None}
        print(f"{refit}: median {summary[refit]['median_seconds']:.1f} s over {len(mine)} run(s); "
              f"step-1 RMSE {min(rmse):.3f} .. {max(rmse):.3f}; coverage "
              f"{summary[refit]['coverage_range']}")
    ratio = summary["cold"]["median_seconds"] / summary["warm"]["median_seconds"]
    print(f"ratio cold / warm (median seconds): {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "summary": summary, "ratio": ratio}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
