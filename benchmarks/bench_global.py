"""Cost of the global model as the universe grows: 1, 50 and 505 tickers of all_stocks_5yr.

Each size runs in a fresh subprocess (so peak memory is that size's alone):

1. load: ``panel.load_panel`` (reads the whole long file once, validates and splits each
   ticker) and ``panel.pool`` (per-ticker scalers, one float32 array, cutoff indices);
2. one training epoch of ``global_model.fit_global`` with the default model (3 x LSTM(50),
   lookback 60, batch 64, log returns), ``max_epochs=1``, validation pass included.

Tickers are the first n of the file (alphabetical). Reported: windows (train / validation),
pooled array size, load seconds, epoch seconds, throughput (training windows per epoch
second), peak RSS of the whole process (``resource.getrusage``) and peak RSS during training
alone (VmHWM after resetting it through ``/proc/self/clear_refs``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_global.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_global.py --sizes 1 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "all_stocks_5yr.csv.gz"


def measure(n: int, data: Path, threads: int) -> dict:
    import torch

    from marketcast.config import Config, DataConfig, TrainConfig
    from marketcast.data.sources import ticker_names
    from marketcast.pipeline.global_model import fit_global
    from marketcast.pipeline.panel import load_panel, pool

    torch.set_num_threads(threads)
    started = time.perf_counter()
    tickers = sorted(ticker_names(str(data)))[:n]
    config = Config(data=DataConfig(source=str(data), tickers=tuple(tickers)),
                    train=TrainConfig(max_epochs=1))
    panel = load_panel(config, tickers)
    pooled = pool(panel, config)
    load_s = time.perf_counter() - started
    peak_load_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset = _reset_peak()
    fit = fit_global(panel, config)
    epoch = fit.history[0]
    return {
        "tickers": len(panel.series), "skipped": len(panel.skipped),
        "train_windows": len(pooled.train_cutoffs), "val_windows": len(pooled.val_cutoffs),
        "pooled_mib": round(pooled.Z.nbytes / 2**20, 3), "load_s": round(load_s, 2),
        "epoch_s": round(epoch.seconds, 2),
        "windows_per_s": round(len(pooled.train_cutoffs) / epoch.seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_load_mib": round(peak_load_mib),
        "peak_train_mib": round(_vm_hwm_mib()) if reset else None,
        "train_loss": round(epoch.train_loss, 6), "val_loss": round(epoch.val_loss, 6),
    }


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 505])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.data, args.threads)))
        return
    if not args.data.is_file():
        sys.exit(f"{args.data} not found; pass --data")
    import torch

    import marketcast

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; marketcast "
          f"{marketcast.__version__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for n in args.sizes:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--data",
                               str(args.data), "--threads", str(args.threads)],
                              capture_output=True, text=True, env=env, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    keys = ["tickers", "train_windows", "val_windows", "pooled_mib", "load_s", "epoch_s",
            "windows_per_s", "peak_load_mib", "peak_train_mib", "peak_rss_mib"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---:|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
