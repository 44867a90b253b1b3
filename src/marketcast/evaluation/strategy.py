"""Is it worth trading? Rules that trade on one-day-ahead forecasts, net of costs, against
buy-and-hold.

Pure functions of the long forecast table (``[ticker,] model, cutoff, date, step, y, y_hat,
y_cutoff``). Only step-1 rows are used, and their cutoffs must follow one another (each
row's cutoff is the previous row's date), so that the strategy's days are consecutive.

Timing, which makes look-ahead impossible: the position held over the day ending at
``date`` is decided at the close of ``cutoff``, the day before, from that row's forecast
return ``y_hat / y_cutoff - 1`` alone; it earns that day's close-to-close return
``r = y / y_cutoff - 1``.

Rules, with ``threshold`` a forecast return (0 by default):

- ``long_flat``: 1 when the forecast return is above ``threshold``, else 0 (cash, earning 0);
- ``long_short``: 1 above ``threshold``, -1 below ``-threshold``, else 0;
- buy-and-hold, the benchmark: 1 every day.

The random walk forecasts no change, so it never trades: its rows are left out. A missing
forecast (NaN) is no signal: flat that day.

Each day: ``gross_return = position * r``; ``cost = cost_bps / 10_000 * |position -
previous position|``, the first position counted from flat (buy-and-hold pays one entry
cost) and the last never closed out; ``net_return = gross_return - cost``. Returns are
simple daily returns, compounded into equity.

Scores of one strategy over its T days, from net returns, 252 trading days a year, no
risk-free rate:

- ``annual_return`` = prod(1 + net) ** (252 / T) - 1 (geometric);
- ``annual_volatility`` = std(net, ddof=1) * sqrt(252);
- ``sharpe`` = sqrt(252) * mean(net) / std(net, ddof=1); NaN when net returns never vary
  (a strategy that never trades);
- ``max_drawdown``: the largest fall of equity (starting at 1) from an earlier peak, as a
  negative fraction (-0.2: 20% below the peak);
- ``turnover`` = sum |position change| * 252 / T: units traded per year (one long-flat-long
  round trip is 2 units; a long/short flip is 2);
- ``hit_rate``: share of the days in the market whose gross return was positive;
- ``exposure``: share of days in the market (position not 0);
- ``sharpe_diff_p``: two-sided p-value of the difference between the strategy's Sharpe
  ratio and buy-and-hold's, by a paired stationary bootstrap (Politis and Romano 1994):
  ``arch.bootstrap.StationaryBootstrap`` with mean block length round(sqrt(T)), seeded,
  draws ``reps`` (1000) resamples of the days; on each resample b both ratios are computed
  on the same days, giving the difference d*_b. With d the observed difference, ``p = (1 +
  #{b: |d*_b - d| >= |d|}) / (1 + B)`` over the B resamples on which both ratios are
  defined: the bootstrap distribution, centred on d, stands in for the distribution of the
  difference when there is none. Identical strategies give p = 1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketcast.config import StrategyConfig
from marketcast.errors import ConfigError
from marketcast.evaluation import significance
from marketcast.evaluation.metrics import BENCHMARK

DAYS_PER_YEAR = 252
RULES = ("long_flat", "long_short")
BUY_AND_HOLD = "buy_and_hold"
# Bootstrap resamples behind each p-value.
REPS = 1000
# The columns of strategy.csv (a ``ticker`` column first for many tickers).
COLUMNS = ["model", "rule", "date", "position", "gross_return", "cost", "net_return"]
SCORES = ("annual_return", "annual_volatility", "sharpe", "max_drawdown", "turnover",
          "hit_rate", "exposure")
RULE_WORDS = {"long_flat": "long/flat", "long_short": "long/short"}
# How sentences name whose forecasts a strategy trades on.
OWNERS = {"lstm": "the LSTM's", "arima": "ARIMA's", "linear": "the linear model's"}
# How the judge's sentences name the test and the benchmark.
TEST, OTHER = "bootstrap", "buy-and-hold's"


@dataclass
class Strategies:
    """Every strategy's days (``strategy.csv``), its scores, the summary for metrics.json
    and the one sentence that says whether trading on the forecasts paid."""

    table: pd.DataFrame  # [ticker,] model, rule, date, position, gross_return, cost, net_return
    scores: pd.DataFrame  # [ticker,] model, rule, SCORES..., sharpe_diff_p
    summary: dict
    sentence: str


def rules_of(rule: str) -> tuple[str, ...]:
    """The rules a ``strategy.rule`` setting stands for (``"both"``: every rule)."""
    if rule == "both":
        return RULES
    if rule not in RULES:
        raise ConfigError(f"unknown strategy rule {rule!r}; use long_flat, long_short or both")
    return (rule,)


def positions(forecast_return: np.ndarray, rule: str, threshold: float = 0.0) -> np.ndarray:
    """Position (1 long, 0 flat, -1 short) for each day from its forecast return (n,)."""
    f = np.asarray(forecast_return, np.float64)
    long = (f > threshold).astype(np.float64)  # NaN compares false: flat
    if rules_of(rule) == ("long_flat",):
        return long
    return long - (f < -threshold)


def trade(position: np.ndarray, returns: np.ndarray,
          cost_bps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gross return, cost and net return (each (n,)) of holding ``position`` over days with
    close-to-close ``returns``, starting flat."""
    position = np.asarray(position, np.float64)
    cost = cost_bps / 10_000 * np.abs(np.diff(position, prepend=0.0))
    gross = position * np.asarray(returns, np.float64)
    return gross, cost, gross - cost


