"""OpenMP wait policy and thread count for one seed-model training step, on a busy machine.

Each variant is a fresh process (OpenMP reads ``OMP_WAIT_POLICY`` once, when torch loads):
a 3 x LSTM(50) step on a (64, 100, 1) batch (forward, backward, Adam), tuned malloc, timed
over ``--batches`` steps after 3 warm-up steps; variants alternate for ``--rounds`` rounds.
``marketcast`` (no policy set) is a process that imports marketcast before torch and leaves
the variable unset, i.e. what the package does by itself (OpenMP's default, ACTIVE; a
PASSIVE default was tried and dropped, benchmarks/README.md 3.1).

    .venv/bin/python benchmarks/bench_threads.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import sys, time
import marketcast  # leaves OMP_WAIT_POLICY alone
import torch
from torch import nn
from marketcast.perf import tune_malloc
torch.set_num_threads(int(sys.argv[1]))
tune_malloc()
torch.manual_seed(0)
lstm, head = nn.LSTM(1, 50, 3, batch_first=True, dropout=0.2), nn.Linear(50, 1)
opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()])
x, y = torch.randn(64, 100, 1), torch.randn(64, 1)
def step():
    opt.zero_grad(); out, _ = lstm(x); loss = ((head(out[:, -1]) - y) ** 2).mean()
    loss.backward(); opt.step()
for _ in range(3):
    step()
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter(); step(); times.append(time.perf_counter() - started)
print(1000 * sorted(times)[len(times) // 2])
"""

VARIANTS = [("ACTIVE", 2), ("PASSIVE", 2), ("ACTIVE", 1), ("PASSIVE", 1), (None, 2)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    times = {f"{policy or 'marketcast'}, {threads} thr": [] for policy, threads in VARIANTS}
    for r in range(args.rounds):
        for policy, threads in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            done = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(args.batches)],
                                  env=env, check=True, capture_output=True, text=True)
            times[f"{policy or 'marketcast'}, {threads} thr"].append(float(done.stdout))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in times.items()),
              file=sys.stderr, flush=True)
    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for name, values in times.items():
        print(f"{name:20s} median {statistics.median(values):8.1f} ms/step  "
              f"({', '.join(f'{v:.0f}' for v in values)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(times, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
