"""Fuzz the loaders: messy price files, and damaged run folders and checkpoints.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_loaders.py                 # every target
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_loaders.py --targets csv --cases 5000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fuzz_loaders.py --targets model_json,weights \\
        --cases 1000 --workers 2 --json benchmarks/results/fuzz_loaders.json

``csv``: cases split between ``load_prices`` (most), ``marketcast data`` and ``marketcast
run`` (a tiny model), using the strategies of ``tests/messy_csv.py``. The artifact targets
(``tests/messy_artifacts.py``: model_json, weights, metrics_json, config_toml,
checkpoint_state, checkpoint_json, session_json) damage one file of a tiny trained folder
per case and load it with the manifest kept (it must refuse) and recomputed (the schema
checks must refuse, or the load succeed with finite forecasts), in reused worker processes
with a timeout per case; the peak resident memory of each case is measured. Every case must
end in success or in one of our errors (one line at the CLI). Anything else is a crash, a
case past the timeout a hang: their tracebacks are printed, and the script exits with
status 1. The test suite runs the same checks on fewer cases (``tests/test_fuzz.py``,
``tests/test_fuzz_artifacts.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from messy_artifacts import TARGETS, fuzz_artifacts  # noqa: E402


def csv_target(cases: int, seed: int) -> tuple[dict, bool]:
    from messy_csv import fuzz

    counts, crashes = fuzz(cases, seed)
    for label, n in sorted(counts.items(), key=lambda item: (item[0].split()[0], -item[1])):
        print(f"{n:6}  {label}")
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for label, n in counts.items():
        target, result = label.split(None, 1)
        kinds[target][result if result == "ok" else result.split()[0]] += n
    summary = {}
    for target, kind in sorted(kinds.items()):
        errors = kind.total() - kind["ok"] - kind["CRASH"]
        summary[target] = {"ok": kind["ok"], "error": errors, "crash": kind["CRASH"], "hang": 0}
        print(f"summary csv/{target}: ok {kind['ok']}, clean error {errors}, "
              f"crash {kind['CRASH']}, hang 0")
    for text in crashes.values():
        print("\n" + text)
    return {"counts": summary, "crashes": crashes}, bool(crashes)


def progress(done: collections.Counter) -> None:
    total = done.total()
    if total % 50 == 0:
        print(f"{time.strftime('%H:%M:%S')} {total} cases done", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="all",
                        help=f"comma-separated: csv, {', '.join(TARGETS)}; or all")
    parser.add_argument("--cases", type=int, default=1000, help="cases per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds: a hang")
    parser.add_argument("--budget", type=float, help="seconds: start no artifact case after")
    parser.add_argument("--json", help="write the counts, crashes and peaks here")
    args = parser.parse_args()
    targets = ["csv", *TARGETS] if args.targets == "all" else args.targets.split(",")
    unknown = set(targets) - {"csv", *TARGETS}
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    failed, out = False, {"seed": args.seed, "cases": args.cases, "targets": {}}
    if "csv" in targets:
        started = time.perf_counter()
        out["targets"]["csv"], failed = csv_target(args.cases, args.seed)
        out["targets"]["csv"]["seconds"] = round(time.perf_counter() - started, 1)
    chosen = [t for t in targets if t != "csv"]
    if chosen:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as root:
            report = fuzz_artifacts(chosen, args.cases, args.seed, Path(root), args.workers,
                                    args.timeout, args.budget, progress)
        seconds = time.perf_counter() - started
        print(f"\n{args.cases} cases per target asked, x {len(chosen)} targets, in "
              f"{seconds:.0f} s (seed {args.seed}, {args.workers} workers); run: "
              + ", ".join(f"{t} {one['cases']}" for t, one in report.items()))
        for target, one in report.items():
            for label, n in sorted(one["labels"].items(), key=lambda item: -item[1]):
                print(f"{n:6}  {target} {label}")
        worst = max(report.items(), key=lambda item: item[1]["peak"][0])
        for target, one in report.items():
            for mode, counts in one["counts"].items():
                print(f"summary {target}/{mode}: ok {counts.get('ok', 0)}, clean error "
                      f"{counts.get('error', 0)}, crash {counts.get('crash', 0)}, "
                      f"hang {counts.get('hang', 0)}; peak memory "
                      f"{one['peak'][0] / 1024:.0f} MiB (case {one['peak'][1]}), largest rise "
                      f"in a case {one['rise'][0] / 1024:.0f} MiB (case {one['rise'][1]})")
            for text in one["crashes"].values():
                print(f"\n{target}: {text}")
            failed |= bool(one["crashes"])
        rise = max(report.items(), key=lambda item: item[1]["rise"][0])
        print(f"worst peak memory: {worst[1]['peak'][0] / 1024:.0f} MiB ({worst[0]}, case "
              f"{worst[1]['peak'][1]}); largest rise within a case "
              f"{rise[1]['rise'][0] / 1024:.0f} MiB ({rise[0]}, case {rise[1]['rise'][1]})")
        out["targets"] |= {t: {**one, "labels": dict(one["labels"])} for t, one in report.items()}
        out["artifact_seconds"] = round(seconds, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