def strategy_table(table: pd.DataFrame, rules=RULES, threshold: float = 0.0,
                   cost_bps: float = 5.0) -> pd.DataFrame:
    """The days of buy-and-hold and of every rule on every model's step-1 forecasts (one
    series): columns :data:`COLUMNS`, buy-and-hold first (model and rule ``buy_and_hold``)."""
    one = table[table["step"] == 1]
    days = one.drop_duplicates("date").sort_values("date")
    cutoffs, dates = days["cutoff"].to_numpy(), days["date"].to_numpy()
    if (cutoffs[1:] != dates[:-1]).any():
        raise ConfigError("a trading strategy needs one-day-ahead forecasts from consecutive "
                          "days, and these cutoffs skip days (a backtest with --stride above "
                          "1?); use --stride 1")
    returns = (days["y"] / days["y_cutoff"] - 1).to_numpy()
    forecasts = one.pivot(index="date", columns="model", values="y_hat").reindex(dates)
    frames = [_days(BUY_AND_HOLD, BUY_AND_HOLD, dates, np.ones(len(dates)), returns, cost_bps)]
    for model in (m for m in one["model"].unique() if m != BENCHMARK):
        forecast_return = forecasts[model].to_numpy() / days["y_cutoff"].to_numpy() - 1
        frames += [_days(model, rule, dates, positions(forecast_return, rule, threshold),
                         returns, cost_bps) for rule in rules]
    return pd.concat(frames, ignore_index=True)


def _days(model: str, rule: str, dates, position, returns, cost_bps) -> pd.DataFrame:
    gross, cost, net = trade(position, returns, cost_bps)
    return pd.DataFrame({"model": model, "rule": rule, "date": dates, "position": position,
                         "gross_return": gross, "cost": cost, "net_return": net})


