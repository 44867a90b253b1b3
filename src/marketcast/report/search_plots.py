"""Plots of a search (``marketcast tune``) and a study (``marketcast study``): validation
accuracy by epoch and by setting, and Optuna's parameter importances. Like
:mod:`marketcast.report.plots`, each returns a Figure made without pyplot."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib
import matplotlib.ticker as mticker
import pandas as pd
from matplotlib.figure import Figure

from marketcast.report.plots import OTHER, color, save_png


def plot_by_epoch(epochs: pd.DataFrame, out: Path | BinaryIO | None = None, *, line: str,
                  color_by: str, title: str, marks: tuple[int, ...] = ()) -> Figure:
    """Validation RMSE (price units, left) and Theil's U against the random walk (right: the
    same curves over the random walk's RMSE, one number for every line since the validation
    days are the same) per epoch: one line per value of ``line`` (a trial, a combination),
    coloured by ``color_by``; the epochs in ``marks`` are dotted. ``epochs`` has ``epoch,
    val_rmse, val_theils_u``."""
    naive = float((epochs["val_rmse"] / epochs["val_theils_u"]).median())
    fig = Figure(figsize=(10, 4.4))
    ax = fig.subplots()
    groups = list(dict.fromkeys(epochs[color_by]))
    palette = matplotlib.colormaps["tab10"]
    named = set()
    for _, rows in epochs.groupby(line, sort=False):
        group = rows[color_by].iloc[0]
        style = {"color": palette(groups.index(group) % 10), "linewidth": 1.3}
        if group not in named:
            style["label"] = f"{color_by.replace('_', ' ')} {group}"
            named.add(group)
        ax.plot(rows["epoch"], rows["val_rmse"], **style)
        shown = rows[rows["epoch"].isin(marks)]
        ax.plot(shown["epoch"], shown["val_rmse"], "o", color=style["color"], markersize=4)
    ax.axhline(naive, color=color("actual"), linestyle="--", linewidth=1.2,
               label="random walk (Theil's U = 1)")
    right = ax.secondary_yaxis("right", functions=(lambda r: r / naive, lambda u: u * naive))
    right.set_ylabel("Theil's U: RMSE / the random walk's")
    ax.set(xlabel="epoch", ylabel="validation RMSE (price units)", title=title)
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncols=2)
    return save_png(fig, out)


def plot_by_setting(trials: pd.DataFrame, settings: list[str], naive_rmse: float,
                    out: Path | BinaryIO | None = None) -> Figure:
    """Each trial's validation RMSE at its best epoch against each setting searched
    (completed trials as dots, pruned ones as crosses), the random walk's RMSE dashed."""
    cols = min(4, len(settings))
    rows_n = -(-len(settings) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows_n))
    axes = fig.subplots(rows_n, cols, sharey=True, squeeze=False)
    for ax, setting in zip(axes.ravel(), settings, strict=False):
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            rows = trials[trials["state"] == state]
            ax.scatter(rows[setting], rows["val_rmse"], marker=marker, s=22,
                       color=color("lstm") if state == "COMPLETE" else OTHER,
                       label="completed" if state == "COMPLETE" else "pruned")
        ax.axhline(naive_rmse, color=color("actual"), linestyle="--", linewidth=1.1,
                   label="random walk")
        if setting == "learning_rate":
            ax.set_xscale("log")
        ax.set(xlabel=setting.replace("_", " "))
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(settings):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation RMSE (price units)")
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    return save_png(fig, out)


def plot_importances(values: dict[str, float], out: Path | BinaryIO | None = None) -> Figure:
    """Optuna's importance of each searched setting (they sum to 1), largest on top."""
    names = list(values)[::-1]
    fig = Figure(figsize=(7, 0.45 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh([n.replace("_", " ") for n in names], [values[n] for n in names],
            color=color("lstm"))
    ax.set(xlabel="importance for the validation loss (fANOVA, sums to 1)",
           title="Which settings mattered")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_png(fig, out)
