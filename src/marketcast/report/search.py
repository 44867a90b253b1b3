"""The report of a search on the validation period: ``tune`` (trials) and ``study`` (a grid).

Both are read from the folder's tables: ``trials.csv`` (one row per trial and epoch) for a
tune, ``epochs.csv`` (one row per combination and epoch) and ``study.csv`` (the epoch
counts asked for) for a study. Scores are one-day-ahead forecasts of the validation days in
price units: RMSE, and Theil's U, the RMSE over the random walk's (tomorrow = today).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketcast.report import plots, search_plots
from marketcast.report.blocks import RunFiles, figure, fmt, note, pairs, section
from marketcast.report.single import configuration, environment
from marketcast.runs import layout

# Every setting a tune searches, in the order of its tables.
SETTINGS = ("lookback", "layers", "units", "dropout", "batch_size", "learning_rate",
            "max_epochs")
SCORE_COLUMNS = ["val_loss", "val_rmse", "val_theils_u"]
# The sections of each report, in page order.
TUNE_SECTIONS = ("search", "epochs", "settings", "importance", "pruned", "best", "trials",
                 "config", "environment")
STUDY_SECTIONS = ("search", "epochs", "grid", "preferred", "config", "environment")
# Trials drawn one line each in "by epoch".
BEST_SHOWN = 5
CAUTION = ("Caution: the best of {n} is an optimistic estimate. It was picked because its "
           "validation score was the lowest, so part of how it compares with the runners-up "
           "and the random walk is the luck of the draw, and no test of significance is made here. "
           "The test period was never read; `marketcast run --config best_config.toml` "
           "(in this folder) is the one honest test of these settings.")


def summarize_trials(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial from the long table of ``trials.csv``: its settings, state, epochs
    run, best epoch (lowest validation loss), that loss (``value``), the validation RMSE and
    Theil's U at that epoch, and seconds."""
    rows = []
    for trial, group in epochs.groupby("trial", sort=True):
        ran = group.dropna(subset=["epoch", "val_loss"])
        head = group.iloc[0]
        row = {"trial": int(trial), "state": head["state"],
               **{k: head[k] for k in SETTINGS if k in group}, "epochs_run": len(ran),
               "best_epoch": np.nan, "value": np.nan, "val_rmse": np.nan,
               "val_theils_u": np.nan, "seconds": head["seconds"]}
        if len(ran):
            best = ran.loc[ran["val_loss"].idxmin()]
            row.update(best_epoch=int(best["epoch"]), value=best["val_loss"],
                       val_rmse=best["val_rmse"], val_theils_u=best["val_theils_u"])
        rows.append(row)
    return pd.DataFrame(rows)


def tune_sentence(trials: pd.DataFrame) -> str:
    """How far the best completed trial is from the runners-up and from the random walk."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", kind="stable")
    pruned = int((trials["state"] == "PRUNED").sum())
    if done.empty:
        return f"None of the {len(trials)} trials completed."
    best = done.iloc[0]
    text = (f"Of {len(trials)} trials ({len(done)} completed, {pruned} pruned), trial "
            f"{best['trial']:.0f} has the lowest validation loss: "
            + _scores(best) + ". " + _runners(done, lambda r: f"trial {r['trial']:.0f}"))
    return text + " " + CAUTION.format(n=f"{len(trials)} trials")


def study_sentence(table: pd.DataFrame, settings: list[str]) -> str:
    """The combination the validation period prefers (lowest RMSE), its distance from the
    runners-up and from the random walk."""
    ranked = table.sort_values("val_rmse", kind="stable")
    best = ranked.iloc[0]
    text = (f"The validation period prefers {combination_label(best, settings)} at "
            f"{best['epochs']:.0f} epochs: " + _scores(best) + ". "
            + _runners(ranked, lambda r: f"{combination_label(r, settings)} at "
                                                     f"{r['epochs']:.0f} epochs"))
    return text + " " + CAUTION.format(n=f"{len(table)} combinations")


def combination_label(row, settings: list[str]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {row[k]:g}" for k in settings)


def _scores(row) -> str:
    u = row["val_theils_u"]
    naive = row["val_rmse"] / u if u and np.isfinite(u) else np.nan
    side = "below" if u < 1 else "above"
    return (f"one-day-ahead validation RMSE {row['val_rmse']:.4g} (price units) against the "
            f"random walk's {naive:.4g}, Theil's U {u:.3f} ({abs(u - 1):.1%} {side} the "
            "random walk)")


def _runners(ranked: pd.DataFrame, name) -> str:
    if len(ranked) < 2:
        return "There is no runner-up to compare with."
    best, runner = ranked.iloc[0], ranked.iloc[1]
    gap = runner["val_rmse"] / best["val_rmse"] - 1
    text = f"The runner-up, {name(runner)}, has RMSE {runner['val_rmse']:.4g} ({gap:+.1%})"
    if len(ranked) > 2:
        last = ranked.iloc[min(4, len(ranked) - 1)]
        text += (f"; the {_ordinal(min(5, len(ranked)))} best, {name(last)}, "
                 f"{last['val_rmse']:.4g} ({last['val_rmse'] / best['val_rmse'] - 1:+.1%})")
    return text + "."


def _ordinal(n: int) -> str:
    return {3: "third", 4: "fourth", 5: "fifth"}.get(n, f"{n}th")


def search_sections(run: RunFiles) -> list[dict]:
    """Every section of a tune or study folder's report, in page order."""
    body = _tune(run) if run.kind == layout.Kind.TUNE else _study(run)
    body[0]["blocks"].append(_searched(run))
    return [*body, configuration(run), environment(run)]