def sharpe_ratio(returns: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Annualised Sharpe ratio of daily returns along ``axis``, sqrt(252) * mean / std
    (ddof 1); NaN where the returns never vary."""
    r = np.asarray(returns, np.float64)
    varies = np.ptp(r, axis=axis) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = math.sqrt(DAYS_PER_YEAR) * r.mean(axis=axis) / r.std(axis=axis, ddof=1)
    return np.where(varies, ratio, np.nan)[()]


def max_drawdown(net: np.ndarray) -> float:
    """Largest fall of equity (starting at 1) below an earlier peak: a fraction <= 0."""
    equity = np.cumprod(1 + np.asarray(net, np.float64))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(min((equity / peak - 1).min(initial=0.0), 0.0))


def score(position: np.ndarray, gross: np.ndarray, net: np.ndarray) -> dict:
    """The scores :data:`SCORES` of one strategy's days (see the module docstring)."""
    n = len(net)
    if n < 2:
        return dict.fromkeys(SCORES, np.nan)
    held = position != 0
    years = n / DAYS_PER_YEAR
    return {
        "annual_return": float(np.prod(1 + net) ** (1 / years) - 1),
        "annual_volatility": float(np.std(net, ddof=1) * math.sqrt(DAYS_PER_YEAR)),
        "sharpe": float(sharpe_ratio(net)),
        "max_drawdown": max_drawdown(net),
        "turnover": float(np.abs(np.diff(position, prepend=0.0)).sum() / years),
        "hit_rate": float(np.mean(gross[held] > 0)) if held.any() else np.nan,
        "exposure": float(np.mean(held)),
    }


def block_length(n: int) -> int:
    """Mean block length of the stationary bootstrap: round(sqrt(n)), at least 1."""
    return max(1, round(math.sqrt(n)))


@functools.lru_cache(maxsize=4)  # tickers with test periods of one length share them
def resampled_days(n: int, reps: int = REPS, seed: int = 0) -> np.ndarray:
    """(reps, n) indices of the days of each stationary-bootstrap resample, drawn by
    ``arch.bootstrap.StationaryBootstrap`` (mean block length :func:`block_length`); read
    only."""
    from arch.bootstrap import StationaryBootstrap  # ~1 s to import: only when needed

    bootstrap = StationaryBootstrap(block_length(n), np.arange(n), seed=seed)
    days = np.array([data[0][0] for data in bootstrap.bootstrap(reps)], dtype=np.int64)
    days.flags.writeable = False
    return days


def sharpe_diff_p(returns: np.ndarray, benchmark: np.ndarray, seed: int = 0,
                  reps: int = REPS) -> np.ndarray:
    """Two-sided bootstrap p-values of Sharpe(returns[:, j]) - Sharpe(benchmark).

    Parameters
    ----------
    returns : ndarray (n,) or (n, k)
        Daily net returns of k strategies.
    benchmark : ndarray (n,)
        Daily net returns of the benchmark on the same days.

    Returns
    -------
    ndarray (k,)
        The paired stationary-bootstrap p-value of each (module docstring); every strategy
        is resampled on the same days. NaN where a Sharpe ratio is undefined or n < 3.
    """
    benchmark = np.asarray(benchmark, np.float64)
    n = len(benchmark)
    both = np.column_stack([np.asarray(returns, np.float64).reshape(n, -1), benchmark])
    if n < 3:
        return np.full(both.shape[1] - 1, np.nan)
    observed = sharpe_ratio(both[:, :-1], axis=0) - sharpe_ratio(benchmark)
    ratios = sharpe_ratio(both[resampled_days(n, reps, seed)], axis=1)  # (reps, k + 1)
    drawn = ratios[:, :-1] - ratios[:, -1:]  # (reps, k)
    valid = np.isfinite(drawn)
    extreme = valid & (np.abs(drawn - observed) >= np.abs(observed))
    p = (1 + extreme.sum(axis=0)) / (1 + valid.sum(axis=0))
    return np.where(np.isfinite(observed), p, np.nan)


def strategy_scores(days: pd.DataFrame, seed: int = 0, reps: int = REPS) -> pd.DataFrame:
    """One row per strategy of one series' :func:`strategy_table`: ``model, rule``, the
    :data:`SCORES`, ``sharpe_diff_p`` against buy-and-hold (NaN on its own row) and
    ``vs_buy_and_hold``, the judge's call on the Sharpe ratios ("better", "worse", "not
    significant"; empty on buy-and-hold's row)."""
    groups = list(days.groupby(["model", "rule"], sort=False))
    rows = [{"model": model, "rule": rule, **score(*(g[c].to_numpy() for c in
                                                     ("position", "gross_return", "net_return")))}
            for (model, rule), g in groups]
    net = np.column_stack([g["net_return"].to_numpy() for _, g in groups])
    held = days[days["model"] == BUY_AND_HOLD]["net_return"].to_numpy()
    p = sharpe_diff_p(net, held, seed, reps)
    frame = pd.DataFrame(rows)
    frame["sharpe_diff_p"] = np.where(frame["model"] == BUY_AND_HOLD, np.nan, p)
    held = frame.loc[frame["model"] == BUY_AND_HOLD, "sharpe"].iloc[0]
    # The judge: a higher Sharpe ratio is better, so the "loss" difference is held - ours.
    frame["vs_buy_and_hold"] = [
        "" if model == BUY_AND_HOLD else significance.call(p_value, held - sharpe)
        for model, p_value, sharpe in zip(frame["model"], frame["sharpe_diff_p"],
                                          frame["sharpe"], strict=True)]
    return frame


def evaluate(table: pd.DataFrame, config: StrategyConfig | None = None,
             seed: int = 0) -> Strategies:
    """The strategies of ``config`` on a forecast table: one series, or every ticker on its
    own when the table has a ``ticker`` column."""
    config = config or StrategyConfig()
    rules = rules_of(config.rule)
    if "ticker" not in table.columns:
        days = strategy_table(table, rules, config.threshold, config.cost_bps)
        scores = strategy_scores(days, seed)
        return Strategies(days, scores, summary(scores, config), sentence(scores, config))
    tables, scored = [], []
    for ticker, rows in table.groupby("ticker", sort=False):
        days = strategy_table(rows, rules, config.threshold, config.cost_bps)
        tables.append(days.assign(ticker=ticker))
        scored.append(strategy_scores(days, seed).assign(ticker=ticker))
    days, scores = (_ticker_first(pd.concat(frames, ignore_index=True))
                    for frames in (tables, scored))
    return Strategies(days, scores, panel_summary(scores, config),
                      panel_sentence(scores, config))


def _ticker_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["ticker", *(c for c in frame.columns if c != "ticker")]]


