"""Training throughput of the seed model: marketcast's loop against a plain PyTorch loop.

Model (the seed notebook's): 3 x LSTM(50), lookback 100, batch 64, dropout 0.2, 1 feature
(the scaled S&P 500 close, ``level``), a Linear(50, 1) head; Adam lr 1e-3, MSE, gradient
clipping at norm 1.0. Data: every window of ``load_prices('sp500', start='2010-01-01')``
(2,264 days -> 2,164 windows).

* ours: ``marketcast.nn.train.fit_network`` for one epoch per call, no validation cutoffs (so
  no early stopping and no best-weight copies); windows are gathered per batch from a
  strided view of the (T, F) inputs. The whole call is timed (setup included).
* reference: a plain loop over pre-materialised contiguous window tensors (N, 100, 1) and
  targets (N, 1), shuffled per epoch by index, around an ``nn.LSTM`` of the same shapes
  with the same dropout, head, optimizer, loss and clipping.

After one warm-up epoch of each, the two alternate (ours, ref, then ref, ours, ...) for
``--repeats`` epochs each; the median epoch time of each is reported.

FLOPs: per window, per LSTM layer, per time step the gate matmuls are 4*H*(I+H)
multiply-adds = 8*H*(I+H) FLOPs forward (I = layer input size, H = 50); forward+backward is
taken as 3x forward. Gate nonlinearities, dropout, the head and the optimizer are left out.
For the seed model that is (8*50*51 + 2*8*50*100) * 100 steps = 10.04 MFLOP forward,
30.12 MFLOP forward+backward per window.

Run when nothing else heavy runs (it uses 2 threads by default):

    .venv/bin/python benchmarks/bench_train.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

import marketcast
from marketcast.config import TrainConfig
from marketcast.models.windows import WindowTransform
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import fit_network

LOOKBACK, UNITS, LAYERS, DROPOUT, BATCH, HORIZON, FEATURES = 100, 50, 3, 0.2, 64, 1, 1


def gemm_peak(threads: int, size: int = 1024, repeats: int = 30) -> tuple[float, float]:
    """(best, median) GFLOP/s of a float32 (size x size) @ (size x size) matmul."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    torch.set_num_threads(previous)
    return max(rates), statistics.median(rates)


def flops_per_window(lookback=LOOKBACK, units=UNITS, layers=LAYERS, features=FEATURES):
    """(forward, forward+backward) FLOPs of the LSTM gate matmuls for one window."""
    forward = 0
    for layer in range(layers):
        inputs = features if layer == 0 else units
        forward += 2 * 4 * units * (inputs + units)  # 4H(I+H) multiply-adds, 2 FLOPs each
    forward *= lookback
    return forward, 3 * forward


