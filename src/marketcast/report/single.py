"""The sections of a single-series report (``run``, ``train`` and ``backtest`` folders).

Every section is always present; one the folder has nothing for (a backtest keeps no loss
history, a run has no walk-forward table) says so and what to run to get it.
"""

from __future__ import annotations

import math

import pandas as pd

from marketcast.evaluation.metrics import (
    BENCHMARK,
    COMPARISON_COLUMNS,
    backtest_verdict,
    compare,
    verdict,
)
from marketcast.evaluation.multiple import describe_mcs, describe_spa
from marketcast.evaluation.significance import (
    ALPHA,
    BETTER,
    WORSE,
    call,
    format_p,
    phrase,
    significant,
)
from marketcast.evaluation.stats import ljung_box
from marketcast.report import plots
from marketcast.report.blocks import (
    RunFiles,
    figure,
    fmt,
    note,
    pairs,
    score_table,
    section,
)
from marketcast.report.strategy import strategy_section


def single_sections(run: RunFiles) -> list[dict]:
    """Every section of a run, train or backtest folder's report, in page order."""
    return [
        _verdict(run), configuration(run), _data(run), loss(run), test_section(run),
        backtest_section(run), strategy_section(run), forecast_section(run),
        residuals_section(run), environment(run),
    ]


# How the headline cards name the models a forecast is compared with.
CARD_LABELS = {BENCHMARK: "the random walk (tomorrow = today)", "linear": "the linear model"}
TONES = {BETTER: "good", WORSE: "bad"}


def _verdict(run: RunFiles) -> dict:
    model = run.focus
    if run.table is None:
        return section("verdict", note(
            "This folder holds a trained model without an out-of-sample evaluation (a "
            "`marketcast train` folder): `marketcast evaluate --run FOLDER` scores it."))
    if model is None:
        return section("verdict", note("Only the random walk was evaluated: nothing to "
                                         "compare it with."))
    pairs = comparisons(run)
    one = pairs[(pairs["model"] == model) & (pairs["step"] == pairs["step"].min())]
    cards = [_card(row) for row in one.itertuples() if row.other in CARD_LABELS]
    echo = [r for r in run.metrics.get("lag_copy", []) if r["model"] == model and r["echoes_last"]]
    if echo:
        cards.append({"tone": "bad", "headline": f"{model.upper()} echoes yesterday",
                      "detail": f"Its forecasts move {echo[0]['move_ratio']:.0%} as much as "
                                f"prices; {echo[0]['closer_to_last']:.0f}% sit nearer the last "
                                "price than the outcome"})
    where = "walk-forward backtest" if run.kind == "backtest" else "test period"
    cutoffs = run.table.loc[run.table["model"] == model, "cutoff"].nunique()
    caption = (f"{model.upper()} one-day-ahead forecasts on the {where}, {cutoffs} cutoffs; "
               f"Diebold-Mariano test of equal squared error (p < {ALPHA:g} decides).")
    # Worded again from the comparisons, so that a folder written before the cards and the
    # sentences shared one judge shows no sentence the cards contradict.
    if run.kind == "backtest":
        lines = backtest_verdict(pairs, pd.DataFrame(run.metrics.get("lag_copy", [])))
    else:
        lines = verdict(pairs)
    return section(
        "verdict",
        {"kind": "cards", "cards": cards, "caption": caption},
        {"kind": "list", "items": lines} if lines else None)


def comparisons(run: RunFiles) -> pd.DataFrame:
    """The comparisons behind a run or backtest folder's verdict (see
    :func:`marketcast.evaluation.metrics.compare`): those saved in ``metrics.json``, or, for
    folders written before they were saved, computed from the folder's forecast table."""
    saved = run.metrics.get("comparisons")
    if saved is not None:
        frame = pd.DataFrame(saved, columns=COMPARISON_COLUMNS)
        # JSON keeps a NaN p-value as null; the judge reads NaN as "not computable".
        return frame.astype({"dm_stat": float, "dm_p_value": float})
    # What `run` compares (its LSTM) and what `backtest` compares (every model).
    return compare(run.table, None if run.kind == "backtest" else [run.focus])


