"""Accuracy metrics as pure functions of the long forecast table.

The table has one row per (model, cutoff, step): columns ``model, cutoff, date, step, y,
y_hat, y_cutoff`` where ``y_cutoff`` is the last price observed at the cutoff. Scores come in
price space (price units) or log-return space (``log(y / y_cutoff)`` against
``log(y_hat / y_cutoff)``), always against the random walk on the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from marketcast.evaluation.stats import binomial_p_value, diebold_mariano

BENCHMARK = "naive"


def accuracy(
    table: pd.DataFrame, by_step: bool = False, space: str = "price", scale: float | None = None
) -> pd.DataFrame:
    """Scores per model (and per step).

    Columns: n, MSE, RMSE, MAE, MAPE (%; price space only), MASE (when ``scale``, the
    in-sample MAE of one-day changes, is given), Theil's U (RMSE over the random walk's),
    directional accuracy (%) with binomial p-values against 50% and against the share of
    up days, and the Diebold-Mariano test against the random walk (per step; NaN when the
    rows mix steps).
    """
    if space == "log_return":
        table = to_log_returns(table)
    keys = ["model", "step"] if by_step else ["model"]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        scores = _scores(group, _benchmark_errors(group, table), scale)
        scores["mape"] = scores["mape"] if space == "price" else np.nan
        key = key if isinstance(key, tuple) else (key,)  # keep each key's own type
        rows.append({**dict(zip(keys, key, strict=True)), **scores})
    return pd.DataFrame(rows)


def to_log_returns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with prices replaced by log returns relative to the cutoff price."""
    base = table["y_cutoff"]
    return table.assign(y=np.log(table["y"] / base), y_hat=np.log(table["y_hat"] / base),
                        y_cutoff=0.0)


def _scores(group: pd.DataFrame, base: np.ndarray, scale: float | None) -> dict:
    y, y_hat, last = (group[c].to_numpy() for c in ("y", "y_hat", "y_cutoff"))
    err = y_hat - y
    moved, called = np.sign(y - last), np.sign(y_hat - last)
    # A forecast of "no change" calls no direction: it counts as a miss.
    hits = int(np.sum((called == moved) & (called != 0)))
    trials = int(np.sum(moved != 0))
    up_share = float(np.mean(moved[moved != 0] > 0)) if trials else np.nan
    rmse, mae = float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))
    base_rmse = float(np.sqrt(np.mean(base**2)))
    steps = group["step"].unique()
    dm_stat, dm_p = np.nan, np.nan
    if group["model"].iloc[0] != BENCHMARK and len(steps) == 1:
        dm_stat, dm_p = diebold_mariano(err, base, h=int(steps[0]))
    calls = trials and called.any()  # the random walk never calls a direction
    return {
        "n": len(group),
        "mse": float(np.mean(err**2)),
        "rmse": rmse,
        "mae": mae,
        "mape": _mape(err, y),
        "mase": mae / scale if scale else np.nan,
        "theils_u": rmse / base_rmse if base_rmse > 0 else np.nan,
        "directional_accuracy": 100.0 * hits / trials if calls else np.nan,
        "da_p_50": binomial_p_value(hits, trials) if calls else np.nan,
        "da_p_up": binomial_p_value(hits, trials, max(up_share, 1 - up_share))
        if calls else np.nan,
        "dm_stat": dm_stat,
        "dm_p_value": dm_p,
    }


def _mape(err: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute percentage error (%); NaN where a target is 0 (log-return space)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.abs(err / y)) * 100)