def _setting(config: StrategyConfig) -> dict:
    return {"rules": list(rules_of(config.rule)), "threshold": config.threshold,
            "cost_bps": config.cost_bps, "turnover": "units traded per year",
            "test": f"paired stationary bootstrap of the Sharpe difference (arch), {REPS} "
                    "resamples, mean block length sqrt(days)"}


def _json(values: dict) -> dict:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()}


def summary(scores: pd.DataFrame, config: StrategyConfig) -> dict:
    """The ``strategy`` block of one series' metrics.json: the settings, buy-and-hold's
    scores, each model's per rule (with ``sharpe_diff_p`` and its judgement) and the
    sentence."""
    held = scores[scores["model"] == BUY_AND_HOLD].iloc[0]
    models: dict = {}
    for row in scores[scores["model"] != BUY_AND_HOLD].to_dict(orient="records"):
        models.setdefault(row["model"], {})[row["rule"]] = _json(
            {k: row[k] for k in (*SCORES, "sharpe_diff_p", "vs_buy_and_hold")})
    return {**_setting(config), "buy_and_hold": _json({k: held[k] for k in SCORES}),
            "models": models, "sentence": sentence(scores, config)}


def panel_summary(scores: pd.DataFrame, config: StrategyConfig) -> dict:
    """The ``strategy`` block of a many-ticker metrics.json, compact: the median of every
    score over tickers (buy-and-hold's, and each model's per rule with the number of
    tickers its Sharpe ratio is significantly better or worse than buy-and-hold's on); the
    per-ticker values are in per_ticker.csv (:func:`per_ticker_columns`) and strategy.csv."""
    held = scores[scores["model"] == BUY_AND_HOLD]
    models: dict = {}
    for (model, rule), g in scores[scores["model"] != BUY_AND_HOLD].groupby(
            ["model", "rule"], sort=False):
        calls = g["vs_buy_and_hold"]
        models.setdefault(model, {})[rule] = _json({
            **{k: float(g[k].median()) for k in SCORES},
            **{f"tickers_{word.replace(' ', '_')}": int((calls == word).sum())
               for word in (significance.BETTER, significance.WORSE,
                            significance.NOT_SIGNIFICANT)}})
    return {**_setting(config), "tickers": int(held["ticker"].nunique()),
            "over_tickers": "median",
            "buy_and_hold": _json({k: float(held[k].median()) for k in SCORES}),
            "models": models, "sentence": panel_sentence(scores, config)}


