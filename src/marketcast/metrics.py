"""Accuracy metrics as pure functions of the long forecast table.

The table has one row per (model, cutoff, step): columns ``model, cutoff, date, step, y,
y_hat, y_cutoff`` where ``y_cutoff`` is the last price observed at the cutoff. All values are
in price units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketcast.stats import binomial_p_value, diebold_mariano

BENCHMARK = "naive"


def accuracy(table: pd.DataFrame, by_step: bool = False) -> pd.DataFrame:
    """Per model (and per step): n, MSE, RMSE, MAE, MAPE (%), directional accuracy (%),
    its binomial p-value against 50%, Theil's U and the Diebold-Mariano test against naive."""
    keys = ["model", "step"] if by_step else ["model"]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        rows.append({**dict(zip(keys, np.atleast_1d(key), strict=True)),
                     **_scores(group, table)})
    out = pd.DataFrame(rows)
    return out


def _scores(group: pd.DataFrame, table: pd.DataFrame) -> dict:
    err = (group["y_hat"] - group["y"]).to_numpy()
    y = group["y"].to_numpy()
    moved = np.sign(group["y"].to_numpy() - group["y_cutoff"].to_numpy())
    called = np.sign(group["y_hat"].to_numpy() - group["y_cutoff"].to_numpy())
    # A forecast of "no change" calls no direction: it counts as a miss.
    hits = int(np.sum((called == moved) & (called != 0)))
    trials = int(np.sum(moved != 0))
    base = _benchmark_errors(group, table)
    rmse = float(np.sqrt(np.mean(err**2)))
    base_rmse = float(np.sqrt(np.mean(base**2)))
    steps = group["step"].to_numpy()
    dm_stat, dm_p = (np.nan, np.nan)
    if group["model"].iloc[0] != BENCHMARK:
        dm_stat, dm_p = diebold_mariano(err, base, h=int(steps.max()))
    return {
        "n": len(group),
        "mse": float(np.mean(err**2)),
        "rmse": rmse,
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err / y)) * 100),
        # NaN for a model that never calls a direction (the random walk).
        "directional_accuracy": 100.0 * hits / trials if trials and called.any() else np.nan,
        "direction_p_value": binomial_p_value(hits, trials),
        "theils_u": rmse / base_rmse if base_rmse > 0 else np.nan,
        "dm_stat": dm_stat,
        "dm_p_value": dm_p,
    }


def _benchmark_errors(group: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Random-walk errors on exactly the rows of ``group`` (same cutoffs and steps)."""
    base = table[table["model"] == BENCHMARK].set_index(["cutoff", "step"])["y_hat"]
    keys = pd.MultiIndex.from_arrays([group["cutoff"], group["step"]])
    return base.reindex(keys).to_numpy() - group["y"].to_numpy()


def verdict(scores: pd.DataFrame, model: str = "lstm") -> list[str]:
    """Plain sentences comparing ``model`` with the random walk and the linear baseline."""
    by_model = scores.set_index("model")
    if model not in by_model.index:
        return []
    ours = by_model.loc[model]
    lines = []
    for other, label in ((BENCHMARK, "tomorrow = today"), ("linear", "the linear model")):
        if other not in by_model.index:
            continue
        theirs = by_model.loc[other]
        change = ours["rmse"] / theirs["rmse"] - 1
        better = "better" if change < 0 else "worse"
        line = (f"{model.upper()} RMSE {ours['rmse']:.4g} vs {other} {theirs['rmse']:.4g}: "
                f"{abs(change):.1%} {better} than {label}")
        if other == BENCHMARK:
            line += _significance(ours["dm_p_value"])
        lines.append(line)
    return lines


def _significance(p: float) -> str:
    if not np.isfinite(p):
        return " (Diebold-Mariano test not computable)"
    if p < 0.05:
        return f"; significant (Diebold-Mariano p = {p:.3g})"
    return f"; the difference is not significant (Diebold-Mariano p = {p:.2g})"