def _card(row) -> dict:
    """Headline card of one comparison: the judgement, the RMSEs and the DM p-value."""
    judged = call(row.dm_p_value, row.rmse - row.rmse_other)
    return {
        "tone": TONES.get(judged, "neutral"),
        "headline": f"{row.model.upper()} {phrase(judged, CARD_LABELS[row.other])}",
        "detail": f"RMSE {row.rmse:.3f} vs {row.rmse_other:.3f} "
                  f"({row.rmse / row.rmse_other - 1:+.1%}); {format_p(row.dm_p_value)}",
    }


def configuration(run: RunFiles) -> dict:
    tables = [pairs(f"[{name}]", [(k, ", ".join(map(str, v)) if isinstance(v, list) else v)
                                   for k, v in values.items()])
              for name, values in run.config.items() if isinstance(values, dict)]
    return section("config", {"kind": "grid", "items": tables},
                    note("config.toml of this folder: pass it to `--config` to repeat the run."))


def _data(run: RunFiles) -> dict:
    d, m = run.metrics.get("data", {}), run.metrics
    sha = m.get("data_sha256") or run.meta.get("data_sha256")
    split = m.get("split")
    summary = [
        ("source", run.config.get("data", {}).get("source")),
        ("ticker", run.config.get("data", {}).get("ticker", "–")),
        ("rows (trading days)", d.get("rows")), ("first day", d.get("start")),
        ("last day", d.get("end")), ("columns", ", ".join(d.get("columns", []))),
        ("missing values", ", ".join(f"{k} {v}" for k, v in d.get("missing_values", {}).items())),
        ("missing NYSE sessions", d.get("missing_nyse_sessions")),
        ("first missing sessions", ", ".join(d.get("first_missing_sessions", [])) or "–"),
        ("largest gap (calendar days)", d.get("largest_gap_days")),
    ]
    if split:
        for (part, span), rows in zip(list(split.items())[:3], split.get("rows", []), strict=False):
            summary.append((f"{part} period", f"{span[0]} to {span[1]} ({rows} days)" if span
                            else "none"))
    summary.append(("data sha256", sha))
    return section("data", pairs("summary", summary), _quality(d.get("quality")))


def _quality(quality: dict | None) -> dict:
    """Only the failed checks in full; the clean ones in one line."""
    if quality is None:
        return note("No data quality findings were recorded for this run.")
    if not isinstance(quality, dict):
        return {"kind": "value", "caption": "quality findings", "value": quality}
    failed = {name: v for name, v in quality.items() if _found(v)}
    clean = f"{len(quality) - len(failed)} of {len(quality)} data quality checks found nothing"
    if not failed:
        return {"kind": "text", "text": f"{clean} ({', '.join(quality).replace('_', ' ')})."}
    return {"kind": "value", "caption": f"quality findings ({clean})", "value": failed}


def _found(finding) -> bool:
    """Whether a check found something: ``{"count": n, ...}`` with n > 0, or any non-empty
    value (older folders and hand-edited ones hold lists or counts)."""
    if isinstance(finding, dict) and "count" in finding:
        return bool(finding["count"])
    return bool(finding)


def loss(run: RunFiles) -> dict:
    history = run.csv("loss_history.csv", dates=())
    if history is None:
        fits = ", ".join(f"{k} {v}" for k, v in run.metrics.get("fits", {}).items())
        return section("loss", note(
            "A backtest refits its models from scratch and keeps no training history "
            f"(fits per model: {fits or '–'}); the loss curves are in `marketcast run` folders."))
    best = int(run.metrics.get("best_epoch", history["epoch"].iloc[-1]))
    train = run.config.get("train", {})
    stopped = len(history) < train.get("max_epochs", math.inf)
    text = (f"Trained {len(history)} of at most {train.get('max_epochs', '?')} epochs; "
            + (f"early stopping (patience {train.get('patience', '?')}) ended training. "
               if stopped else "training ran every epoch. ")
            + f"The weights of epoch {best}, with the lowest validation loss, were kept.")
    return section("loss", figure(plots.plot_loss, history, best,
                                    alt="LSTM train and validation loss per epoch"),
                    {"kind": "text", "text": text})