def per_ticker_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per ticker: ``ticker, sharpe_buy_and_hold``, then ``sharpe_<model>_<rule>``
    and ``sharpe_diff_p_<model>_<rule>`` of each strategy (columns for per_ticker.csv)."""
    out = scores.loc[scores["model"] == BUY_AND_HOLD, ["ticker", "sharpe"]].rename(
        columns={"sharpe": "sharpe_buy_and_hold"}).set_index("ticker")
    for (model, rule), g in scores[scores["model"] != BUY_AND_HOLD].groupby(
            ["model", "rule"], sort=False):
        g = g.set_index("ticker")
        out[f"sharpe_{model}_{rule}"] = g["sharpe"]
        out[f"sharpe_diff_p_{model}_{rule}"] = g["sharpe_diff_p"]
    return out.reset_index()


def _focus(scores: pd.DataFrame) -> tuple[str, str] | None:
    """The strategy a sentence is about: the LSTM's (else the first model's), long/flat
    when it was scored."""
    traded = scores[scores["model"] != BUY_AND_HOLD]
    if traded.empty:
        return None
    models, rules = list(traded["model"].unique()), list(traded["rule"].unique())
    return ("lstm" if "lstm" in models else models[0],
            "long_flat" if "long_flat" in rules else rules[0])


def strategy_words(model: str, rule: str) -> str:
    """``"a long/flat strategy on the LSTM's forecasts"``."""
    owner = OWNERS.get(model, f"the {model} model's")
    return f"a {RULE_WORDS[rule]} strategy on {owner} forecasts"


def _held(held) -> str:
    return f"{held['annual_return']:.1%} a year (Sharpe {held['sharpe']:.2f})"


def sentence(scores: pd.DataFrame, config: StrategyConfig) -> str:
    """One plain sentence on one series, e.g. "a long/flat strategy on the LSTM's forecasts
    was long on 98% of days and earned -8.0% a year (Sharpe -0.44) against buy-and-hold's
    -7.1% a year (Sharpe -0.34) after costs of 5 bps per unit traded; its Sharpe ratio is
    not significantly different from buy-and-hold's (bootstrap p = 0.71)"."""
    held = scores[scores["model"] == BUY_AND_HOLD].iloc[0]
    focus = _focus(scores)
    if focus is None:
        return f"no model's forecasts to trade on; buy-and-hold earned {_held(held)}"
    row = scores[(scores["model"] == focus[0]) & (scores["rule"] == focus[1])].iloc[0]
    if row["exposure"] == 0:
        beyond = "above " if focus[1] == "long_flat" else "beyond +/-"
        return (f"{strategy_words(*focus)} never took a position (no forecast return "
                f"{beyond}{config.threshold:g}); buy-and-hold earned {_held(held)}")
    where = "long" if focus[1] == "long_flat" else "in the market"
    return (f"{strategy_words(*focus)} was {where} on {row['exposure']:.0%} of days and "
            f"earned {_held(row)} against buy-and-hold's "
            f"{_held(held)} after costs of {config.cost_bps:g} bps per unit traded; its "
            f"Sharpe ratio is {significance.phrase(row['vs_buy_and_hold'], OTHER)} "
            f"({significance.format_p(row['sharpe_diff_p'], TEST)})")


def panel_sentence(scores: pd.DataFrame, config: StrategyConfig) -> str:
    """The sentence over many tickers: medians, and the per-ticker judgements counted, e.g.
    "over 5 tickers, a long/flat strategy on the LSTM's forecasts earned a median 3.1% a
    year (Sharpe 0.21) against buy-and-hold's 4.0% a year (Sharpe 0.35) after costs of 5 bps
    per unit traded; its Sharpe ratio is not significantly different from buy-and-hold's on
    any of the 5 tickers (no bootstrap p below 0.05)"."""
    held = scores[scores["model"] == BUY_AND_HOLD][["annual_return", "sharpe"]].median()
    tickers = scores["ticker"].nunique()
    focus = _focus(scores)
    if focus is None:
        return f"no model's forecasts to trade on; buy-and-hold earned a median {_held(held)}"
    rows = scores[(scores["model"] == focus[0]) & (scores["rule"] == focus[1])]
    if (rows["exposure"] == 0).all():
        return (f"{strategy_words(*focus)} never took a position on any of {tickers} "
                f"tickers; buy-and-hold earned a median {_held(held)}")
    medians = rows[["annual_return", "sharpe"]].median()
    return (f"over {tickers} tickers, {strategy_words(*focus)} earned a median "
            f"{_held(medians)} against buy-and-hold's {_held(held)} after costs of "
            f"{config.cost_bps:g} bps per unit traded; its Sharpe ratio is "
            + significance.tally(rows["vs_buy_and_hold"], OTHER, test=TEST))
