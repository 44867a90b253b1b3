"""One epoch of the global model trained data-parallel on Ray Train (``--train-workers N``).

For each worker count, in a fresh subprocess (its own local Ray, so memory is that run's
alone): load the first ``--tickers`` tickers of all_stocks_5yr (default: all 505), pool them,
and train one epoch of the default model (3 x LSTM(50), lookback 60, batch 64, validation
pass included) with :func:`marketcast.scale.train.fit_on_ray`; ``0`` workers is the same
epoch in this process (:func:`marketcast.nn.train.fit_network`), for reference.

Reported per run: the epoch's seconds as worker 0 timed it (training steps, gradient
averages and the validation pass), the wall seconds of the whole fit (Ray Train start-up and
checkpoint included), the peak of the summed RSS of the process tree (driver, Ray's servers
and workers; polled every 0.2 s with psutil; shared pages, such as the object store, are
counted once per process that maps them, so this overstates), the parameters, the steps per
epoch, and the bytes each worker sends and receives per step in a ring all-reduce of the
gradients: ``2 (N - 1) / N x parameters x 4`` bytes (float32), about twice the gradient size.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_train_epoch.py --tickers 10
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_train_epoch.py          # 505 tickers
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_train_epoch.py --workers 0 1 2 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "all_stocks_5yr.csv.gz"


class PeakMemory:
    """Peak of the summed RSS of this process and all its descendants while running."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _poll(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._done.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(self.interval)


def measure(workers: int, tickers: int | None, data: Path) -> dict:
    import ray
    import torch

    from marketcast.config import Config, DataConfig, TrainConfig
    from marketcast.data.sources import ticker_names
    from marketcast.nn.network import StackedLSTM
    from marketcast.nn.parallel import gradient_bytes
    from marketcast.nn.train import fit_network
    from marketcast.pipeline.panel import load_panel, pool
    from marketcast.scale.distributed import start_local
    from marketcast.scale.train import fit_on_ray

    names = sorted(ticker_names(str(data)))[:tickers]
    config = Config(data=DataConfig(source=str(data), tickers=tuple(names)),
                    train=TrainConfig(max_epochs=1))
    with PeakMemory() as memory:
        panel = load_panel(config, names)
        pooled = pool(panel, config)
        m, t = config.model, config.train
        torch.manual_seed(t.seed)
        net = StackedLSTM(pooled.Z.shape[1], m.units, m.layers, m.dropout, m.horizon)
        inputs = (pooled.Z, pooled.train_cutoffs, pooled.val_cutoffs)
        started = time.perf_counter()
        if workers == 0:
            history, _ = fit_network(net, *inputs, m.lookback, m.horizon, t)
        else:
            start_local(ray, num_cpus=os.cpu_count() or 1)
            try:
                history, _ = fit_on_ray(net, inputs, m.lookback, m.horizon, t, workers)
            finally:
                ray.shutdown()
        wall = time.perf_counter() - started
    n = max(workers, 1)
    share = len(pooled.train_cutoffs) // n
    steps = math.ceil(share / math.ceil(t.batch_size / n))
    size = gradient_bytes(net)
    return {
        "workers": workers, "tickers": len(panel.series),
        "train_windows": len(pooled.train_cutoffs), "val_windows": len(pooled.val_cutoffs),
        "epoch_s": round(history[0].seconds, 2), "fit_wall_s": round(wall, 2),
        "train_loss": history[0].train_loss, "peak_rss_tree_mib": round(memory.peak / 2**20),
        "parameters": size // 4, "steps_per_epoch": steps,
        "allreduce_bytes_per_step": round(2 * (n - 1) / n * size) if workers > 1 else 0,
        "gradient_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=None,
                        help="First n tickers of the file (default: all).")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.tickers, args.data)))
        return
    if not args.data.is_file():
        sys.exit(f"error: {args.data} not found; pass --data all_stocks_5yr.csv.gz")
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                      "python": platform.python_version()}))
    for workers in args.workers:
        runs = []
        for _ in range(args.repeats):
            command = [sys.executable, __file__, "--child", str(workers), "--data",
                       str(args.data)]
            if args.tickers:
                command += ["--tickers", str(args.tickers)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = runs[-1] | {
            "repeats": len(runs),
            "epoch_s_median": statistics.median(r["epoch_s"] for r in runs),
            "fit_wall_s_median": statistics.median(r["fit_wall_s"] for r in runs),
            "peak_rss_tree_mib_max": max(r["peak_rss_tree_mib"] for r in runs),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
