"""Accuracy metrics as pure functions of the long forecast table.

The table has one row per (model, cutoff, step): columns ``model, cutoff, date, step, y,
y_hat, y_cutoff`` where ``y_cutoff`` is the last price observed at the cutoff. Scores come in
price space (price units) or log-return space (``log(y / y_cutoff)`` against
``log(y_hat / y_cutoff)``), always against the random walk on the same rows. :func:`compare`
pairs any two models on the same rows, and the verdicts word those comparisons with the one
judge of :mod:`marketcast.evaluation.significance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from marketcast.evaluation import significance
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
            "echoes_last": bool(ratio < 0.2 and not significance.significant(p)),
        })
    return pd.DataFrame(rows)


# Columns of compare(): one row per (model, other, step).
COMPARISON_COLUMNS = ["model", "other", "step", "n", "rmse", "rmse_other", "dm_stat",
                      "dm_p_value", "call"]


def compare(table: pd.DataFrame, models: Sequence[str] | None = None,
            others: Sequence[str] = (BENCHMARK, "linear")) -> pd.DataFrame:
    """Each of ``models`` against each of ``others`` on the same rows, per step.

    Rows are paired on (cutoff, step): both models forecast the same targets from the same
    cutoffs. ``models`` defaults to every model but the random walk, in table order.

    Returns
    -------
    DataFrame
        One row per (model, other, step): ``model, other, step, n, rmse, rmse_other,
        dm_stat, dm_p_value`` (the Diebold-Mariano test of equal squared error; negative
        statistic: ``model`` has the smaller errors) and ``call``, the judgement of
        :func:`marketcast.evaluation.significance.call`.
    """
    names = list(table["model"].unique())
    models = [m for m in names if m != BENCHMARK] if models is None else models
    rows = []
    for model in models:
        ours = table[table["model"] == model]
        keys = pd.MultiIndex.from_arrays([ours["cutoff"], ours["step"]])
        for other in others:
            if other == model or other not in names:
                continue
            theirs = table[table["model"] == other].set_index(["cutoff", "step"])["y_hat"]
            paired = ours.assign(y_hat_other=theirs.reindex(keys).to_numpy())
            paired = paired.dropna(subset=["y_hat_other"])
            for step, group in paired.groupby("step", sort=True):
                rows.append({"model": model, "other": other, "step": step,
                             **_paired_scores(group)})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _paired_scores(group: pd.DataFrame) -> dict:
    y = group["y"].to_numpy()
    err, err_other = group["y_hat"].to_numpy() - y, group["y_hat_other"].to_numpy() - y
    rmse, rmse_other = float(np.sqrt(np.mean(err**2))), float(np.sqrt(np.mean(err_other**2)))
    dm_stat, dm_p = diebold_mariano(err, err_other, h=int(group["step"].iloc[0]))
    return {"n": len(group), "rmse": rmse, "rmse_other": rmse_other, "dm_stat": dm_stat,
            "dm_p_value": dm_p, "call": significance.call(dm_p, rmse - rmse_other)}


def model_label(model: str) -> str:
    """How sentences name a model: "the random walk", "the linear model", "the drift model"."""
    return "the random walk" if model == BENCHMARK else f"the {model} model"


def verdict(comparisons: pd.DataFrame) -> list[str]:
    """Plain sentences, one per row of :func:`compare`, e.g. ``"LSTM RMSE 25.15 vs linear
    26.16 (-3.9%): significantly better than the linear model (DM p = 0.011)"``; the step
    is named when there are several."""
    several = comparisons["step"].nunique() > 1
    lines = []
    for row in comparisons.itertuples():
        where = f" at step {row.step}" if several else ""
        lines.append(f"{row.model.upper()}{where} RMSE {row.rmse:.4g} vs {row.other} "
                     f"{row.rmse_other:.4g} ({row.rmse / row.rmse_other - 1:+.1%}): "
                     + significance.judgement(row.dm_p_value, row.rmse - row.rmse_other,
                                              model_label(row.other)))
    return lines


def backtest_verdict(comparisons: pd.DataFrame, lag: pd.DataFrame) -> list[str]:
    """One line per model and step against the random walk (the rows of :func:`compare`
    whose ``other`` is the random walk), judged by the Diebold-Mariano test; then any echo
    warnings of :func:`lag_copy`."""
    lines = []
    against = comparisons[comparisons["other"] == BENCHMARK]
    several = against["step"].nunique() > 1
    for row in against.itertuples():
        where = f" at step {row.step}" if several else ""
        lines.append(f"{row.model}{where}: RMSE {row.rmse:.4g} vs naive {row.rmse_other:.4g} "
                     f"({row.rmse / row.rmse_other - 1:+.1%}), "
                     + significance.judgement(row.dm_p_value, row.rmse - row.rmse_other,
                                              model_label(BENCHMARK)))
    for row in lag.itertuples():
        # Baselines that are random walks by design echo by design; the warning is for
        # learned models.
        if row.echoes_last and row.model in ("lstm", "linear"):
            lines.append(
                f"{row.model} echoes yesterday: its forecasts move {row.move_ratio:.0%} as much "
                f"as prices and {row.closer_to_last:.0f}% of them sit nearer the last price "
                "than the outcome")
    return lines
