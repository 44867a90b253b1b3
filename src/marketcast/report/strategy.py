"""The report's "Strategy" section: is it worth trading on the forecasts?

Built from ``strategy.csv`` (each strategy's days, net of costs) and the ``strategy`` block
of ``metrics.json`` (scores, bootstrap p-values and the sentence); the rules and the scores
are those of :mod:`marketcast.evaluation.strategy`.
"""

from __future__ import annotations

from marketcast.evaluation.significance import ALPHA
from marketcast.evaluation.strategy import BUY_AND_HOLD, REPS, RULE_WORDS
from marketcast.report import plots
from marketcast.report.blocks import RunFiles, figure, fmt, note, section
from marketcast.runs import layout

HOW = ("How to read it: each position is decided at a day's close from that day's forecast "
       "of the next close, and earns the next close-to-close return; long/flat is long when "
       "the forecast return is above the threshold, long/short also short below minus it. "
       "Costs are charged per unit of turnover (in and out of a position is 2 units). "
       "Returns compound; Sharpe ratios are annualised over 252 days with no risk-free rate; "
       "turnover is units traded per year; hit rate is the share of days in the market "
       "that gained; exposure the share of days in the market. p: a paired stationary "
       f"bootstrap (arch, {REPS} resamples) of the difference from buy-and-hold's Sharpe "
       f"ratio; better or worse only at p < {ALPHA:g}.")
# Scores shown: (key in metrics.json, heading, format).
COLUMNS = [
    ("annual_return", "return / year", "{:.1%}"), ("annual_volatility", "volatility", "{:.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"), ("max_drawdown", "max drawdown", "{:.1%}"),
    ("turnover", "turnover / year", "{:.1f}"), ("hit_rate", "hit rate", "{:.1%}"),
    ("exposure", "exposure", "{:.0%}"),
]


def strategy_section(run: RunFiles) -> dict:
    """The sentence, equity and drawdown curves per rule, and the table of scores (for many
    tickers: the medians over tickers, and the curves of the ticker ``run`` is a view of)."""
    block = run.metrics.get("strategy")
    days = run.csv(layout.STRATEGY)
    if block is None or days is None or "ticker" in days.columns:
        return section("strategy", note(_missing(run)))
    whose = f" of {run.ticker}" if run.ticker else ""
    curves = [figure(plots.plot_strategy, days, rule,
                     alt=f"Equity and drawdown of {RULE_WORDS[rule]} strategies{whose}",
                     caption=f"{RULE_WORDS[rule].capitalize()} strategies{whose} against "
                             f"buy-and-hold (dashed), net of {block['cost_bps']:g} bps per "
                             "unit of turnover; equity starts at 1.")
              for rule in block["rules"] if (days["rule"] == rule).any()]
    if run.ticker:  # a many-ticker folder: its summary holds the medians over tickers
        curves.insert(0, note(f"The curves are {run.ticker}'s, the ticker with the median "
                              "Theil's U; the table and the sentence are over every ticker "
                              "(each ticker's Sharpe ratios are in per_ticker.csv)."))
    return section("strategy", {"kind": "text", "text": block["sentence"]}, *curves,
                   _table(block), note(HOW))


def _missing(run: RunFiles) -> str:
    if run.table is None:
        return ("No forecasts to trade on in this folder: `marketcast run` and `marketcast "
                "backtest` score trading rules on their forecasts.")
    if run.config.get("backtest", {}).get("stride", 1) != 1:
        return ("No trading strategy: its rules trade every day on the next day's forecast, "
                "and this backtest's cutoffs are days apart; backtest with `--stride 1`.")
    return ("This folder was written before trading strategies were scored; run it again "
            "to see them here.")


def _table(block: dict) -> dict:
    many = block.get("over_tickers") == "median"
    tail = (["tickers better", "tickers worse"] if many
            else ["bootstrap p vs buy-and-hold", "vs buy-and-hold"])
    rows = [[{"model": BUY_AND_HOLD}, "always long", *_scores(block["buy_and_hold"]),
             "", ""]]
    for model, rules in block["models"].items():
        for rule, scores in rules.items():
            extra = ([fmt(scores.get("tickers_better")), fmt(scores.get("tickers_worse"))]
                     if many else [fmt(scores.get("sharpe_diff_p"), "{:.3g}"),
                                   scores.get("vs_buy_and_hold") or "–"])
            rows.append([{"model": model}, RULE_WORDS[rule], *_scores(scores), *extra])
    what = f"median over {block.get('tickers', '?')} tickers" if many else "net of costs"
    return {"kind": "table",
            "caption": f"Trading on the one-day-ahead forecasts ({what}; "
                       f"{block['cost_bps']:g} bps per unit of turnover, threshold "
                       f"{block['threshold']:g})",
            "columns": ["model", "rule", *[h for _, h, _ in COLUMNS], *tail], "rows": rows}


def _scores(scores: dict) -> list[str]:
    return [fmt(scores.get(key), f) for key, _, f in COLUMNS]
