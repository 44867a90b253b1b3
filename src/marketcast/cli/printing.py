"""What the commands print: score tables, interval judgements, trading results."""

from __future__ import annotations

from rich.table import Table

from marketcast.cli.console import out
from marketcast.cli.options import fmt_value, rich_table


def print_distribution(result) -> None:
    """Quartiles of Theil's U over tickers, and the verdict, of a global run or evaluation."""
    table = Table(title=f"global model, test period per ticker ({len(result.per_ticker)})")
    for heading in ("Theil's U", "q1", "median", "q3"):
        table.add_column(heading, justify="right")
    for model in ("lstm", "linear"):
        u = result.distribution[f"theils_u_{model}"]
        table.add_row(model, *(f"{u[k]:.3f}" for k in ("q1", "median", "q3")))
    out.print(table)
    lines = result.verdict if isinstance(result.verdict, list) else [result.verdict]
    for line in lines:
        out.print(f"verdict: {line}", soft_wrap=True)


SCORE_COLUMNS = [
    ("model", "model", "{}"), ("n", "n", "{}"), ("rmse", "RMSE", "{:.3f}"),
    ("mae", "MAE", "{:.3f}"), ("mape", "MAPE %", "{:.3f}"),
    ("directional_accuracy", "direction %", "{:.1f}"), ("theils_u", "Theil's U", "{:.3f}"),
    ("dm_p_value", "DM p vs naive", "{:.3g}"),
]


def print_scores(evaluation) -> None:
    out.print(rich_table("test period (price units)", evaluation.scores, SCORE_COLUMNS))
    for line in evaluation.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


INTERVAL_COLUMNS = [
    ("model", "model", "{}"), ("step", "step", "{}"), ("n", "n", "{}"),
    ("coverage", "coverage %", "{:.1f}"), ("mean_width", "mean width", "{:.2f}"),
    ("interval_score", "interval score", "{:.2f}"),
    ("coverage_low", "calm %", "{:.1f}"), ("coverage_high", "storm %", "{:.1f}"),
    ("kupiec_p", "Kupiec p", "{:.3g}"), ("christoffersen_cc_p", "Christoffersen p", "{:.3g}"),
]


def print_interval_table(scores, method: str, choice, where: str) -> None:
    if len(scores):
        out.print(rich_table(f"{method} intervals ({where}, calibrated sequentially)", scores,
                             [c for c in INTERVAL_COLUMNS if c[0] in scores.columns]))
    if choice is not None:
        out.print(f"intervals: {choice.sentence()}", soft_wrap=True)


def print_intervals(intervals) -> None:
    """A run's test-period intervals judged as a value-at-risk model, and the method."""
    if intervals is not None:
        print_interval_table(intervals.scores, intervals.method, intervals.choice,
                              "test period")


def print_interval_summary(summary) -> None:
    from marketcast.evaluation.interval_summary import summary_lines

    for line in summary_lines(summary or {}):
        out.print(f"intervals: {line}", soft_wrap=True)
    if summary:
        out.print(f"intervals: {summary['note']} Per ticker: intervals.csv", soft_wrap=True)


def print_backtest(result) -> None:
    columns = SCORE_COLUMNS[:1] + [("step", "step", "{}")] + SCORE_COLUMNS[1:4] + [
        ("mase", "MASE", "{:.3f}")] + SCORE_COLUMNS[5:]
    out.print(rich_table("walk-forward backtest (price units)", result.scores, columns))
    print_interval_table(result.coverage, result.interval_method, result.interval_choice,
                          "walk-forward")
    for line in result.verdict:
        out.print(f"verdict: {line}", soft_wrap=True)


STRATEGY_COLUMNS = [
    ("model", "strategy", "{}"), ("annual_return", "return a year", "{:.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"), ("max_drawdown", "max drawdown", "{:.1%}"),
    ("turnover", "units traded a year", "{:.1f}"), ("exposure", "in the market", "{:.0%}"),
    ("sharpe_diff_p", "p", "{:.3g}"),
]


def print_strategy(strategy, table: bool = True) -> None:
    """The trading rules against buy-and-hold: their scores (one series) and the sentence."""
    if strategy is None:
        return
    if table:
        title = (f"trading on the one-day-ahead forecasts, net of "
                 f"{strategy.summary['cost_bps']:g} bps per unit traded (p: bootstrap test of "
                 "the Sharpe ratio against buy-and-hold's)")
        table = Table(title=title, pad_edge=False)
        for i, (_, heading, _) in enumerate(STRATEGY_COLUMNS):
            table.add_column(heading, justify="right" if i else "left", no_wrap=not i,
                             min_width=max(len(word) for word in heading.split()))
        for row in strategy.scores.to_dict(orient="records"):
            name = row["model"] if row["model"] == row["rule"] else \
                f"{row['model']} {row['rule'].replace('_', '/')}"
            table.add_row(name.replace("_", "-"), *[fmt_value(f, row[key])
                                                    for key, _, f in STRATEGY_COLUMNS[1:]])
        out.print(table)
    out.print(f"strategy: {strategy.sentence}", soft_wrap=True)
