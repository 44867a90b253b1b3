"""Time to accuracy: training seconds until the test RMSE first reaches 32.0 and the naive RMSE.

Data: S&P 500 close 2010-01-01 .. 2018-12-31, chronological 85/15 train/test split (no
validation period, so no early stopping), lookback 100, otherwise marketcast's default model
and training (log_return, 3 x LSTM(50), batch 64, Adam 1e-3). After every epoch the one-day
test forecasts from the true history are scored in price RMSE; the clock counts training
epochs only (``EpochLog.seconds``), not the scoring.

    .venv/bin/python benchmarks/bench_accuracy.py --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import numpy as np
import torch

import marketcast
from marketcast.config import ModelConfig, TrainConfig
from marketcast.models import LSTMForecaster

TARGET_RMSE = 32.0


class _Done(Exception):
    pass


def time_to_accuracy(seed: int = 0, max_epochs: int = 60, until: str = "naive") -> dict:
    frame = marketcast.load_prices("sp500", start="2010-01-01", end="2018-12-31")
    y = frame["close"].to_numpy(np.float64)
    n_test = round(0.15 * len(y))
    n_train = len(y) - n_test
    cutoffs = np.arange(n_train - 1, len(y) - 1)
    actual = y[cutoffs + 1]
    naive_rmse = float(np.sqrt(np.mean((y[cutoffs] - actual) ** 2)))
    model = LSTMForecaster.from_config(ModelConfig(lookback=100),
                                       TrainConfig(max_epochs=max_epochs, seed=seed))
    clock, curve, reached = 0.0, [], {}

    def score(log, _max_epochs):
        nonlocal clock
        clock += log.seconds
        y_hat = model.transform_.forecast(model._predict_scaled, y, None, cutoffs, 1)[:, 0]
        rmse = float(np.sqrt(np.mean((y_hat - actual) ** 2)))
        curve.append((log.epoch, round(clock, 2), round(rmse, 3)))
        for name, level in (("target", TARGET_RMSE), ("naive", naive_rmse)):
            if rmse <= level and name not in reached:
                reached[name] = (log.epoch, round(clock, 2))
        if until in reached:  # "naive" is reached last, or both in the same epoch
            raise _Done

    with contextlib.suppress(_Done):  # both levels reached: stop training
        model.fit(y[:n_train], callback=score)
    return {"naive_rmse": naive_rmse, "curve": curve, "reached": reached,
            "n_train": n_train, "n_test": n_test}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--until", choices=["target", "naive"], default="naive",
                        help="stop training once this level is reached")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = time_to_accuracy(args.seed, until=args.until)
    print(f"{result['n_train']} train / {result['n_test']} test days; naive test RMSE "
          f"{result['naive_rmse']:.3f}")
    for epoch, seconds, rmse in result["curve"]:
        print(f"epoch {epoch:3d}  {seconds:7.2f} s training  test RMSE {rmse:.3f}")
    for name, (epoch, seconds) in result["reached"].items():
        print(f"reached {name}: epoch {epoch}, {seconds:.2f} s of training")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
