"""How near the GEMM peak can a seed-model training step get on this machine?

A ceiling, measured: the matrix products of one training step of the seed model (3 x
LSTM(50), lookback 100, 1 feature), issued back to back with nothing else: no gate
nonlinearities, no dropout, no optimizer, no autograd. Whatever kernel computes the LSTM must
do at least these products in this order (the recurrence makes each time step wait for the
previous one), so a kernel that calls PyTorch's matrix products this way cannot be faster
than this "GEMM floor" (one that called the BLAS without PyTorch's ~1-2 us dispatch per
product, or a hand-written small-matrix kernel, could be). The floor uses the cheapest
formulation there is: the input projections of all time steps hoisted into one large product
per layer (forward) and the weight gradients summed over all steps in one large product
(backward); only h_{t-1} @ W_hh^T (forward) and dgates_t @ W_hh (backward) stay per step,
(B x 50) x (50 x 200) and (B x 200) x (200 x 50).

Variants, alternated round by round in one process:

* ``floor``: the GEMMs only, for a batch of B windows, K models (K > 1: K independent models
  of the batched-recurrence idea, each product a ``torch.bmm`` over the K models);
* ``floor B=64 as 2 x 32``: the batch split in two halves, each half's GEMMs in its own
  1-thread process, both started together (the windows of a batch are independent until
  their gradients are summed, so this is the other way to use two cores; the sum of the
  weight gradients, 7 small additions, is not counted);
* ``nn.LSTM``: a real training step as marketcast does it (``nn.LSTM`` with dropout 0.2,
  linear head, MSE, backward, Adam) for comparison, and the same with the batch split into
  two 1-thread processes (``nn.LSTM B=64 as 2 x 32``; the all-reduce of the gradients that
  data-parallel training would add is not included);

each on 1 and 2 torch threads, and the float32 GEMM peak (1024^3 matmul) on 1 and 2 threads.
FLOPs per window are counted as in bench_train.py (30.12 MFLOP forward + backward); the
floor's own products add up to the same count within 1% (printed).

    .venv/bin/python benchmarks/bench_ceiling.py --json results/latest/ceiling.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time

import torch
from bench_train import (
    DROPOUT,
    FEATURES,
    LAYERS,
    LOOKBACK,
    UNITS,
    flops_per_window,
    gemm_peak,
)
from torch import nn

from marketcast.perf import tune_malloc

FLOPS_PER_WINDOW = flops_per_window()[1]  # 30.12 MFLOP forward + backward, as bench_train


class Floor:
    """The GEMMs of one training step for K models x B windows, on preallocated buffers."""

    def __init__(self, batch: int, models: int):
        K, B, T, H = models, batch, LOOKBACK, UNITS
        self.K, self.B = K, B
        sizes = [FEATURES] + [H] * (LAYERS - 1)
        self.x = [torch.randn(K, T * B, i) for i in sizes]  # layer inputs, time-major rows
        self.w_ih = [torch.randn(K, 4 * H, i) * 0.1 for i in sizes]
        self.w_hh = torch.randn(K, 4 * H, H) * 0.1
        self.bias = torch.randn(K, 1, 4 * H)
        self.gates = torch.randn(K, T, B, 4 * H)
        self.hs = torch.randn(K, T, B, H)
        self.dh = torch.empty(K, B, H)
        self.dw_ih = [torch.empty(K, 4 * H, i) for i in sizes]
        self.dw_hh = torch.empty(K, 4 * H, H)
        self.dx = torch.empty(K, T * B, H)

    def flops(self) -> int:
        K, B, T, H = self.K, self.B, LOOKBACK, UNITS
        total = 0
        for k in range(LAYERS):
            i = FEATURES if k == 0 else H
            total += 2 * T * B * i * 4 * H  # input projection
            total += 2 * (T - 1) * B * H * 4 * H  # recurrent products
            total += 2 * (T - 1) * B * 4 * H * H  # dh
            total += 2 * 4 * H * T * B * i  # dW_ih
            total += 2 * 4 * H * (T - 1) * B * H  # dW_hh
            if k > 0:
                total += 2 * T * B * 4 * H * i  # dX
        return K * total

    def step(self) -> None:
        K, B, T, H = self.K, self.B, LOOKBACK, UNITS
        gates, hs, w_hh_t = self.gates, self.hs, self.w_hh.transpose(1, 2)
        flat = gates.view(K, T * B, 4 * H)
        for k in range(LAYERS):
            torch.baddbmm(self.bias, self.x[k], self.w_ih[k].transpose(1, 2), out=flat)
            for t in range(1, T):
                torch.baddbmm(gates[:, t], hs[:, t - 1], w_hh_t, out=gates[:, t])
        for k in reversed(range(LAYERS)):
            for t in range(T - 1, 0, -1):
                torch.bmm(gates[:, t], self.w_hh, out=self.dh)
            torch.bmm(flat.transpose(1, 2), self.x[k], out=self.dw_ih[k])
            torch.bmm(gates[:, 1:].reshape(K, -1, 4 * H).transpose(1, 2),
                      hs[:, :-1].reshape(K, -1, H), out=self.dw_hh)
            if k > 0:
                torch.bmm(flat, self.w_ih[k], out=self.dx)


class SeedStep:
    """One real training step of the seed model, as marketcast trains it (nn.LSTM)."""

    def __init__(self, batch: int):
        torch.manual_seed(0)
        self.lstm = nn.LSTM(FEATURES, UNITS, LAYERS, batch_first=True, dropout=DROPOUT)
        self.head = nn.Linear(UNITS, 1)
        self.drop = nn.Dropout(DROPOUT)
        params = list(self.lstm.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3)
        self.x, self.y = torch.randn(batch, LOOKBACK, FEATURES), torch.randn(batch, 1)
        self.B, self.K = batch, 1

    def step(self) -> None:
        out, _ = self.lstm(self.x)
        loss = nn.functional.mse_loss(self.head(self.drop(out[:, -1])), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def timed(fn, steps: int) -> float:
    """Median seconds of ``steps`` calls after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _half(real: bool, batch: int, steps: int, barrier, results) -> None:
    tune_malloc()
    torch.set_num_threads(1)
    variant = SeedStep(batch) if real else Floor(batch, 1)
    variant.step()
    barrier.wait()
    results.put(timed(variant.step, steps))