def _benchmark_errors(group: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """Random-walk errors on exactly the rows of ``group`` (same cutoffs and steps)."""
    base = table[table["model"] == BENCHMARK].set_index(["cutoff", "step"])["y_hat"]
    keys = pd.MultiIndex.from_arrays([group["cutoff"], group["step"]])
    return base.reindex(keys).to_numpy() - group["y"].to_numpy()


def lag_copy(table: pd.DataFrame) -> pd.DataFrame:
    """How far each model's one-step forecasts merely echo the last observed price.

    ``move_ratio``: spread of forecast changes ``y_hat - y_cutoff`` over the spread of actual
    changes (0 for the random walk); ``change_corr`` and its one-sided p-value: correlation
    of forecast with actual changes; ``closer_to_last``: share (%) of forecasts nearer the
    last price than the outcome. A model echoes yesterday when its forecasts move less than
    a fifth as much as prices do and their moves do not significantly track real ones.
    """
    rows = []
    one = table[table["step"] == 1]
    for model, group in one.groupby("model", sort=False):
        if model == BENCHMARK:
            continue
        y, y_hat, last = (group[c].to_numpy() for c in ("y", "y_hat", "y_cutoff"))
        predicted, actual = y_hat - last, y - last
        ratio = float(np.std(predicted) / np.std(actual)) if np.std(actual) > 0 else np.nan
        if np.std(predicted) > 0 and len(group) > 2:
            corr, p_two = stats.pearsonr(predicted, actual)
            p = p_two / 2 if corr > 0 else 1 - p_two / 2
        else:
            corr, p = np.nan, 1.0
        rows.append({
            "model": model,
            "move_ratio": ratio,
            "change_corr": float(corr),
            "change_corr_p": float(p),
            "closer_to_last": 100.0 * float(np.mean(np.abs(predicted) < np.abs(y_hat - y))),
            "echoes_last": bool(ratio < 0.2 and p >= 0.05),
        })
    return pd.DataFrame(rows)


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
        line = f"{model.upper()} RMSE {ours['rmse']:.4g} vs {other} {theirs['rmse']:.4g}: " + \
            _relative(ours["rmse"], theirs["rmse"], label)
        if other == BENCHMARK:
            line += _significance(ours["dm_p_value"])
        lines.append(line)
    return lines


def backtest_verdict(scores_by_step: pd.DataFrame, lag: pd.DataFrame) -> list[str]:
    """One line per model and step against the random walk, called better or worse only
    when the Diebold-Mariano p-value is below 0.05; then any echo warnings."""
    lines = []
    base = scores_by_step[scores_by_step["model"] == BENCHMARK].set_index("step")["rmse"]
    for row in scores_by_step[scores_by_step["model"] != BENCHMARK].itertuples():
        where = f" at step {row.step}" if len(base) > 1 else ""
        p = row.dm_p_value
        if np.isfinite(p) and p < 0.05:
            judged = "better" if row.rmse < base[row.step] else "worse"
            outcome = f"significantly {judged} than the random walk (DM p = {p:.3g})"
        else:
            outcome = f"not significantly different from the random walk (DM p = {p:.2g})"
        lines.append(f"{row.model}{where}: RMSE {row.rmse:.4g} vs naive {base[row.step]:.4g} "
                     f"({row.rmse / base[row.step] - 1:+.1%}), {outcome}")
    for row in lag.itertuples():
        # Baselines that are random walks by design echo by design; the warning is for
        # learned models.
        if row.echoes_last and row.model in ("lstm", "linear"):
            lines.append(
                f"{row.model} echoes yesterday: its forecasts move {row.move_ratio:.0%} as much "
                f"as prices and {row.closer_to_last:.0f}% of them sit nearer the last price "
                "than the outcome")
    return lines


def _relative(ours: float, theirs: float, label: str) -> str:
    change = ours / theirs - 1
    return f"{abs(change):.1%} {'better' if change < 0 else 'worse'} than {label}"


def _significance(p: float) -> str:
    if not np.isfinite(p):
        return " (Diebold-Mariano test not computable)"
    if p < 0.05:
        return f"; significant (Diebold-Mariano p = {p:.3g})"
    return f"; the difference is not significant (Diebold-Mariano p = {p:.2g})"