def _searched(run: RunFiles) -> dict:
    """What was searched, on which rows; config.toml holds every other setting."""
    m = run.metrics
    split = m.get("split", {})
    rows = split.get("rows", ["?", "?", "?"])
    seen = [("training days", f"{rows[0]} ({' to '.join(split.get('train') or [])})"),
            ("validation days", f"{rows[1]} ({' to '.join(split.get('validation') or [])})"),
            ("test days", f"{rows[2]}, never read")]
    if run.kind == layout.Kind.TUNE:
        space = m.get("space", {})
        what = [(k.replace("_", " "), ", ".join(map(str, v))) for k, v in space.items()]
        what = [("backend", m.get("backend")), ("trials", m.get("n_trials")), *what]
    else:
        what = [("backend", m.get("backend")),
                ("epochs", ", ".join(map(str, m.get("epochs", [])))),
                *[(k.replace("_", " "), ", ".join(map(str, v)))
                  for k, v in m.get("grid", {}).items()]]
    caption = "searched (ranges: min, max)" if run.kind == layout.Kind.TUNE else "the grid"
    return {"kind": "grid", "items": [pairs(caption, what), pairs("rows", seen)]}


def _tune(run: RunFiles) -> list[dict]:
    epochs = run.csv(layout.TRIALS, dates=())
    trials = summarize_trials(epochs)
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", kind="stable")
    top = done["trial"].head(BEST_SHOWN).tolist()
    ran = epochs.dropna(subset=["epoch"])
    searched = [k for k in SETTINGS if trials[k].nunique() > 1] or list(SETTINGS)
    naive = float((done["val_rmse"] / done["val_theils_u"]).median())
    result = section("search", {"kind": "text", "text": tune_sentence(trials)},
                     note("The objective is the validation loss (MSE of the scaled target at "
                          "the early-stopping epoch); RMSE and Theil's U are that epoch's "
                          "one-day-ahead forecasts of the validation days in price units."))
    by_epoch = section(
        "epochs",
        figure(search_plots.plot_by_epoch, ran[ran["trial"].isin(top)], line="trial",
               color_by="trial", title=f"The {len(top)} best trials",
               alt="Validation RMSE and Theil's U by epoch of the best trials",
               caption="Each epoch's network (no weights restored), scored on the "
                       "validation days."),
        figure(search_plots.plot_by_epoch, ran, line="trial", color_by="batch_size",
               title="Every trial, by batch size",
               alt="Validation RMSE and Theil's U by epoch, coloured by batch size",
               caption="Pruned trials end early: the median rule stopped them."))
    by_setting = section("settings", figure(
        search_plots.plot_by_setting, trials, searched, naive,
        alt="Validation RMSE against each searched setting",
        caption="Each trial's validation RMSE at its best epoch against the value it drew."))
    return [result, by_epoch, by_setting, _importance(run), _pruned(trials),
            _best_trial(ran, done), _trial_table(trials)]


def _importance(run: RunFiles) -> dict:
    found = run.metrics.get("importances") or {}
    values = found.get("values")
    if not values:
        return section("importance", note(
            "Optuna's parameter importances could not be computed for this search: "
            f"{found.get('reason', 'not recorded')}. Run more trials to see them."))
    table = {"kind": "table", "caption": "Importance of each setting for the validation loss",
             "columns": ["setting", "importance"],
             "rows": [[k.replace("_", " "), fmt(v, "{:.3f}")] for k, v in values.items()]}
    return section("importance", figure(
        search_plots.plot_importances, values, alt="Importance of each searched setting",
        caption="optuna.importance.get_param_importances (fANOVA) over the completed "
                "trials: the share of the variance of the validation loss each setting "
                "explains. Few trials make it rough."), table)


