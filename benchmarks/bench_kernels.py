"""Other ways to compute the seed model's training step, against nn.LSTM as marketcast uses it.

One training step (3 x LSTM(50), lookback 100, 1 feature, dropout 0.2 between layers and on
the last output, linear head, MSE, backward, Adam), three ways, alternated round by round:

* ``nn.LSTM``: as shipped (``marketcast.nn.network.StackedLSTM``: one ``nn.LSTM`` call; PyTorch runs
  it through oneDNN's fused LSTM; its inter-layer dropout draws masks with ``bernoulli_``);
* ``per-layer``: three one-layer ``torch.lstm`` calls with the dropout masks drawn as
  ``torch.rand(...) >= p`` in between instead of with ``bernoulli_`` (both mask draws are
  timed on their own too, for one 64 x 100 x 50 inter-layer activation);
* ``fused C++``: ``benchmarks/kernels/fused_lstm.cpp``, an LSTM layer written out in C++ on
  ATen (input projections hoisted into one product, one small product per step, the gate
  arithmetic in one vectorised loop, backward through time by hand), compiled at start with
  ``torch.utils.cpp_extension`` (needs g++ and ninja; skipped with the reason if that fails).

Before timing, each alternative is checked against ``nn.LSTM`` with dropout off: largest
absolute difference of the outputs and largest relative difference of the weight gradients.

    .venv/bin/python benchmarks/bench_kernels.py --json results/latest/kernels.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_ceiling import DROPOUT, FEATURES, FLOPS_PER_WINDOW, LAYERS, LOOKBACK, UNITS, timed
from torch import nn

from marketcast.perf import tune_malloc

KERNEL = Path(__file__).parent / "kernels" / "fused_lstm.cpp"


def build_fused():
    """The fused layer as an autograd function, or the reason it could not be built."""
    from torch.utils import cpp_extension

    try:
        cpp_extension.load(name="marketcast_fused_lstm", sources=[str(KERNEL)],
                           extra_cflags=["-O3", "-fno-trapping-math"], is_python_module=False)
    except Exception as exc:  # any build failure just skips the variant
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    ops = torch.ops.marketcast_lstm

    class FusedLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # x (T, B, I) time-major
            hs, cs, gates = ops.forward(x, w_ih, w_hh, b_ih + b_hh)
            ctx.save_for_backward(x, w_ih, w_hh, hs, cs, gates)
            return hs

        @staticmethod
        def backward(ctx, dhs):
            x, w_ih, w_hh, hs, cs, gates = ctx.saved_tensors
            need_dx = ctx.needs_input_grad[0]
            dx, dw_ih, dw_hh, db = ops.backward(dhs.contiguous(), x, w_ih, w_hh, hs, cs, gates,
                                                need_dx)
            return (dx if need_dx else None), dw_ih, dw_hh, db, db

    return FusedLayer


def layer_weights(lstm: nn.LSTM, k: int) -> list[torch.Tensor]:
    return [getattr(lstm, f"{name}_l{k}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def run_lstm(kind: str, lstm: nn.LSTM, x: torch.Tensor, p: float, fused=None) -> torch.Tensor:
    """The (B, L, H) outputs of the top layer, computed the ``kind`` way."""
    if kind == "nn.LSTM":
        return lstm(x)[0]
    if kind == "per-layer":
        h, zeros = x, torch.zeros(1, x.shape[0], UNITS)
        for k in range(LAYERS):
            if k and p:
                h = h * (torch.rand(h.shape) >= p) * (1 / (1 - p))
            h = torch.lstm(h, (zeros, zeros), layer_weights(lstm, k), True, 1, 0.0, True, False,
                           True)[0]
        return h
    h = x.transpose(0, 1).contiguous()  # fused: time-major
    for k in range(LAYERS):
        if k and p:
            h = nn.functional.dropout(h, p, True)
        h = fused.apply(h, *layer_weights(lstm, k))
    return h.transpose(0, 1)


def agreement(kind: str, fused) -> tuple[float, float]:
    """(max |output difference|, max relative weight-gradient difference) vs nn.LSTM."""
    torch.manual_seed(1)
    lstm = nn.LSTM(FEATURES, UNITS, LAYERS, batch_first=True)
    x = torch.randn(64, LOOKBACK, FEATURES)
    ref, got = run_lstm("nn.LSTM", lstm, x, 0.0), run_lstm(kind, lstm, x, 0.0, fused)
    weight = torch.randn_like(ref)
    grads_ref = torch.autograd.grad((ref * weight).sum(), list(lstm.parameters()))
    grads = torch.autograd.grad((got * weight).sum(), list(lstm.parameters()))
    rel = max(((a - b).abs().max() / a.abs().max()).item()
              for a, b in zip(grads_ref, grads, strict=True))
    return (got - ref).abs().max().item(), rel


class Step:
    def __init__(self, kind: str, batch: int, fused=None):
        torch.manual_seed(0)
        self.kind, self.batch, self.fused = kind, batch, fused
        self.lstm = nn.LSTM(FEATURES, UNITS, LAYERS, batch_first=True, dropout=DROPOUT)
        self.head, self.drop = nn.Linear(UNITS, 1), nn.Dropout(DROPOUT)
        self.opt = torch.optim.Adam([*self.lstm.parameters(), *self.head.parameters()])
        self.x, self.y = torch.randn(batch, LOOKBACK, FEATURES), torch.randn(batch, 1)

    def __call__(self) -> None:
        out = run_lstm(self.kind, self.lstm, self.x, DROPOUT, self.fused)
        loss = nn.functional.mse_loss(self.head(self.drop(out[:, -1])), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_malloc()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; "
          "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    started = time.perf_counter()
    fused = build_fused()
    kinds = ["nn.LSTM", "per-layer"]
    if isinstance(fused, str):
        print(f"fused C++ variant skipped: {fused}")
    else:
        print(f"fused C++ kernel built or loaded in {time.perf_counter() - started:.1f} s")
        kinds.append("fused C++")
    checks = {}
    for kind in kinds[1:]:
        checks[kind] = agreement(kind, fused)
        print(f"{kind}: max |output - nn.LSTM| {checks[kind][0]:.1e}, "
              f"max relative gradient difference {checks[kind][1]:.1e}")
    steps = {(k, b): Step(k, b, fused) for k in kinds for b in (64, 256)}
    activation = torch.empty(LOOKBACK, 64, UNITS)
    masks = {"mask bernoulli_": lambda: torch.empty_like(activation).bernoulli_(1 - DROPOUT),
             "mask rand >= p": lambda: torch.rand(activation.shape) >= DROPOUT}
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for threads in ((1, 2) if r % 2 == 0 else (2, 1)):
            torch.set_num_threads(threads)
            order = list(steps.items()) if r % 2 == 0 else list(steps.items())[::-1]
            for (kind, batch), step in order:
                key = f"{kind}, B={batch}, {threads} thr"
                times.setdefault(key, []).append(timed(step, args.steps))
            for name, draw in masks.items():
                times.setdefault(f"{name}, {threads} thr", []).append(timed(draw, args.steps))
        print(f"round {r + 1} done; load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{'variant':28s} {'ms/step':>8s} {'win/s':>7s} {'GFLOP/s':>8s} "
          f"{'vs nn.LSTM':>10s}")
    for key in [k for k in times if k.startswith("mask")]:
        print(f"{key:28s} {1000 * statistics.median(times[key]):8.2f} ms per mask "
              f"({LOOKBACK} x 64 x {UNITS})")
    for key, values in times.items():
        if key.startswith("mask"):
            continue
        kind, batch, threads = key.split(", ")
        med = statistics.median(values)
        base = statistics.median(times[f"nn.LSTM, {batch}, {threads}"])
        size = int(batch[2:])
        print(f"{key:28s} {1000 * med:8.1f} {size / med:7.0f} "
              f"{size / med * FLOPS_PER_WINDOW / 1e9:8.1f} {base / med:9.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"times": times, "agreement": checks}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
