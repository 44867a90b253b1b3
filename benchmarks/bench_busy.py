"""Training on a busy machine: bench_train.py while other processes keep the cores busy.

Starts ``--hogs`` processes that spin on the CPU (what another user's job does to us), then
runs ``bench_train.py`` (ours, the two-halves step of marketcast.nn.train, against the plain
``nn.LSTM`` reference loop, epoch by epoch, alternating) on 2 threads and on 1 thread, and
stops the hogs. On 2 threads the reference loop runs each op on two OpenMP threads, which
spin-wait for a core (benchmarks/README.md 4.1); ours runs every training op on one thread.

    .venv/bin/python benchmarks/bench_busy.py --hogs 2 --json results/latest/busy.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def spin() -> None:
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    results = {}
    try:
        for threads in (2, 1):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "train.json"
                subprocess.run([sys.executable, str(HERE / "bench_train.py"), "--repeats",
                                str(args.repeats), "--threads", str(threads), "--json",
                                str(out)], check=True, stdout=sys.stderr)
                results[threads] = json.loads(out.read_text())
    finally:
        for hog in hogs:
            hog.terminate()
    print(f"\n== training with {args.hogs} spinning processes on the machine ==")
    for threads, run in results.items():
        med = {loop: statistics.median(t) for loop, t in run["times"].items()}
        ratio = med["reference"] / med["ours"]
        print(f"{threads} thread(s): ours {med['ours']:.2f} s/epoch, reference "
              f"{med['reference']:.2f} s/epoch, reference / ours {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"hogs": args.hogs, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
