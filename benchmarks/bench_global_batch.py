"""Time to accuracy of large-batch training of the global model, on all 505 tickers.

Each variant trains the default global model (3 x LSTM(50), lookback 60, log returns, every
ticker of all_stocks_5yr scaled on its own training rows) in a fresh process, with torch's
default threads, and records the pooled validation loss after every epoch and the wall
time of training so far (validation passes included, loading excluded):

* the reference: batch 64 at learning rate 1e-3, today's settings, for ``--ref-epochs``
  epochs. Its best validation loss is the target.
* each candidate ``BATCH:SCALING:WARMUP`` (e.g. ``1024:sqrt:100``): that batch with the
  learning rate scaled from batch 64 and warmed up over that many optimizer steps, stopped
  as soon as an epoch's validation loss is at or below the target, or once it has trained
  as long as the reference took to reach the target (it can then no longer be faster).

Printed per variant: seconds per epoch, windows per second, validation loss by epoch, and
the time to the target; then the reference's time to target divided by each candidate's.
One seed per variant: the runs are long (a batch-64 epoch over 402,418 windows is 2-3
minutes on 2 cores), so the ratio is one measurement, and the machine's load is printed
with it.

    .venv/bin/python benchmarks/bench_global_batch.py                        # ~30-60 min
    .venv/bin/python benchmarks/bench_global_batch.py --tickers 20 --ref-epochs 2 \\
        --candidates 256:sqrt:10                                            # ~1 min smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "all_stocks_5yr.csv.gz"
CANDIDATES = ["512:sqrt:200", "2048:sqrt:100"]


class Stop(Exception):
    """Raised by the epoch callback to end a variant's training."""


def train(settings: dict) -> dict:
    """One variant in this process: its epochs (loss, cumulative seconds) and throughput."""
    from marketcast.config import Config, DataConfig, TrainConfig
    from marketcast.data.sources import ticker_names
    from marketcast.pipeline.global_model import fit_global
    from marketcast.pipeline.panel import load_panel, pool

    tickers = sorted(ticker_names(settings["data"]))[: settings["tickers"]]
    config = Config(
        data=DataConfig(source=settings["data"], tickers=tuple(tickers)),
        train=TrainConfig(batch_size=settings["batch"], lr_scaling=settings["scaling"],
                          warmup_steps=settings["warmup"], max_epochs=settings["epochs"],
                          patience=settings["epochs"], seed=settings["seed"]))
    panel = load_panel(config, tickers)
    windows = len(pool(panel, config).train_cutoffs)
    epochs: list[dict] = []
    started = time.perf_counter()

    def record(log, max_epochs) -> None:
        epochs.append({"epoch": log.epoch, "val_loss": log.val_loss,
                       "seconds": time.perf_counter() - started, "epoch_s": log.seconds})
        reached = settings["target"] is not None and log.val_loss <= settings["target"]
        if reached or (settings["budget"] and epochs[-1]["seconds"] >= settings["budget"]):
            raise Stop

    with contextlib.suppress(Stop):
        fit_global(panel, config, callback=record)
    return {"windows": windows, "epochs": epochs,
            "windows_per_s": windows * len(epochs) / sum(e["epoch_s"] for e in epochs)}


def variant(label: str, settings: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", json.dumps(settings)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
    result = {"label": label, **settings, **json.loads(done.stdout.strip().splitlines()[-1])}
    losses = ", ".join(f"{e['val_loss']:.6f} @ {e['seconds']:.0f} s" for e in result["epochs"])
    print(f"{label}: {result['windows_per_s']:.0f} windows/s; validation loss by epoch: "
          f"{losses}  (load {os.getloadavg()[0]:.2f})", flush=True)
    return result


def time_to(result: dict, target: float) -> float | None:
    """Seconds until the first epoch at or below ``target`` (None: never)."""
    return next((e["seconds"] for e in result["epochs"] if e["val_loss"] <= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--tickers", type=int, default=505, help="the first n (alphabetical)")
    parser.add_argument("--ref-epochs", type=int, default=4)
    parser.add_argument("--candidates", nargs="+", default=CANDIDATES,
                        help="BATCH:SCALING:WARMUP_STEPS, e.g. 1024:sqrt:100")
    parser.add_argument("--max-epochs", type=int, default=20, help="a candidate's cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(train(json.loads(args.one))))
        return 0
    if not Path(args.data).is_file():
        sys.exit(f"{args.data} not found; pass --data")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    common = {"data": args.data, "tickers": args.tickers, "seed": args.seed}
    reference = variant("batch 64 (reference)", {
        **common, "batch": 64, "scaling": "none", "warmup": 0, "epochs": args.ref_epochs,
        "target": None, "budget": None})
    target = min(e["val_loss"] for e in reference["epochs"])
    ref_time = time_to(reference, target)
    print(f"target: validation loss {target:.6f}, reached by the reference in {ref_time:.0f} s")
    runs = [reference]
    for spec in args.candidates:
        batch, scaling, warmup = spec.split(":")
        result = variant(f"batch {batch}, {scaling} scaling, warm-up {warmup} steps", {
            **common, "batch": int(batch), "scaling": scaling, "warmup": int(warmup),
            "epochs": args.max_epochs, "target": target, "budget": ref_time})
        seconds = time_to(result, target)
        result["time_to_target"] = seconds
        result["speedup"] = ref_time / seconds if seconds else None
        print(f"  time to target: {'not reached' if seconds is None else f'{seconds:.0f} s'}"
              + (f", {result['speedup']:.2f}x sooner than batch 64" if seconds else ""),
              flush=True)
        runs.append(result)
    reference["time_to_target"] = ref_time
    if args.json:
        Path(args.json).write_text(json.dumps({"target": target, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