def test_section(run: RunFiles) -> dict:
    if run.table is None:
        return section("test", note("No test-period evaluation in this folder."))
    wide = plots.one_step_wide(run.table)
    if run.kind == "backtest":
        title, what = "Walk-forward: actual vs one-day-ahead forecasts", "forecast cutoffs"
    else:
        title, what = "Test period: actual vs one-day-ahead forecasts", "test days"
    start, end = wide["date"].min(), wide["date"].max()
    blocks = [figure(plots.plot_test, wide, run.target, title=title,
                      alt=title, caption=f"{start:%Y-%m-%d} to {end:%Y-%m-%d}, {len(wide)} "
                      f"{what}; every forecast sees only the prices up to the day before.")]
    if run.kind == "run":
        blocks.append(score_table(run.metrics["metrics"], f"Scores on the test period "
                                   f"({run.target}, price units)"))
    return section("test", *blocks)


def backtest_section(run: RunFiles) -> dict:
    if run.kind != "backtest":
        return section("backtest", note(
            "No walk-forward backtest in this folder. `marketcast backtest` scores every model "
            "from many forecast cutoffs; `marketcast report` on its folder shows the table here."))
    b = run.config.get("backtest", {})
    lag = run.metrics.get("lag_copy", [])
    lag_table = {"kind": "table", "caption": "Lag-copy check (one-day-ahead): do forecasts "
                 "merely echo the last price?",
                 "columns": ["model", "forecast move / actual move", "correlation of moves",
                             "nearer the last price %", "echoes yesterday"],
                 "rows": [[{"model": r["model"]}, fmt(r["move_ratio"], "{:.2f}"),
                           fmt(r["change_corr"], "{:.3f}"),
                           fmt(r["closer_to_last"], "{:.1f}"),
                           "yes" if r["echoes_last"] else "no"] for r in lag]}
    return section(
        "backtest",
        {"kind": "text", "text": f"{b.get('n_windows', '?')} forecast cutoffs "
         f"{b.get('stride', b.get('step', '?'))} trading day(s) apart; "
         + (f"a fresh fit every {b['refit_every']} cutoffs" if b.get("refit_every")
            else "one fit, at the first cutoff")
         + ("; expanding training window." if b.get("train_size") is None
            else f"; training window of the last {b['train_size']} days.")},
        score_table(run.metrics["metrics"], f"Walk-forward scores ({run.target}, price units)",
                     by_step=True),
        lag_table if lag else None,
        *all_models(run))


def all_models(run: RunFiles) -> list[dict]:
    """The tests of every model at once saved in metrics.json: the Model Confidence Set and
    Hansen's SPA test against the random walk (see :mod:`marketcast.evaluation.multiple`)."""
    mcs, spa = run.metrics.get("mcs"), run.metrics.get("spa")
    if mcs is None and spa is None:
        # One ticker of a many-ticker backtest: its tickers are compared under Tickers.
        return [] if run.ticker is not None else [note(
            "No test of all models at once in this folder (it needs two models, and "
            "backtests written before it was added have none): `marketcast backtest` "
            "again gives the model confidence set and the SPA test.")]
    lines = [describe_mcs(mcs)] if mcs is not None else []
    if spa is not None:
        p = spa["pvalues"]
        lines.append(f"{describe_spa(spa)}; Hansen's consistent p-value, between the lower "
                     f"{fmt(p['lower'], '{:.3g}')} and the upper {fmt(p['upper'], '{:.3g}')} "
                     "(White's Reality Check)")
    blocks = [{"kind": "list", "items": lines}]
    if mcs is not None:
        floor = 1 / mcs["reps"]
        blocks.append({
            "kind": "table",
            "caption": f"Model confidence set ({mcs['level']:.0%}), step-1 squared errors of "
                       f"{mcs['n']} cutoffs",
            "columns": ["model", "MSE (price units²)", "MCS p", "in the set"],
            "rows": [[{"model": m}, fmt(mcs["mse"][m], "{:.4g}"),
                      f"< {floor:g}" if p is not None and p < floor else fmt(p, "{:.3g}"),
                      "yes" if m in mcs["included"] else "no"]
                     for m, p in mcs["pvalues"].items()]})
        blocks.append({"kind": "text", "text": (
            "The set holds the models whose squared errors are not significantly larger than "
            f"the best's; a model leaves it at MCS p <= {mcs['size']:g} (Hansen, Lunde and "
            f"Nason; range statistic, stationary bootstrap with a mean block of "
            f"{mcs['block_size']} cutoffs, {mcs['reps']} resamples, seed {mcs['seed']}). The "
            "SPA test asks whether the best of the others has smaller squared errors than "
            "the random walk's (tomorrow = today).")})
    return blocks


