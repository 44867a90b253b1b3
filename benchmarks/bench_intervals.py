"""Risk-aware intervals against the goals of benchmarks/README.md section 5, on three series.

For each series, one default walk-forward backtest (250 cutoffs, refit every 25, 90%
intervals) of ``lstm, naive, garch``; then every interval method on that one table:
``conformal``, ``scaled``, ``aci`` (``marketcast.evaluation.adaptive``) and GARCH(1,1)-t's
own bounds, and the method ``auto`` chooses on the first third of the cutoffs with
intervals. Every method is scored on the same evaluation cutoffs (after the last
validation outcome), step 1: coverage overall and per volatility tercile, mean width,
interval score, Kupiec and Christoffersen conditional-coverage p-values, and a
Diebold-Mariano test of equal mean interval score against plain conformal of the same model
(and of the LSTM's intervals against GARCH's), run on the square roots of the scores so
that the test's squared "errors" are the scores.

    .venv/bin/python benchmarks/bench_intervals.py                 # the three series
    .venv/bin/python benchmarks/bench_intervals.py --series sp500  # one

Series: ``sp500`` (the bundled default), ``aapl`` (AAPL from all_stocks_5yr.csv.gz,
2013-2018) and ``gspc2000`` (the S&P 500 index 2000-2010 from GSPC.csv.gz), the last two
from ``--shared`` (default ``../shared/data`` beside the repository).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marketcast.config import Config
from marketcast.evaluation.adaptive import choose_method, evaluation_part, interval_tables
from marketcast.evaluation.interval_tests import interval_evaluation, volatility_regimes
from marketcast.evaluation.intervals import ewma_volatility
from marketcast.evaluation.stats import diebold_mariano
from marketcast.pipeline.series import load_series
from marketcast.pipeline.walkforward import walk_forward

LEVEL = 0.9


def series_config(name: str, shared: Path) -> Config:
    config = Config()
    data = config.data
    if name == "aapl":
        data = dataclasses.replace(data, source=str(shared / "all_stocks_5yr.csv.gz"),
                                   ticker="AAPL", start=None)
    elif name == "gspc2000":
        data = dataclasses.replace(data, source=str(shared / "GSPC.csv.gz"),
                                   start="2000-01-01", end="2010-12-31")
    return dataclasses.replace(
        config, data=data,
        backtest=dataclasses.replace(config.backtest, models=("lstm", "naive", "garch")))


def measure(name: str, shared: Path) -> dict:
    config = series_config(name, shared)
    _, series = load_series(config)
    started = time.perf_counter()
    table, _ = walk_forward(series, config)
    seconds = time.perf_counter() - started
    tables = interval_tables(table, LEVEL, ewma_volatility(series.dates, series.y))
    choice = choose_method(tables, LEVEL)
    regimes = volatility_regimes(series.dates, series.y)
    rows, scored = [], {}
    for method, banded in tables.items():
        part = evaluation_part(banded, choice)
        part = part[part["step"] == 1].dropna(subset=["lower"])
        for model, group in part.groupby("model", sort=False):
            label = "garch (own)" if model == "garch" else f"{model}, {method}"
            if label in scored:
                continue  # GARCH's bounds are the same in every method's table
            scored[label] = group.sort_values("cutoff")
            one = interval_evaluation(group, LEVEL, regimes).iloc[0].to_dict()
            rows.append({"series": name, "intervals": label, **one})
    out = pd.DataFrame(rows)
    out["dm_p_vs_conformal"] = [_dm(scored, r, f"{r.split(',')[0]}, conformal")
                                for r in out["intervals"]]
    out["dm_p_vs_garch"] = [_dm(scored, r, "garch (own)") if r.startswith("lstm") else np.nan
                            for r in out["intervals"]]
    return {"series": name, "rows": out, "choice": choice.to_dict(),
            "cutoffs": int(table["cutoff"].nunique()), "walk_forward_seconds": seconds,
            "first_cutoff": str(table["cutoff"].min().date()),
            "last_cutoff": str(table["cutoff"].max().date())}


def _dm(scored: dict, label: str, against: str) -> float:
    """p of equal mean interval score (Diebold-Mariano on the square roots of the scores)."""
    from marketcast.evaluation.interval_tests import interval_score

    if label == against or against not in scored:
        return np.nan
    a, b = scored[label], scored[against]
    both = a.merge(b, on="cutoff", suffixes=("_a", "_b"))
    s_a = interval_score(both["y_a"], both["lower_a"], both["upper_a"], LEVEL)
    s_b = interval_score(both["y_b"], both["lower_b"], both["upper_b"], LEVEL)
    return diebold_mariano(np.sqrt(s_a), np.sqrt(s_b))[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", default="sp500,aapl,gspc2000")
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", help="also write every number here")
    args = parser.parse_args(argv)
    results = []
    for name in args.series.split(","):
        result = measure(name, args.shared)
        results.append(result)
        print(f"\n## {name}: {result['cutoffs']} cutoffs {result['first_cutoff']} to "
              f"{result['last_cutoff']} (walk-forward {result['walk_forward_seconds']:.0f} s)")
        c = result["choice"]
        print(f"auto: {c['method']} (validation {c['validation_cutoffs'][0]} to "
              f"{c['validation_cutoffs'][1]}, mean interval score "
              + ", ".join(f"{m} {s:.4g}" for m, s in c["validation_scores"].items())
              + f"); scored from {c['evaluation_from']}")
        shown = result["rows"][["intervals", "n", "coverage", "coverage_low", "coverage_mid",
                                "coverage_high", "mean_width", "interval_score", "kupiec_p",
                                "christoffersen_cc_p", "dm_p_vs_conformal", "dm_p_vs_garch"]]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{**r, "rows": r["rows"].to_dict(orient="records")} for r in results],
            indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