class Split:
    """One batch split over two 1-thread processes: the floor's GEMMs or real steps."""

    B, K = 64, 1

    def __init__(self, real: bool):
        self.real = real
        self.context = multiprocessing.get_context("spawn")

    def timed(self, steps: int) -> float:
        """Median seconds per step of the slower half, both halves running at once."""
        barrier, results = self.context.Barrier(2), self.context.Queue()
        halves = [self.context.Process(target=_half,
                                       args=(self.real, self.B // 2, steps, barrier, results))
                  for _ in range(2)]
        for p in halves:
            p.start()
        seconds = max(results.get() for _ in halves)
        for p in halves:
            p.join()
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=7, help="timed steps per variant per round")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_malloc()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; "
          "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    variants = {
        "floor B=64": Floor(64, 1), "floor B=256": Floor(256, 1),
        "floor B=64 K=10": Floor(64, 10),
        "nn.LSTM B=64": SeedStep(64), "nn.LSTM B=256": SeedStep(256),
    }
    floor = variants["floor B=64"]
    print(f"FLOPs per window: {FLOPS_PER_WINDOW / 1e6:.2f} M counted, the floor's products "
          f"{floor.flops() / floor.B / 1e6:.2f} M")
    times: dict[str, list[float]] = {f"{n}, {t} thr": [] for n in variants for t in (1, 2)}
    splits = {"floor B=64 as 2 x 32, 2 thr": Split(False),
              "nn.LSTM B=64 as 2 x 32, 2 thr": Split(True)}
    times.update({name: [] for name in splits})
    peaks: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        order = list(variants.items()) if r % 2 == 0 else list(variants.items())[::-1]
        for threads in ((1, 2) if r % 2 == 0 else (2, 1)):
            torch.set_num_threads(threads)
            peaks[threads].append(gemm_peak(threads)[0])
            for name, variant in order:
                times[f"{name}, {threads} thr"].append(timed(variant.step, args.steps))
            if threads == 2:  # two 1-thread processes: the machine's two cores
                for name, split in splits.items():
                    times[name].append(split.timed(args.steps))
        print(f"round {r + 1} done; load average {os.getloadavg()[0]:.2f}", flush=True)

    peak = {t: max(v) for t, v in peaks.items()}
    print(f"\nGEMM peak (best 1024^3 float32 matmul): 1 thread {peak[1]:.1f}, "
          f"2 threads {peak[2]:.1f} GFLOP/s")
    print(f"{'variant':28s} {'ms/step':>8s} {'win/s':>7s} {'GFLOP/s':>8s} "
          f"{'% peak(same thr)':>17s} {'% 2-thr peak':>13s}")
    rates = {}
    for name, values in times.items():
        variant = variants.get(name.rsplit(",", 1)[0]) or splits[name]
        threads = int(name.rsplit(",", 1)[1].split()[0])
        med = statistics.median(values)
        windows = variant.K * variant.B / med
        rate = windows * FLOPS_PER_WINDOW / 1e9
        rates[name] = rate
        print(f"{name:28s} {1000 * med:8.1f} {windows:7.0f} {rate:8.1f} "
              f"{100 * rate / peak[threads]:16.0f}% {100 * rate / peak[2]:12.0f}%")
    # The batched-recurrence ceiling for the 10-refit backtest: K models at the floor's rate,
    # against fitting them one after another with nn.LSTM (2 threads), and against two
    # one-thread processes each at the one-thread floor.
    seq = rates["nn.LSTM B=64, 2 thr"]
    best = max(rates["floor B=64 K=10, 2 thr"], 2 * rates["floor B=64, 1 thr"])
    print(f"\nceiling of any K-model batching or 2-process scheme over nn.LSTM folds one after "
          f"another (2 threads): {best / seq:.2f}x (the goal asks for 5x)")
    best_single = max(rates["floor B=64, 2 thr"], rates["floor B=64 as 2 x 32, 2 thr"])
    print(f"ceiling of a single-model kernel at batch 64 on PyTorch's products: "
          f"{100 * best_single / peak[2]:.0f}% of the 2-thread peak (the goal asks for 60%)")
    print(f"ceiling of any scheme over nn.LSTM folds one after another, at the full peak: "
          f"{peak[2] / seq:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "peaks": peaks, "flops_per_window": FLOPS_PER_WINDOW,
                       "floor_flops_per_window": floor.flops() / floor.B}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
