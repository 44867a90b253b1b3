"""Trading strategies on forecasts: exact values, costs, the bootstrap p-value, no look-ahead."""

import math

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import StationaryBootstrap

from marketcast.config import Config, StrategyConfig
from marketcast.errors import ConfigError
from marketcast.evaluation.strategy import (
    BUY_AND_HOLD,
    COLUMNS,
    evaluate,
    max_drawdown,
    per_ticker_columns,
    positions,
    score,
    sharpe_diff_p,
    sharpe_ratio,
    strategy_scores,
    strategy_table,
    trade,
)
from marketcast.models import make_model
from marketcast.pipeline.series import Series, forecast_table


def step_one_table(y: np.ndarray, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Step-1 rows of consecutive cutoffs: ``forecasts[model][i]`` is the forecast of
    ``y[i + 1]`` made at the close of day ``i``."""
    dates = pd.bdate_range("2021-01-04", periods=len(y))
    return pd.concat([pd.DataFrame({
        "model": model, "cutoff": dates[:-1], "date": dates[1:], "step": 1, "y": y[1:],
        "y_hat": y_hat, "y_cutoff": y[:-1]}) for model, y_hat in forecasts.items()],
        ignore_index=True)


def random_prices(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n + 1)))


def days_of(table, model, rule):
    return table[(table["model"] == model) & (table["rule"] == rule)].reset_index(drop=True)


def test_rules_by_hand():
    forecast = np.array([0.002, 0.0005, 0.0, -0.0005, -0.002, np.nan])
    assert positions(forecast, "long_flat").tolist() == [1, 1, 0, 0, 0, 0]
    assert positions(forecast, "long_short").tolist() == [1, 1, 0, -1, -1, 0]
    assert positions(forecast, "long_flat", 0.001).tolist() == [1, 0, 0, 0, 0, 0]
    assert positions(forecast, "long_short", 0.001).tolist() == [1, 0, 0, 0, -1, 0]
    with pytest.raises(ConfigError, match="unknown strategy rule 'short'"):
        positions(forecast, "short")


def test_costs_are_turnover_times_bps():
    position = np.array([1, 1, 0, -1, -1, 1, 0])
    returns = np.array([0.01, -0.02, 0.03, 0.01, -0.01, 0.02, 0.05])
    gross, cost, net = trade(position, returns, cost_bps=5)
    turnover = np.array([1, 0, 1, 1, 0, 2, 1])  # from a flat start
    np.testing.assert_allclose(cost, 0.0005 * turnover, rtol=0, atol=1e-18)
    assert cost.sum() == pytest.approx(6 * 5 / 10_000)
    np.testing.assert_allclose(gross, [0.01, -0.02, 0, -0.01, 0.01, 0.02, 0], atol=1e-18)
    np.testing.assert_allclose(net, gross - cost, atol=1e-18)


def test_scores_by_hand():
    position = np.array([1.0, 1, 0, 1])
    gross, _, net = trade(position, np.array([0.10, -0.05, 0.02, -0.10]), cost_bps=0)
    scores = score(position, gross, net)
    # Equity 1.1, 1.045, 1.045, 0.9405: the trough is 14.5% below the peak of 1.1.
    assert scores["max_drawdown"] == pytest.approx(0.9405 / 1.1 - 1) == pytest.approx(-0.145)
    assert scores["annual_return"] == pytest.approx(0.9405 ** (252 / 4) - 1)
    # Net returns 0.1, -0.05, 0, -0.1: mean -0.0125, squared deviations sum to 0.021875.
    std = math.sqrt(0.021875 / 3)
    assert scores["annual_volatility"] == pytest.approx(std * math.sqrt(252))
    assert scores["sharpe"] == pytest.approx(-0.0125 / std * math.sqrt(252))
    assert scores["turnover"] == pytest.approx(3 * 252 / 4)  # 3 units in 4 days, per year
    assert scores["hit_rate"] == pytest.approx(1 / 3)  # one of the three days held gained
    assert scores["exposure"] == pytest.approx(3 / 4)


def test_drawdown_counts_a_loss_from_the_start_and_a_flat_sharpe_is_undefined():
    assert max_drawdown(np.array([-0.1, 0.05])) == pytest.approx(-0.1)
    assert max_drawdown(np.array([0.1, 0.2])) == 0.0
    assert math.isnan(sharpe_ratio(np.zeros(10)))
    flat = score(np.zeros(5), np.zeros(5), np.zeros(5))
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["hit_rate"])
    assert flat["exposure"] == 0 and flat["turnover"] == 0 and flat["annual_return"] == 0


def test_perfect_foresight_long_short_earns_every_absolute_return():
    y = random_prices(120)
    table = strategy_table(step_one_table(y, {"oracle": y[1:]}), cost_bps=0)
    r = y[1:] / y[:-1] - 1
    oracle = days_of(table, "oracle", "long_short")
    np.testing.assert_allclose(oracle["gross_return"], np.abs(r), rtol=1e-15)
    # Summed: the sum of absolute returns; compounded (as annual_return compounds them):
    # the product of 1 + |r|.
    assert oracle["gross_return"].sum() == pytest.approx(np.abs(r).sum(), rel=1e-12)
    scores = strategy_scores(table).set_index(["model", "rule"])
    assert scores.loc[("oracle", "long_short"), "annual_return"] == pytest.approx(
        np.prod(1 + np.abs(r)) ** (252 / len(r)) - 1, rel=1e-12)
    assert scores.loc[("oracle", "long_short"), "hit_rate"] == 1.0
    assert scores.loc[("oracle", "long_short"), "sharpe_diff_p"] < 0.01
    assert scores.loc[("oracle", "long_short"), "vs_buy_and_hold"] == "better"


def test_always_up_matches_buy_and_hold_less_one_entry_cost():
    y = random_prices(200, seed=1)
    table = strategy_table(step_one_table(y, {"bull": 1.01 * y[:-1]}), rules=("long_flat",),
                           cost_bps=5)
    bull, held = days_of(table, "bull", "long_flat"), days_of(table, BUY_AND_HOLD, BUY_AND_HOLD)
    assert (bull["position"] == 1).all()
    r = y[1:] / y[:-1] - 1
    expected = r - np.r_[0.0005, np.zeros(len(r) - 1)]  # one entry cost, on the first day
    np.testing.assert_allclose(bull["net_return"], expected, rtol=0, atol=1e-17)
    assert bull["gross_return"].sum() - bull["net_return"].sum() == pytest.approx(0.0005)
    pd.testing.assert_frame_equal(bull.drop(columns=["model", "rule"]),
                                  held.drop(columns=["model", "rule"]))
    scores = strategy_scores(table).set_index("model")
    assert scores.loc["bull", "sharpe"] == scores.loc[BUY_AND_HOLD, "sharpe"]
    assert scores.loc["bull", "sharpe_diff_p"] == 1.0  # identical strategies


def test_bootstrap_p_value_is_arch_stationary_bootstrap_and_seeded():
    rng = np.random.default_rng(3)
    held = 0.0003 + 0.01 * rng.standard_normal(250)
    ours = held * (rng.random(250) < 0.6)  # in the market 60% of days
    p = sharpe_diff_p(ours, held, seed=7, reps=500)
    # The documented computation, with arch's own apply: block sqrt(250) ~ 16, the same seed.

    def difference(a, b):
        return sharpe_ratio(a) - sharpe_ratio(b)

    drawn = StationaryBootstrap(16, ours, held, seed=7).apply(difference, 500)[:, 0]
    observed = difference(ours, held)
    expected = (1 + np.sum(np.abs(drawn - observed) >= abs(observed))) / (1 + 500)
    assert p.shape == (1,) and p[0] == expected
    assert sharpe_diff_p(ours, held, seed=7, reps=500)[0] == p[0]  # reproducible
    assert sharpe_diff_p(ours, held, seed=8, reps=500)[0] != p[0]  # the seed matters
    # Identical strategies: every resampled difference is 0, p = 1; a strategy that earns
    # far more per unit of risk: p at its floor, 1 / (1 + reps).
    assert sharpe_diff_p(held, held, reps=200)[0] == 1.0
    better = np.abs(held) + 0.001
    assert sharpe_diff_p(better, held, reps=200)[0] == pytest.approx(1 / 201)
    # Several strategies at once: each as if alone (the same resampled days).
    both = sharpe_diff_p(np.column_stack([ours, held]), held, seed=7, reps=500)
    assert both.tolist() == [p[0], 1.0]


def test_a_strategy_that_never_trades_has_no_p_value_and_says_so():
    y = random_prices(60)
    result = evaluate(step_one_table(y, {"lstm": y[:-1] * 0.99}),
                      StrategyConfig(rule="long_flat"))
    row = result.scores.set_index("model").loc["lstm"]
    assert row["exposure"] == 0 and math.isnan(row["sharpe_diff_p"])
    assert result.sentence.startswith(
        "a long/flat strategy on the LSTM's forecasts never took a position (no forecast "
        "return above 0); buy-and-hold earned")
    many = evaluate(pd.concat([step_one_table(y, {"lstm": y[:-1] * 0.99}).assign(ticker=t)
                               for t in ("A", "B")]), StrategyConfig(rule="long_flat"))
    assert many.sentence.startswith("a long/flat strategy on the LSTM's forecasts never took "
                                    "a position on any of 2 tickers")


def test_sentence_and_summary():
    y = random_prices(249, seed=2)
    noise = 1 + 0.002 * np.random.default_rng(5).standard_normal(249)
    table = step_one_table(y, {"naive": y[:-1], "lstm": y[:-1] * noise,
                               "linear": y[:-1] * 1.001})
    result = evaluate(table, StrategyConfig(cost_bps=5), seed=0)
    assert list(result.table.columns) == COLUMNS
    assert set(result.table["model"]) == {BUY_AND_HOLD, "lstm", "linear"}  # no random walk
    scores = result.scores.set_index(["model", "rule"])
    lstm, held = scores.loc[("lstm", "long_flat")], scores.loc[(BUY_AND_HOLD, BUY_AND_HOLD)]
    assert result.sentence == (
        f"a long/flat strategy on the LSTM's forecasts was long on {lstm['exposure']:.0%} of "
        f"days and earned {lstm['annual_return']:.1%} a year (Sharpe {lstm['sharpe']:.2f}) "
        "against buy-and-hold's "
        f"{held['annual_return']:.1%} a year (Sharpe {held['sharpe']:.2f}) after costs of 5 "
        "bps per unit traded; its Sharpe ratio is not significantly different from "
        f"buy-and-hold's (bootstrap p = {lstm['sharpe_diff_p']:.3g})")
    summary = result.summary
    assert summary["rules"] == ["long_flat", "long_short"] and summary["cost_bps"] == 5
    assert summary["models"]["lstm"]["long_flat"]["sharpe"] == lstm["sharpe"]
    assert summary["models"]["linear"]["long_short"]["exposure"] == 1.0
    assert summary["buy_and_hold"]["turnover"] == pytest.approx(252 / 249)
    assert summary["sentence"] == result.sentence


def test_every_ticker_on_its_own():
    a, b = random_prices(150, seed=4), random_prices(130, seed=5)
    one = {t: step_one_table(y, {"naive": y[:-1], "lstm": y[:-1] * (1 + 0.001 * np.sin(
        np.arange(len(y) - 1)))}) for t, y in (("AAA", a), ("BBB", b))}
    both = pd.concat([t.assign(ticker=k) for k, t in one.items()], ignore_index=True)
    result = evaluate(both, StrategyConfig(rule="long_short"))
    assert list(result.table.columns) == ["ticker", *COLUMNS]
    for ticker, table in one.items():
        alone = evaluate(table, StrategyConfig(rule="long_short"))
        mine = result.scores[result.scores["ticker"] == ticker].drop(columns="ticker")
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), alone.scores)
    sharpe = result.scores.set_index(["ticker", "model"])["sharpe"]
    wide = per_ticker_columns(result.scores).set_index("ticker")
    assert list(wide.columns) == ["sharpe_buy_and_hold", "sharpe_lstm_long_short",
                                  "sharpe_diff_p_lstm_long_short"]
    assert wide.loc["BBB", "sharpe_lstm_long_short"] == sharpe[("BBB", "lstm")]
    summary = result.summary["models"]["lstm"]["long_short"]
    assert summary["sharpe"] == pytest.approx(np.median(sharpe[:, "lstm"]))
    assert summary["tickers_better"] + summary["tickers_worse"] + \
        summary["tickers_not_significant"] == 2
    assert result.sentence.startswith("over 2 tickers, a long/short strategy on the LSTM's "
                                      "forecasts earned a median")


def test_cutoffs_must_be_consecutive():
    y = random_prices(40)
    table = step_one_table(y, {"lstm": y[:-1]}).iloc[::5]  # a backtest with --stride 5
    with pytest.raises(ConfigError, match="--stride 1"):
        strategy_table(table)


@pytest.mark.parametrize("day", [160, 200, 240])
@pytest.mark.parametrize("jump", [0.8, 1.25])
def test_no_position_changes_when_later_prices_change(day, jump):
    """Perturb every price after a day: no position decided at a close up to that day's
    (the one taken at it included) moves, nor any return earned up to that day. The jump
    up or down after the day flips the position a rule peeking at the next price would
    take."""
    y = random_prices(260, seed=6)
    dates = pd.bdate_range("2020-01-01", periods=len(y))
    config = Config()
    linear = make_model("linear", config).fit(y[:150])
    cutoffs = np.arange(150, len(y) - 1)

    def strategies(prices):
        series = Series(dates, prices, None, ("close",))
        table = forecast_table({"naive": make_model("naive", config).fit(prices[:150]),
                                "linear": linear}, series, cutoffs, 1)
        return strategy_table(table)

    before = strategies(y)
    changed = y.copy()
    noise = np.random.default_rng(day).normal(0, 0.05, len(y) - day - 1)
    changed[day + 1:] *= jump * np.exp(noise)
    after = strategies(changed)
    decided = before["date"] <= dates[day + 1]  # positions decided at closes up to `day`
    earned = before["date"] <= dates[day]
    assert (after["date"] == before["date"]).all()
    pd.testing.assert_series_equal(after.loc[decided, "position"],
                                   before.loc[decided, "position"])
    pd.testing.assert_series_equal(after.loc[earned, "net_return"],
                                   before.loc[earned, "net_return"])
    assert (after.loc[~decided, "position"] != before.loc[~decided, "position"]).any()