class Reference(nn.Module):
    """The same network as marketcast.nn.network.StackedLSTM, written out plainly."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, UNITS, num_layers=LAYERS, batch_first=True,
                            dropout=DROPOUT)
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(UNITS, HORIZON)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the per-epoch times and the GEMM peak here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    frame = marketcast.load_prices("sp500", start="2010-01-01")
    y = frame["close"].to_numpy(np.float64)
    transform = WindowTransform(LOOKBACK, HORIZON, "level").fit(y, None, n_train=len(y))
    Z = transform.inputs(y)  # (T, 1) float32
    cutoffs = transform.cutoffs(0, len(y))  # every window with a target
    n = len(cutoffs)
    config = TrainConfig(batch_size=BATCH, max_epochs=1, patience=10**6, seed=0)
    no_val = cutoffs[:0]

    torch.manual_seed(0)
    ours = StackedLSTM(FEATURES, UNITS, LAYERS, DROPOUT, HORIZON)
    ref = Reference()
    ref.load_state_dict(ours.state_dict())  # same shapes, same starting weights

    # Reference data: materialised once, contiguous.
    X_all = torch.from_numpy(np.ascontiguousarray(transform.windows(Z, cutoffs)))  # (N, L, F)
    Y_all = torch.from_numpy(np.ascontiguousarray(transform.targets(Z, cutoffs)))  # (N, 1)
    assert X_all.shape == (n, LOOKBACK, FEATURES) and Y_all.shape == (n, HORIZON)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=config.learning_rate)
    loss_fn = nn.MSELoss()
    gen = torch.Generator().manual_seed(0)

    def epoch_ours() -> float:
        started = time.perf_counter()
        history, _ = fit_network(ours, Z, cutoffs, no_val, LOOKBACK, HORIZON, config)
        elapsed = time.perf_counter() - started
        assert len(history) == 1
        return elapsed

    def epoch_ref() -> float:
        started = time.perf_counter()
        ref.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            x, t = X_all[idx], Y_all[idx]
            ref_opt.zero_grad(set_to_none=True)
            loss = loss_fn(ref(x), t)
            loss.backward()
            nn.utils.clip_grad_norm_(ref.parameters(), config.clip_norm)
            ref_opt.step()
            total += loss.item() * len(x)
        assert np.isfinite(total)
        return time.perf_counter() - started

    print(f"marketcast {marketcast.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"data: {len(y)} days {frame.index[0].date()} .. {frame.index[-1].date()}, "
          f"{n} windows of {LOOKBACK} x {FEATURES}, batch {BATCH}, "
          f"{-(-n // BATCH)} batches/epoch")
    if hasattr(os, "getloadavg"):
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    warm = epoch_ours(), epoch_ref()
    print(f"warm-up epoch: ours {warm[0]:.3f}s, reference {warm[1]:.3f}s")
    times = {"ours": [], "reference": []}
    for r in range(args.repeats):
        order = ("ours", "reference") if r % 2 == 0 else ("reference", "ours")
        for name in order:
            times[name].append(epoch_ours() if name == "ours" else epoch_ref())
        print(f"repeat {r + 1}: ours {times['ours'][-1]:.3f}s, "
              f"reference {times['reference'][-1]:.3f}s", flush=True)
    if hasattr(os, "getloadavg"):
        print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    fwd, train_flops = flops_per_window()
    print(f"\nFLOPs per window: {fwd / 1e6:.2f} M forward, {train_flops / 1e6:.2f} M "
          f"forward+backward (= 3 x forward; gate matmuls only, 8*H*(I+H) per layer-step)")
    print(f"{'loop':10s} {'median s/epoch':>15s} {'min':>7s} {'max':>7s} "
          f"{'windows/s':>10s} {'GFLOP/s':>8s}")
    medians = {}
    for name, values in times.items():
        med = statistics.median(values)
        medians[name] = med
        print(f"{name:10s} {med:15.3f} {min(values):7.3f} {max(values):7.3f} "
              f"{n / med:10.0f} {n * train_flops / med / 1e9:8.2f}")
    print(f"\nratio ours / reference (median epoch time): "
          f"{medians['ours'] / medians['reference']:.3f}")
    # On a shared machine one slow epoch can swamp a median of few repeats; the fastest
    # epochs and the ratios of back-to-back pairs are less sensitive to other load.
    paired = [a / b for a, b in zip(times["ours"], times["reference"], strict=True)]
    print(f"ratio ours / reference (fastest epochs): "
          f"{min(times['ours']) / min(times['reference']):.3f}")
    print(f"ratio ours / reference (median of back-to-back pairs): "
          f"{statistics.median(paired):.3f}")
    peak, peak_median = gemm_peak(args.threads)
    print(f"GEMM peak (1024^3 float32 matmul, {args.threads} threads): best {peak:.1f} GFLOP/s, "
          f"median {peak_median:.1f}; ours reaches "
          f"{100 * n * train_flops / medians['ours'] / 1e9 / peak:.0f}% of the best")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "windows": n, "flops_per_window": train_flops,
                       "gemm_peak": peak, "gemm_median": peak_median,
                       "tuned_malloc": os.environ.get("MARKETCAST_TUNE_MALLOC", "1") != "0"}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
