"""Choose model defaults on the VALIDATION period, never the test period.

For each configuration the LSTM and both baselines are fitted with
``marketcast.pipeline.series.fit_models`` on the rows before the test period (the LSTM sees
the validation rows only for early stopping) and scored with ``forecast_table`` +
``marketcast.evaluation.metrics.accuracy`` on the cutoffs whose targets are the validation
rows. Only
``series.head(split.test_start)`` is ever passed in, so nothing from the test period is
loaded into the comparison.

The split does not depend on the lookback or the transform (``split_rows`` only checks
them), so every configuration is scored on the same validation rows and the naive RMSE is
the same for all.

Run (takes 10-20 minutes on 2 cores; one CPU-heavy process, one thread):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/choose_defaults.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/choose_defaults.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import pandas as pd

# One thread unless told otherwise: the machine is shared.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from marketcast.config import Config  # noqa: E402
from marketcast.evaluation.metrics import accuracy  # noqa: E402
from marketcast.pipeline.series import fit_models, forecast_table, load_series, split_series  # noqa: E402

# (label, model overrides). The first block compares the transform at the default size, the
# second the lookback and the third the depth, both with log returns. "seed" is the classic
# notebook's setting (level, lookback 100, 3x50).
CANDIDATES: list[tuple[str, dict]] = [
    ("level    lb60  3x50", dict(target_transform="level", lookback=60, layers=3)),
    ("log_ret  lb60  3x50", dict(target_transform="log_return", lookback=60, layers=3)),
    ("log_ret  lb20  3x50", dict(target_transform="log_return", lookback=20, layers=3)),
    ("log_ret  lb100 3x50", dict(target_transform="log_return", lookback=100, layers=3)),
    ("log_ret  lb60  1x50", dict(target_transform="log_return", lookback=60, layers=1)),
    ("log_ret  lb60  2x50", dict(target_transform="log_return", lookback=60, layers=2)),
    ("level    lb100 3x50 (seed)", dict(target_transform="level", lookback=100, layers=3)),
]


def evaluate_on_validation(config: Config) -> dict:
    """Fit on rows before the test period; score on the validation rows only."""
    _, full = load_series(config)
    split = split_series(full, config)
    series = full.head(split.test_start)  # nothing from the test period past this line
    del full
    started = time.perf_counter()
    models = fit_models(series, split, config)
    fit_seconds = time.perf_counter() - started
    h = config.model.horizon
    cutoffs = np.arange(split.n_train - 1, split.test_start - h, dtype=np.int64)
    table = forecast_table(models, series, cutoffs, h)
    assert table["date"].min() == series.dates[split.n_train]
    assert table["date"].max() == series.dates[split.test_start - 1]
    scores = accuracy(table).set_index("model")
    lstm = models["lstm"]
    return {
        "val_rmse_lstm": scores.loc["lstm", "rmse"],
        "val_rmse_naive": scores.loc["naive", "rmse"],
        "val_rmse_linear": scores.loc["linear", "rmse"],
        "ratio": scores.loc["lstm", "rmse"] / scores.loc["naive", "rmse"],
        "linear_ratio": scores.loc["linear", "rmse"] / scores.loc["naive", "rmse"],
        # Diebold-Mariano p-value of the LSTM against naive on the validation rows.
        "dm_p": scores.loc["lstm", "dm_p_value"],
        "n": int(scores.loc["lstm", "n"]),
        "epochs": len(lstm.history_),
        "best_epoch": lstm.best_epoch_,
        "seconds": fit_seconds,
        "val_first": series.dates[split.n_train].date().isoformat(),
        "val_last": series.dates[split.test_start - 1].date().isoformat(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="substrings of candidate labels to run")
    parser.add_argument("--csv", help="also write the per-run rows to this CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    base = Config()
    base = dataclasses.replace(
        base, train=dataclasses.replace(base.train, max_epochs=args.max_epochs)
    )
    candidates = [c for c in CANDIDATES
                  if not args.only or any(s in c[0] for s in args.only)]
    rows = []
    for seed in args.seeds:
        for label, overrides in candidates:
            config = dataclasses.replace(
                base,
                model=dataclasses.replace(base.model, **overrides),
                train=dataclasses.replace(base.train, seed=seed),
            )
            result = evaluate_on_validation(config)
            rows.append({"config": label, "seed": seed, **result})
            r = rows[-1]
            print(f"{label:28s} seed {seed}  lstm {r['val_rmse_lstm']:8.3f}  naive "
                  f"{r['val_rmse_naive']:8.3f}  ratio {r['ratio']:.4f}  epochs {r['epochs']:3d} "
                  f"(best {r['best_epoch']:3d})  {r['seconds']:6.1f}s", flush=True)

    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    first = frame.iloc[0]
    print(f"\nValidation period {first['val_first']} .. {first['val_last']} "
          f"({first['n']} one-step forecasts); torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)\n")
    columns = ["config", "seed", "val_rmse_lstm", "val_rmse_naive", "ratio", "dm_p",
               "val_rmse_linear", "epochs", "best_epoch", "seconds"]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(frame[columns].to_string(index=False))
        if len(args.seeds) > 1:
            summary = frame.groupby("config", sort=False).agg(
                ratio_mean=("ratio", "mean"), ratio_min=("ratio", "min"),
                ratio_max=("ratio", "max"), lstm_rmse_mean=("val_rmse_lstm", "mean"),
                epochs_mean=("epochs", "mean"),
                seconds_mean=("seconds", "mean"),
            )
            print("\nAcross seeds:\n" + summary.to_string())
    best = frame.groupby("config", sort=False)["ratio"].mean().idxmin()
    print(f"\nLowest validation RMSE ratio (LSTM / naive): {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
