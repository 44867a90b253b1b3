"""The report of a global model's folder (``marketcast run --tickers``).

One LSTM over many tickers is judged by the distribution of its per-ticker scores, so the
page shows that distribution (Theil's U of the LSTM and the linear model against the random
walk's 1.0, how many tickers the LSTM is significantly better or worse on) where a
single-series report shows one test period; the calls are counted on the raw and on the
Benjamini-Hochberg adjusted p-values, beside the share chance alone gives. Configuration,
training loss and environment are the single-series report's sections.
"""

from __future__ import annotations

from marketcast.evaluation.metrics import BENCHMARK, model_label
from marketcast.evaluation.significance import ALPHA, by_chance, tally
from marketcast.report import plots
from marketcast.report.blocks import RunFiles, figure, fmt, note, pairs, section
from marketcast.report.single import (
    backtest_section,
    configuration,
    environment,
    forecast_section,
    loss,
    residuals_section,
    test_section,
)
from marketcast.report.strategy import strategy_section

# A single-series report's sections plus the distribution over tickers ("tickers"); the
# sections about one series show the ticker with the median Theil's U.
GLOBAL_SECTIONS = ("verdict", "config", "data", "loss", "tickers", "test", "backtest",
                   "strategy", "forecast", "residuals", "environment")
# Per-ticker columns shown, in order: (column of per_ticker.csv, heading, format).
TICKER_COLUMNS = [
    ("ticker", "ticker", "{}"), ("n_test", "test days", "{:.0f}"),
    ("rmse_lstm", "RMSE lstm", "{:.3f}"), ("rmse_naive", "RMSE naive", "{:.3f}"),
    ("rmse_linear", "RMSE linear", "{:.3f}"), ("theils_u_lstm", "U lstm", "{:.3f}"),
    ("theils_u_linear", "U linear", "{:.3f}"), ("dm_p_value", "DM p vs naive", "{:.3g}"),
    ("dm_p_adjusted", "BH-adjusted p", "{:.3g}"), ("lstm_vs_naive", "lstm vs naive", "{}"),
    ("lstm_vs_naive_adjusted", "after adjustment", "{}"),
]


def global_sections(run: RunFiles) -> list[dict]:
    """The sections of GLOBAL_SECTIONS, in that order."""
    per_ticker = run.csv("per_ticker.csv", dates=())
    shown = representative(per_ticker) if run.tickers else None
    if shown is None:  # folders written before test forecasts were kept
        one_series = [section(key, note("This folder keeps no per-ticker test forecasts; "
                                          "run it again to see them here."))
                      for key in ("test", "backtest", "residuals")]
        forecast, strategy = _forecast(run), strategy_section(run)
    else:
        view = run.for_ticker(shown)
        one_series = [with_ticker(s, shown, len(per_ticker))
                      for s in (test_section(view), backtest_section(view),
                                residuals_section(view))]
        forecast = with_ticker(forecast_section(view), shown, len(per_ticker))
        forecast["blocks"].extend(_forecast(run)["blocks"])
        strategy = strategy_section(view)
    test, backtest, residuals = one_series
    return [
        _verdict(run, per_ticker), configuration(run), _data(run), loss(run),
        _tickers(run, per_ticker),
        test, backtest, strategy, forecast, residuals, environment(run),
    ]


