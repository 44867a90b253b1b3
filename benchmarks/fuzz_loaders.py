"""Fuzz the CSV loader and the CLI with messy price files; count how each case ended.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_loaders.py            # 1,000 cases
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_loaders.py --cases 5000 --seed 7

Cases are split between ``load_prices`` (most), ``marketcast data`` and ``marketcast run``
(a tiny model), using the strategies of ``tests/messy_csv.py``. Every case must end in
success or in one of our errors (one line at the CLI, exit code 2). Anything else is a
crash: its traceback and the file are printed, and the script exits with status 1. The test
suite runs the same checks on a few hundred cases (``tests/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from messy_csv import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    counts, crashes = fuzz(args.cases, args.seed)
    total = sum(counts.values())
    print(f"{total} cases in {time.perf_counter() - started:.0f} s (seed {args.seed})")
    for label, n in sorted(counts.items(), key=lambda item: (item[0].split()[0], -item[1])):
        print(f"{n:6}  {label}")
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for label, n in counts.items():
        target, result = label.split(None, 1)
        kinds[target][result if result == "ok" else result.split()[0]] += n
    for target, kind in sorted(kinds.items()):
        errors = kind.total() - kind["ok"] - kind["CRASH"]
        print(f"summary {target}: ok {kind['ok']}, our error {errors}, crash {kind['CRASH']}")
    for text in crashes.values():
        print("\n" + text)
    return 1 if any("CRASH" in label for label in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