# Interval columns of a backtest's coverage table: (key, heading, format). Older folders and
# many-ticker backtests have only the first three.
INTERVAL_COLUMNS = [
    ("n", "n", "{}"), ("coverage", "coverage %", "{:.1f}"),
    ("mean_width", "mean width (price units)", "{:.3g}"),
    ("interval_score", "interval score", "{:.3g}"),
    ("pinball_lower", "pinball lower", "{:.3g}"), ("pinball_upper", "pinball upper", "{:.3g}"),
    ("coverage_low", "calm %", "{:.1f}"), ("coverage_mid", "middle %", "{:.1f}"),
    ("coverage_high", "storm %", "{:.1f}"), ("kupiec_p", "Kupiec p", "{:.3g}"),
    ("christoffersen_ind_p", "independence p", "{:.3g}"),
    ("christoffersen_cc_p", "cond. coverage p", "{:.3g}"),
]


def interval_table(cover: list[dict]) -> dict:
    """The backtest's interval evaluation: coverage overall and in calm, middle and stormy
    volatility terciles (known at each cutoff), interval score, pinball losses, and the
    Kupiec and Christoffersen tests a risk manager applies to value-at-risk bands."""
    columns = [c for c in INTERVAL_COLUMNS if c[0] in cover[0]]
    return {"kind": "table", "caption": "Conformal intervals judged as a value-at-risk model "
            "(volatility terciles from the 20-day realised volatility known at each cutoff)",
            "columns": ["model", "step", *[h for _, h, _ in columns]],
            "rows": [[{"model": r["model"]}, fmt(r["step"]),
                      *[fmt(r.get(k), f) for k, _, f in columns]] for r in cover]}


METHOD_NAMES = {
    "conformal": "split-conformal on the residuals as they are",
    "scaled": "split-conformal on residuals over the EWMA volatility known at each cutoff",
    "aci": "adaptive conformal (miss level updated online) on volatility-scaled residuals",
}


def method_text(metrics: dict) -> str:
    """How the intervals were calibrated and, for ``auto``, how the method was chosen."""
    about = metrics.get("interval_method")
    if not isinstance(about, dict) or "method" not in about:
        return "Intervals: split-conformal."
    method = about["method"]
    text = f"Intervals: {method} ({METHOD_NAMES.get(method, method)})."
    if "validation_scores" in about:
        scores = ", ".join(f"{m} {fmt(v, '{:.4g}')}"
                           for m, v in about["validation_scores"].items())
        first, last = about["validation_cutoffs"]
        scored = (f"the table scores the cutoffs from {about['evaluation_from']} on only"
                  if about.get("evaluation_from") else "no cutoff was left to score them on")
        text += (f" Chosen by the lowest mean interval score on the validation cutoffs "
                 f"{first} to {last} ({scores}); {scored}, so the outcomes that chose it "
                 "are not scored.")
    return text


def fan_caption(fan: dict | None, level) -> str:
    """What the band of the forecast plot is, from model.json's ``fan``."""
    if not fan or fan.get("volatility") is None:
        return (f"The band is a {fmt(level, '{:.0%}')} split-conformal interval calibrated per "
                "step on the LSTM's out-of-sample test residuals.")
    adapted = (f" at the {fan['level']:.1%} level adaptive conformal inference had reached "
               "by the last test cutoff" if fan["method"] == "aci" else "")
    return (f"The band is a {fmt(level, '{:.0%}')} {fan['method']} interval{adapted}: "
            "quantiles per step of the LSTM's test residuals over the EWMA volatility at "
            "their cutoff times the square root of the step, scaled by today's volatility "
            f"({fan['volatility']:.2%} a day) times the square root of the step, so the fan "
            "widens with the volatility model's term structure.")


