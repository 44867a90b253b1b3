"""Every speed benchmark of issue 7 in one command, with medians and in-run ratios.

    .venv/bin/python benchmarks/run_all.py            # ~20-30 min on 2 busy cores
    .venv/bin/python benchmarks/run_all.py --quick    # fewer repeats, no full backtest

1. training throughput (bench_train.py): processes alternating glibc's default malloc and the
   tuned one (``MARKETCAST_TUNE_MALLOC=0/1``), each timing ours against a plain nn.LSTM
   loop epoch by epoch, 2 threads, and measuring a float32 GEMM peak on 2 threads;
2. time to accuracy (bench_accuracy.py);
3. 30-day forecast latency, in-process and CLI (bench_forecast.py);
4. the 10-refit LSTM backtest, folds in parallel vs one after another (bench_backtest.py),
   and with ``--full`` the default ``marketcast backtest`` once;
5. the ceiling: the GEMMs of one training step alone, against the GEMM peak and a real step
   (bench_ceiling.py);
6. other kernels for the training step: per-layer LSTM calls, a fused C++ LSTM layer
   (bench_kernels.py);
7. the numpy forecast path against torch: a cold `marketcast forecast` process and an
   in-process 30-day forecast (bench_numpy_forecast.py);
8. warm against cold refits on the default backtest, 3 cold seeds (bench_refit.py; with
   ``--quick`` a few windows and one epoch only, a smoke test);
9. time to accuracy of the global model on all 505 tickers, batch 64 against large batches
   with a scaled, warmed-up learning rate (bench_global_batch.py; needs ../shared/data;
   with ``--quick`` 20 tickers, a smoke test).

Raw JSON of every run goes to ``--out`` (default benchmarks/results/latest/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def bench(script: str, out: Path, *args: str, env: dict | None = None) -> dict:
    print(f"$ {script} {' '.join(args)}", flush=True)
    full_env = {**os.environ, **(env or {})}
    subprocess.run([sys.executable, str(HERE / script), *args, "--json", str(out)], check=True,
                   env=full_env, stdout=sys.stderr)
    return json.loads(out.read_text())


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# (name, MARKETCAST_TUNE_MALLOC, torch threads)
TRAIN_VARIANTS = [("default malloc, 2 thr", "0", 2), ("tuned malloc, 2 thr", "1", 2),
                  ("tuned malloc, 1 thr", "1", 1)]


def training(out: Path, rounds: int, epochs: int) -> None:
    runs = {name: [] for name, _, _ in TRAIN_VARIANTS}
    for r in range(rounds):
        order = TRAIN_VARIANTS if r % 2 == 0 else TRAIN_VARIANTS[::-1]
        for name, flag, threads in order:
            runs[name].append(bench("bench_train.py", out / f"train_{flag}_{threads}_{r}.json",
                                    "--repeats", str(epochs), "--threads", str(threads),
                                    env={"MARKETCAST_TUNE_MALLOC": flag}))
    peak = statistics.median(run["gemm_peak"] for name, _, threads in TRAIN_VARIANTS
                             if threads == 2 for run in runs[name])
    first = runs[TRAIN_VARIANTS[1][0]][0]
    n, flops = first["windows"], first["flops_per_window"]
    print(f"\n== training throughput ({flops / 1e6:.2f} MFLOP per window fwd+bwd; "
          f"GEMM peak on 2 threads, median of runs' best: {peak:.1f} GFLOP/s) ==")
    medians = {}
    for name, results in runs.items():
        for loop in ("ours", "reference"):
            times = [t for run in results for t in run["times"][loop]]
            med = statistics.median(times)
            medians[name, loop] = med
            rate = n * flops / med / 1e9
            print(f"{name:21s} {loop:9s} median {med:6.3f} s/epoch  {n / med:6.0f} windows/s  "
                  f"{rate:6.1f} GFLOP/s  {100 * rate / peak:4.0f}% of peak  "
                  f"({len(times)} epochs)")
    (a, _, _), (b, _, _), (c, _, _) = TRAIN_VARIANTS
    print(f"ratio default / tuned malloc (ours, 2 threads): "
          f"{medians[a, 'ours'] / medians[b, 'ours']:.2f}x")
    print(f"ratio 1 thread / 2 threads (ours, tuned malloc): "
          f"{medians[c, 'ours'] / medians[b, 'ours']:.2f}")
    print(f"ratio ours / reference (tuned malloc, 2 threads): "
          f"{medians[b, 'ours'] / medians[b, 'reference']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=["train", "accuracy", "forecast",
                                                       "backtest", "ceiling", "kernels",
                                                       "numpy", "refit", "global_batch"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; {load()}")
    if "train" in args.only:
        training(args.out, 2 if args.quick else 4, 3 if args.quick else 5)
        print(load())
    if "accuracy" in args.only:
        result = bench("bench_accuracy.py", args.out / "accuracy.json")
        print(f"\n== time to accuracy (naive test RMSE {result['naive_rmse']:.3f}) ==")
        for name, (epoch, seconds) in result["reached"].items():
            print(f"reached {name}: epoch {epoch}, {seconds:.2f} s of training")
        print(load())
    if "forecast" in args.only:
        result = bench("bench_forecast.py", args.out / "forecast.json")
        print("\n== 30-day forecast latency (medians) ==")
        for name, values in result["times"].items():
            print(f"{name:13s} {1000 * statistics.median(values):9.2f} ms")
        print(f"stateful vs sliding max relative gap {result['max_relative_gap']:.1e}")
        print(load())
    if "backtest" in args.only:
        extra = [] if args.quick else ["--full"]
        result = bench("bench_backtest.py", args.out / "backtest.json",
                       "--repeats", "2", *extra)
        med = {k: statistics.median(v) for k, v in result["times"].items()}
        print(f"\n== 10-refit LSTM backtest: sequential {med['sequential']:.1f} s, parallel "
              f"{med['parallel']:.1f} s, {med['sequential'] / med['parallel']:.2f}x ==")
        if "full_seconds" in result:
            print(f"default `marketcast backtest`: {result['full_seconds']:.0f} s")
        print(load())
    for name in ("ceiling", "kernels"):
        if name in args.only:
            rounds = ["--rounds", "2"] if args.quick else []
            # Their tables go to stderr with the rest of their output; the JSON keeps them.
            bench(f"bench_{name}.py", args.out / f"{name}.json", *rounds)
            print(load())
    if "numpy" in args.only:
        result = bench("bench_numpy_forecast.py", args.out / "numpy_forecast.json",
                       *(["--repeats", "100", "--cli-repeats", "3"] if args.quick else []))
        med = {k: statistics.median(v) for k, v in result["times"].items()}
        print(f"\n== forecast without torch: cold `marketcast forecast` numpy "
              f"{med['cli numpy']:.2f} s, torch {med['cli torch']:.2f} s "
              f"({med['cli torch'] / med['cli numpy']:.2f}x); predict(30) numpy "
              f"{1000 * med['predict numpy']:.3f} ms, torch {1000 * med['predict torch']:.3f} ms; "
              f"max relative gap {result['max_relative_gap']:.1e} ==")
        print(load())
    if "refit" in args.only:
        quick = ["--epochs", "1", "--n-windows", "30", "--refit-every", "10", "--seeds", "0",
                 "--models", "lstm"]
        result = bench("bench_refit.py", args.out / "refit.json",
                       *(quick if args.quick else []))
        s = result["summary"]
        print(f"\n== warm vs cold refits: cold {s['cold']['median_seconds']:.0f} s, warm "
              f"{s['warm']['median_seconds']:.0f} s ({result['ratio']:.2f}x); step-1 RMSE cold "
              f"{s['cold']['rmse_range']}, warm {s['warm']['rmse_range']}; coverage cold "
              f"{s['cold']['coverage_range']}, warm {s['warm']['coverage_range']} ==")
        print(load())
    if "global_batch" in args.only:
        quick = ["--tickers", "20", "--ref-epochs", "2", "--candidates", "256:sqrt:10",
                 "--max-epochs", "4"]
        result = bench("bench_global_batch.py", args.out / "global_batch.json",
                       *(quick if args.quick else []))
        print(f"\n== global model, time to batch 64's best validation loss "
              f"{result['target']:.6f} ==")
        for run in result["runs"]:
            seconds = run.get("time_to_target")
            print(f"{run['label']}: " + (f"{seconds:.0f} s" if seconds else "not reached")
                  + (f" ({run['speedup']:.2f}x)" if run.get("speedup") else ""))
        print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