def representative(per_ticker) -> str | None:
    """The ticker whose LSTM Theil's U is the median one (the lower middle of an even count)."""
    scored = per_ticker.dropna(subset=["theils_u_lstm"]).sort_values(["theils_u_lstm", "ticker"])
    if scored.empty:
        return None
    return str(scored["ticker"].iloc[(len(scored) - 1) // 2])


def with_ticker(block: dict, ticker: str, n: int) -> dict:
    """A one-series section, opened by a line saying which ticker of how many it shows."""
    shown = note(f"Shown for {ticker}, the ticker with the median Theil's U of {n} (every "
                 "ticker's scores are under Tickers; `marketcast report` on a one-ticker run "
                 "shows any other).")
    return {**block, "blocks": [shown, *block["blocks"]]}


def _verdict(run: RunFiles, per_ticker) -> dict:
    m = run.metrics
    if "theils_u_lstm" not in m:
        return section("verdict", note(
            "This folder holds a trained global model that was not scored (`marketcast "
            "train --tickers`); `marketcast evaluate --run FOLDER` scores every ticker."))
    better, worse = m.get("lstm_better_pct", 0.0), m.get("lstm_worse_pct", 0.0)
    median = m.get("theils_u_lstm", {}).get("median")
    if better > worse and median is not None and median < 1:
        tone = "good"
    elif worse > better:
        tone = "bad"
    else:
        tone = "neutral"
    judged = (tally(per_ticker["lstm_vs_naive"], model_label(BENCHMARK))
              if per_ticker is not None else "not judged: this folder has no per_ticker.csv")
    card = {
        "tone": tone,
        "headline": f"LSTM {judged}",
        "detail": f"median Theil's U {fmt(median, '{:.3f}')} (the random walk's is 1)",
    }
    which = ("walk-forward one-day-ahead forecasts" if run.kind == "backtest"
             else "one-day-ahead test forecasts")
    caption = (f"Each ticker's {which} against tomorrow = today, "
               f"Diebold-Mariano test of equal squared error (p < {ALPHA:g} decides).")
    lines = m.get("verdict", [])
    return section("verdict", {"kind": "cards", "cards": [card], "caption": caption},
                    {"kind": "list", "items": lines} if lines else None)


def adjusted_tally(per_ticker) -> str:
    """The calls on the Benjamini-Hochberg adjusted p-values counted, then the share chance
    alone gives, as a sentence; empty for folders written before the adjustment."""
    if "lstm_vs_naive_adjusted" not in per_ticker:
        return ""
    counted = tally(per_ticker["lstm_vs_naive_adjusted"], model_label(BENCHMARK),
                    test="BH-adjusted DM")
    return f" Benjamini-Hochberg adjusted across tickers: {counted}; {by_chance()}."


def _data(run: RunFiles) -> dict:
    m, d = run.metrics, run.metrics.get("data", {})
    skipped = run.csv("skipped.csv", dates=())
    summary = [
        ("source", run.config.get("data", {}).get("source")),
        ("tickers scored", m.get("tickers")), ("tickers skipped", m.get("skipped")),
        ("first day", d.get("start")), ("last day", d.get("end")),
        ("rows (all tickers)", d.get("rows")),
        ("training windows", m.get("windows_train")),
        ("validation windows", m.get("windows_val")),
    ]
    table = None
    if skipped is not None and len(skipped):
        table = {"kind": "table", "caption": "Skipped tickers and why",
                 "columns": ["ticker", "reason"], "collapsed": True,
                 "rows": [[r["ticker"], r["reason"]] for _, r in skipped.iterrows()]}
    return section("data", pairs("summary", summary), table, note(
        "Each ticker is scaled on its own training rows; no window crosses from one ticker "
        "into the next."))


def _tickers(run: RunFiles, per_ticker) -> dict:
    if per_ticker is None or per_ticker.empty:
        return section("tickers", note("No per-ticker scores in this folder."))
    m = run.metrics
    quartiles = {"kind": "table", "caption": "Theil's U over tickers (below 1: a smaller RMSE "
                 "than the random walk's)", "columns": ["model", "q1", "median", "q3"],
                 "rows": [[{"model": model}, *(fmt(m[f"theils_u_{model}"][q], "{:.3f}")
                                              for q in ("q1", "median", "q3"))]
                          for model in ("lstm", "linear")]}
    ordered = per_ticker.sort_values("theils_u_lstm", na_position="last")
    shown = [column for column in TICKER_COLUMNS if column[0] in per_ticker]
    rows = [[fmt(r[c], f) for c, _, f in shown] for _, r in ordered.iterrows()]
    every = {"kind": "table", "caption": "Every ticker, best LSTM first",
             "columns": [h for _, h, _ in shown], "rows": rows, "collapsed": True}
    return section(
        "tickers",
        figure(plots.plot_theils_u, per_ticker, alt="Histogram of Theil's U over tickers",
                caption="Theil's U of each ticker's test period; the dashed line is the "
                        "random walk."),
        quartiles,
        {"kind": "text", "text": "The LSTM is "
         f"{tally(per_ticker['lstm_vs_naive'], model_label(BENCHMARK))}."
         + adjusted_tally(per_ticker)},
        every, *interval_blocks(run))


# Interval summary per model over tickers: (key of metrics["intervals"], heading, format).
INTERVAL_SUMMARY = [
    ("tickers", "tickers", "{}"), ("pooled_coverage", "pooled coverage %", "{:.1f}"),
    ("median_coverage", "median coverage %", "{:.1f}"),
    ("median_coverage_low", "calm %", "{:.1f}"), ("median_coverage_mid", "middle %", "{:.1f}"),
    ("median_coverage_high", "storm %", "{:.1f}"),
    ("kupiec_rejected", "Kupiec rejects", "{}"),
    ("kupiec_rejected_adjusted", "after BH", "{}"),
    ("christoffersen_rejected", "Christoffersen rejects", "{}"),
    ("christoffersen_rejected_adjusted", "after BH", "{}"),
]


def interval_blocks(run: RunFiles) -> list[dict]:
    """Each ticker's one-day-ahead intervals judged as a value-at-risk model: the summary
    per model with the tests' rejections counted raw and after Benjamini-Hochberg, and
    every ticker's row (intervals.csv)."""
    summary = run.metrics.get("intervals")
    if not summary:
        return []
    rows = [[{"model": model}, *(fmt(one.get(k), f) for k, _, f in INTERVAL_SUMMARY)]
            for model, one in summary["models"].items()]
    blocks = [{"kind": "table", "caption": f"One-day-ahead {summary['level']:.0%} intervals "
               "over tickers, each calibrated only on the residuals known at its cutoff "
               "(medians of per-ticker coverage; volatility terciles known at each cutoff)",
               "columns": ["model", *[h for _, h, _ in INTERVAL_SUMMARY]], "rows": rows},
              note(summary["note"])]
    per_ticker = run.csv("intervals.csv", dates=())
    if per_ticker is not None and len(per_ticker):
        shown = [c for c in per_ticker.columns if c not in ("pinball_lower", "pinball_upper")]
        blocks.append({"kind": "table", "caption": "Every ticker's intervals (intervals.csv)",
                       "columns": [c.replace("_", " ") for c in shown], "collapsed": True,
                       "rows": [[fmt(r[c], "{:.4g}" if isinstance(r[c], float) else "{}")
                                 for c in shown] for _, r in per_ticker.iterrows()]})
    return blocks


def _forecast(run: RunFiles) -> dict:
    future = run.csv("forecast.csv")
    if future is None:
        return section("forecast", note("No forecast saved in this folder."))
    last = future.groupby("ticker", sort=False).tail(1)
    rows = [[r["ticker"], f"{r['date']:%Y-%m-%d}", fmt(r["naive"], "{:.2f}"),
             fmt(r["lstm"], "{:.2f}"), fmt(100 * (r["lstm"] / r["naive"] - 1), "{:+.2f}")]
            for _, r in last.iterrows()]
    days = future["date"].nunique()
    return section(
        "forecast",
        {"kind": "text", "text": f"forecast.csv holds each ticker's next {days} trading days; "
         "`marketcast forecast --run FOLDER --ticker T` makes one again, or from newer data "
         "with `--data`."},
        {"kind": "table", "caption": "Last forecast day per ticker: LSTM against the last "
         "price (the random walk's forecast)", "columns": ["ticker", "date", "last price",
                                                          "lstm", "change %"],
         "rows": rows, "collapsed": True})