def forecast_section(run: RunFiles) -> dict:
    level = run.config.get("forecast", {}).get("interval")
    if run.kind == "backtest":
        cover = run.metrics.get("coverage", [])
        return section("forecast", note(
            "A backtest makes no forecast past the end of its data: `marketcast run` does. "
            f"Below, how often the {fmt(level, '{:.0%}')} interval of each "
            "walk-forward forecast held the outcome. " + method_text(run.metrics)),
            interval_table(cover) if cover else None)
    future, meta = run.csv("forecast.csv"), run.meta
    if future is None or "context_dates" not in meta:
        return section("forecast", note(
            "No forecast saved in this folder: `marketcast forecast --run FOLDER` makes one."))
    # The model's saved context plus the test period: the last days of the data.
    tested = run.table[(run.table["step"] == 1) & (run.table["model"] == BENCHMARK)]
    history = pd.concat([pd.Series(tested["y"].to_numpy(), index=tested["date"]),
                         pd.Series(meta["context_y"], index=pd.to_datetime(meta["context_dates"]))])
    history = history[~history.index.duplicated()].sort_index()
    has_interval = "lstm_lower" in future and future["lstm_lower"].notna().any()
    caption = (fan_caption(meta.get("fan"), level) if has_interval else
               "No interval: turned off (--interval 0) or too few test residuals.")
    rows = [[f"{r['date']:%Y-%m-%d}", *[fmt(r[c], "{:.2f}") for c in future.columns[1:]]]
            for _, r in future.iterrows()]
    cover = run.metrics.get("coverage", [])
    judged = [note(f"How often the {fmt(level, '{:.0%}')} interval of each test-period "
                   "forecast held the outcome, each interval calibrated only on the test "
                   "residuals known at its cutoff (never on the residual it is judged on). "
                   + method_text(run.metrics)), interval_table(cover)] if cover else []
    return section(
        "forecast",
        figure(plots.plot_forecast, history, future, run.target, level=level,
                alt="Price history and forecast fan", caption=caption),
        {"kind": "table", "caption": "Forecast on NYSE trading dates (price units)",
         "columns": ["date", *future.columns[1:]], "rows": rows, "collapsed": True},
        *judged)


def residuals_section(run: RunFiles) -> dict:
    model = run.focus
    if model is None:
        return section("residuals", note("No out-of-sample forecasts to diagnose."))
    residuals = plots.one_step_residuals(run.table, model, BENCHMARK)
    r = residuals[model]
    lags = max(1, min(10, len(r) // 5))
    q, p = ljung_box(r, lags)
    left = ("pattern is left that the model did not use" if significant(p)
            else "no significant pattern is left")
    text = (f"One-day-ahead residuals of {model}: n {len(r)}, mean {r.mean():+.3g} (bias), "
            f"standard deviation {r.std(ddof=1):.3g} price units. Ljung-Box over {lags} lags: "
            f"Q = {q:.3g}, p = {p:.3g}: {left}.")
    return section("residuals", figure(
        plots.plot_residuals, residuals,
        model, run.target, alt="Residual histogram and autocorrelation",
        caption=f"Histogram of {model}'s residuals beside those of the random walk (naive)."),
        {"kind": "text", "text": text})


def environment(run: RunFiles) -> dict:
    env = run.metrics.get("environment", {})
    packages = env.get("packages") or run.meta.get("versions", {})
    seconds = run.metrics.get("wall_seconds")
    what = {"backtest": "the whole backtest", "tune": "every trial",
            "study": "every training"}.get(run.kind, "data to forecast")
    rows = [
        ("made", env.get("created", "not recorded")),
        ("run time", f"{seconds:.1f} s ({what})" if seconds else "not recorded"),
        ("seed", run.config.get("train", {}).get("seed")),
        ("python", env.get("python", "not recorded")),
        ("platform", env.get("platform", "not recorded")),
    ]
    return section("environment", {"kind": "grid", "items": [
        pairs("run", rows),
        pairs("package versions", sorted(packages.items()) or [("packages", "not recorded")])]})