def _pruned(trials: pd.DataFrame) -> dict:
    pruned = trials[trials["state"] == "PRUNED"]
    if pruned.empty:
        return section("pruned", note("No trial was pruned."))
    return section("pruned", note(
        "A trial is pruned when its validation loss after an epoch is worse than the median "
        "of earlier trials at that epoch."), _table(pruned, f"{len(pruned)} pruned trials"))


def _best_trial(ran: pd.DataFrame, done: pd.DataFrame) -> dict:
    best = done.iloc[0]
    history = ran[ran["trial"] == best["trial"]]
    return section("best", figure(
        plots.plot_loss, history[["epoch", "train_loss", "val_loss"]], int(best["best_epoch"]),
        alt="Training and validation loss of the best trial",
        caption=f"Trial {best['trial']:.0f}: {combination_label(best, list(SETTINGS))}."))


def _trial_table(trials: pd.DataFrame) -> dict:
    block = _table(trials.sort_values("value", kind="stable"), f"All {len(trials)} trials, "
                   "lowest validation loss first")
    return section("trials", {**block, "collapsed": len(trials) > 20})


def _table(frame: pd.DataFrame, caption: str) -> dict:
    formats = {"dropout": "{:.3f}", "learning_rate": "{:.2e}", "value": "{:.4g}",
               "val_loss": "{:.4g}", "val_rmse": "{:.4g}", "val_theils_u": "{:.3f}",
               "seconds": "{:.1f}"}
    columns = list(frame.columns)
    rows = [[fmt(r[c], formats.get(c, "{}")) if not isinstance(r[c], float) or c in formats
             else fmt(r[c], "{:g}") for c in columns] for r in frame.to_dict(orient="records")]
    return {"kind": "table", "caption": caption,
            "columns": [c.replace("_", " ") for c in columns], "rows": rows}


def _study(run: RunFiles) -> list[dict]:
    table = run.csv(layout.STUDY, dates=())
    epochs = run.csv(layout.EPOCHS, dates=())
    settings = list(run.metrics.get("grid", {})) or ["batch_size"]
    marks = tuple(run.metrics.get("epochs", ()))
    varied = [k for k in settings if table[k].nunique() > 1] or settings
    label = epochs.apply(lambda r: combination_label(r, varied), axis=1)
    result = section("search", {"kind": "text", "text": study_sentence(table, varied)}, note(
        f"Each combination of the settings other than epochs was trained once, seeded, to "
        f"{max(marks, default='?')} epochs with early stopping off; its score at "
        f"{', '.join(map(str, marks))} epochs is that training's network after that "
        "epoch, which is what a training of that length gives (the same seed draws the same "
        "batches). `best_config.toml` keeps those epochs with patience equal to them, so "
        "`run` does not stop early; like every run it keeps the weights of its epoch with "
        "the lowest validation loss."))
    color_by = "batch_size" if "batch_size" in varied else varied[0]
    curves = section("epochs", figure(
        search_plots.plot_by_epoch, epochs.assign(combination=label), line="combination",
        color_by=color_by, marks=marks, title="Validation accuracy by epoch",
        alt="Validation RMSE and Theil's U by epoch for each batch size",
        caption="One line per combination, one colour per "
                f"{color_by.replace('_', ' ')}; dots at the epoch counts studied."))
    shown = table[["combination", *settings, "epochs", *SCORE_COLUMNS, "seconds"]]
    grid = section("grid", _table(shown.sort_values("val_rmse", kind="stable"),
                                  "Every combination at each epoch count, lowest validation "
                                  "RMSE first; seconds: training time to reach that epoch"))
    best = table.loc[table["val_rmse"].idxmin()]
    history = epochs[epochs["combination"] == best["combination"]]
    loss = section("preferred", figure(
        plots.plot_loss, history[["epoch", "train_loss", "val_loss"]], int(best["epochs"]),
        alt="Training and validation loss of the preferred combination",
        caption=f"{combination_label(best, varied)}: trained to {history['epoch'].max():.0f} "
                f"epochs; the line marks the {best['epochs']:.0f} preferred."))
    return [result, curves, grid, loss]
