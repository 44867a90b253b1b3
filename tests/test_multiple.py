"""Tests of many comparisons at once (evaluation.multiple): the Model Confidence Set and the SPA
test are arch's on the same loss matrix and seed, the Benjamini-Hochberg adjustment is
statsmodels' and a hand-computed one, and the shares and sentences built on them never call a
model better at p >= 0.05."""

import html

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import MCS, SPA
from statsmodels.stats.multitest import multipletests
from test_significance import backtest_folder, claims, forecast_table, page_text

from marketcast import files
from marketcast.evaluation.multiple import (
    adjust_p_values,
    adjusted_calls,
    block_size,
    describe,
    describe_mcs,
    describe_spa,
    loss_matrix,
    mcs_and_spa,
    model_confidence_set,
    share_summary,
    spa_test,
)
from marketcast.evaluation.significance import best_of, by_chance, format_p
from marketcast.pipeline.global_model import adjust_tickers, global_verdict, summarize_tickers
from marketcast.report import render_report
from marketcast.runs.layout import Kind


def four_models(n: int = 200, seed: int = 3) -> pd.DataFrame:
    """Long table on a random walk: ``naive`` (the last price), ``drift`` (a tiny constant
    step), ``linear`` (the last price plus a little noise) and ``arima`` (plus a lot)."""
    rng = np.random.default_rng(seed)
    y = 100 + np.cumsum(rng.normal(size=n + 1))
    dates = pd.bdate_range("2021-01-04", periods=n + 1)
    last, actual = y[:-1], y[1:]
    y_hat = {"naive": last, "drift": last + 0.02, "linear": last + 0.2 * rng.normal(size=n),
             "arima": last + 1.5 * rng.normal(size=n)}
    return pd.concat([pd.DataFrame({"model": m, "cutoff": dates[:-1], "date": dates[1:],
                                    "step": 1, "y": actual, "y_hat": f, "y_cutoff": last})
                      for m, f in y_hat.items()], ignore_index=True)


# --- the loss matrix ------------------------------------------------------------------------

def test_loss_matrix_is_step_one_squared_errors_aligned_on_cutoffs():
    table = forecast_table(10, n=20, h=2)
    losses = loss_matrix(table)
    assert list(losses.columns) == ["lstm", "naive", "linear"]  # table order
    one = table[(table["step"] == 1) & (table["model"] == "linear")]
    np.testing.assert_array_equal(losses["linear"], (one["y_hat"] - one["y"]) ** 2)
    # A cutoff some model did not forecast is left out for all.
    fewer = table.drop(table.index[(table["model"] == "naive") & (table["step"] == 1)][:3])
    assert len(loss_matrix(fewer)) == 17
    assert loss_matrix(fewer).index[0] == table["cutoff"].unique()[3]


def test_block_size_is_the_floor_of_the_square_root():
    assert [block_size(t) for t in (1, 3, 4, 200, 250, 2500)] == [1, 1, 2, 14, 15, 50]


# --- MCS and SPA are arch's -----------------------------------------------------------------

def test_model_confidence_set_equals_arch():
    losses = loss_matrix(four_models())
    ours = model_confidence_set(losses)
    theirs = MCS(losses.to_numpy(), size=0.10, reps=1000, block_size=14, method="R",
                 bootstrap="stationary", seed=0)
    theirs.compute()
    names = list(losses.columns)
    p = theirs.pvalues["Pvalue"]
    assert ours["pvalues"] == {names[i]: p[i] for i in range(4)}
    assert sorted(ours["included"]) == sorted(names[i] for i in theirs.included)
    assert sorted(ours["excluded"]) == sorted(names[i] for i in theirs.excluded)
    assert (ours["level"], ours["size"], ours["method"], ours["block_size"], ours["reps"],
            ours["seed"], ours["n"]) == (0.9, 0.1, "R", 14, 1000, 0, 200)
    # The noisy model leaves the set; the last one standing, the smallest MSE, has p = 1.
    assert ours["excluded"] == ["arima"] and ours["pvalues"]["arima"] < 0.001
    assert ours["included"] == ["naive", "drift", "linear"]  # table order
    assert min(ours["mse"], key=ours["mse"].get) == "drift" and ours["pvalues"]["drift"] == 1.0
    np.testing.assert_allclose(list(ours["mse"].values()), losses.mean().to_numpy())
    assert describe_mcs(ours) == ("model confidence set (90%): naive, drift, linear; "
                                  "excluded: arima (MCS p < 0.001)")


def test_model_confidence_set_is_seeded():
    losses = loss_matrix(four_models(n=120, seed=8))
    assert model_confidence_set(losses) == model_confidence_set(losses)
    assert model_confidence_set(losses, seed=1)["pvalues"] != \
        model_confidence_set(losses)["pvalues"]


@pytest.mark.parametrize("skilled", [False, True])
def test_spa_equals_arch(skilled):
    losses = loss_matrix(forecast_table(0 if skilled else 10, n=150, skilled=skilled))
    ours = spa_test(losses)
    theirs = SPA(losses["naive"].to_numpy(), losses[["lstm", "linear"]].to_numpy(),
                 block_size=12, reps=1000, bootstrap="stationary", seed=0)
    theirs.compute()
    assert ours["pvalues"] == theirs.pvalues.to_dict()
    assert ours["p_value"] == theirs.pvalues["consistent"]
    assert ours["models"] == ["lstm", "linear"] and ours["benchmark"] == "naive"
    line = describe_spa(ours)
    if skilled:  # the LSTM nearly knows the outcome
        assert ours["p_value"] < 0.001 and ours["better"] == ["lstm"]
        assert [int(i) for i in theirs.better_models(0.05)] == [0]
        assert line == ("SPA vs the random walk: at least one of 2 models is significantly "
                        "better than the random walk (SPA p < 0.001): lstm")
    else:
        assert ours["p_value"] >= 0.05 and ours["better"] == []
        assert line == ("SPA vs the random walk: the best of 2 models is not significantly "
                        f"better than the random walk (SPA p = {ours['p_value']:.3g})")
        assert claims(line) == []


def test_mcs_and_spa_of_a_backtest_table():
    table = four_models(n=60)
    mcs, spa = mcs_and_spa(table)
    losses = loss_matrix(table)
    assert mcs == model_confidence_set(losses) and spa == spa_test(losses)
    assert spa["models"] == ["drift", "linear", "arima"]
    assert describe(mcs, spa) == [describe_mcs(mcs), describe_spa(spa)]
    # Nothing to compare, or too few cutoffs: no test.
    assert mcs_and_spa(table[table["model"] == "naive"]) == (None, None)
    assert mcs_and_spa(table[table["cutoff"] < table["cutoff"].unique()[2]]) == (None, None)
    without_walk = mcs_and_spa(table[table["model"] != "naive"])
    assert without_walk[0] is not None and without_walk[1] is None
    assert describe(None, None) == []


# --- the judge's words for them -------------------------------------------------------------

@pytest.mark.parametrize(("p", "says_better"), [
    (0.0499, True), (0.05, False), (0.43, False), (float("nan"), False), (None, False)])
def test_best_of_never_says_better_at_p_of_alpha_or_more(p, says_better):
    line = best_of(p, 4, "the random walk", ["lstm"])
    assert bool(claims(line)) == says_better
    assert line.endswith(": lstm") == says_better
    assert line.startswith("at least one of 4" if says_better else "the best of 4 models is not")


def test_bootstrap_p_values_name_their_test():
    assert format_p(0.43, "SPA") == "SPA p = 0.43"
    assert format_p(0.0, "MCS", floor=0.001) == "MCS p < 0.001"
    assert format_p(0.001, "MCS", floor=0.001) == "MCS p = 0.001"
    assert format_p(float("nan"), "SPA") == "SPA p not computable"
    assert by_chance() == ("with no skill, chance alone would put 2.5% of tickers in each "
                           "direction (half of 0.05 per side)")


def test_mcs_line_when_nothing_is_excluded():
    mcs = {"level": 0.9, "size": 0.1, "reps": 1000, "included": ["naive", "lstm"],
           "excluded": [], "pvalues": {"naive": 1.0, "lstm": 0.4}}
    assert describe_mcs(mcs) == ("model confidence set (90%): naive, lstm; none excluded "
                                 "(every MCS p > 0.1)")


# --- Benjamini-Hochberg across tickers ------------------------------------------------------

def test_bh_by_hand():
    # Sorted 0.01, 0.03, 0.04, 0.2 times m / rank: 0.04, 0.06, 0.0533, 0.2; then the
    # running minimum from the largest down: 0.04, 0.0533, 0.0533, 0.2.
    np.testing.assert_allclose(adjust_p_values([0.01, 0.04, 0.03, 0.2]),
                               [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=1e-12)
    # A p-value that is not computable stays so and does not count among the m tests.
    np.testing.assert_allclose(adjust_p_values([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04],
                               rtol=1e-12)
    assert np.isnan(adjust_p_values([np.nan, np.nan])).all()
    assert adjust_p_values([]).shape == (0,)


def test_bh_equals_statsmodels():
    p = np.random.default_rng(4).uniform(size=200) ** 3
    np.testing.assert_array_equal(adjust_p_values(p),
                                  multipletests(p, alpha=0.05, method="fdr_bh")[1])
    np.testing.assert_array_equal(adjust_p_values(pd.Series(p)), adjust_p_values(p))


# Ten tickers, BH by hand: p * 10 / rank = 0.01, 0.02, 0.1, 0.1, 0.09, 0.333, 0.714, 0.75,
# 0.889, 0.9; the running minimum from the top makes ranks 3..5 0.09.
P = [0.001, 0.004, 0.03, 0.04, 0.045, 0.2, 0.5, 0.6, 0.8, 0.9]
ADJUSTED = [0.01, 0.02, 0.09, 0.09, 0.09, 2 / 6, 5 / 7, 0.75, 8 / 9, 0.9]
# The LSTM's RMSE minus the random walk's: negative where it has the smaller errors.
DIFFERENCE = [-1, -1, 1, -1, 1, -1, 1, -1, 1, -1]


def ten_tickers() -> pd.DataFrame:
    """A per-ticker table as ticker_scores writes it, with the p-values above."""
    rmse_naive = np.full(10, 2.0)
    rmse_lstm = rmse_naive + 0.1 * np.array(DIFFERENCE)
    raw = ["better", "better", "worse", "better", "worse"] + ["not significant"] * 5
    return pd.DataFrame({"ticker": [f"T{i}" for i in range(10)], "n_test": 100,
                         "rmse_lstm": rmse_lstm, "rmse_naive": rmse_naive, "rmse_linear": 2.0,
                         "theils_u_lstm": rmse_lstm / rmse_naive, "theils_u_linear": 1.0,
                         "dm_stat": np.array(DIFFERENCE, float), "dm_p_value": P,
                         "lstm_vs_naive": raw})


def test_adjusted_calls_and_shares_on_a_constructed_table():
    per_ticker = adjust_tickers(ten_tickers())
    columns = list(per_ticker.columns)
    assert columns[columns.index("dm_p_value") + 1] == "dm_p_adjusted"
    assert columns[columns.index("lstm_vs_naive") + 1] == "lstm_vs_naive_adjusted"
    np.testing.assert_allclose(per_ticker["dm_p_adjusted"], ADJUSTED, rtol=1e-12)
    assert per_ticker["lstm_vs_naive_adjusted"].tolist() == \
        ["better", "better"] + ["not significant"] * 8
    assert per_ticker["lstm_vs_naive_adjusted"].tolist() == adjusted_calls(P, DIFFERENCE)
    shares = share_summary(per_ticker["lstm_vs_naive"], per_ticker["lstm_vs_naive_adjusted"])
    assert shares == {"better_pct": 30.0, "worse_pct": 20.0, "better_adjusted_pct": 20.0,
                      "worse_adjusted_pct": 0.0, "chance_pct": 2.5}
    summary = summarize_tickers(per_ticker)
    assert (summary["lstm_better_pct"], summary["lstm_worse_pct"],
            summary["lstm_better_adjusted_pct"], summary["lstm_worse_adjusted_pct"],
            summary["chance_pct"]) == (30.0, 20.0, 20.0, 0.0, 2.5)
    line = global_verdict(summary, per_ticker["lstm_vs_naive"],
                          per_ticker["lstm_vs_naive_adjusted"])
    assert line.endswith(
        "significantly better than the random walk on 3 of 10 tickers (30.0%), significantly "
        "worse on 2 (20.0%) and not significantly different on 5 (50.0%); DM p < 0.05 "
        "decides; with no skill, chance alone would put 2.5% of tickers in each direction "
        "(half of 0.05 per side); after Benjamini-Hochberg adjustment across tickers: "
        "significantly better than the random walk on 2 of 10 tickers (20.0%) and not "
        "significantly different on 8 (80.0%); BH-adjusted DM p < 0.05 decides")


def test_adjustment_never_calls_better_at_an_adjusted_p_of_alpha_or_more():
    # Three raw p-values of 0.04 among five tickers: each adjusts to 0.04 * 5 / 3 = 0.067.
    table = ten_tickers().head(5).assign(dm_p_value=[0.04, 0.04, 0.04, 0.9, 0.9],
                                         lstm_vs_naive=["better"] * 3 + ["not significant"] * 2,
                                         rmse_lstm=1.0)
    per_ticker = adjust_tickers(table)
    np.testing.assert_allclose(per_ticker["dm_p_adjusted"], [0.2 / 3] * 3 + [0.9] * 2)
    assert set(per_ticker["lstm_vs_naive_adjusted"]) == {"not significant"}
    line = global_verdict(summarize_tickers(per_ticker), per_ticker["lstm_vs_naive"],
                          per_ticker["lstm_vs_naive_adjusted"])
    after = line.split("after Benjamini-Hochberg adjustment across tickers: ")[1]
    assert claims(after) == []
    assert after == ("not significantly different from the random walk on any of the 5 "
                     "tickers (no BH-adjusted DM p below 0.05)")
    assert summarize_tickers(per_ticker)["lstm_better_adjusted_pct"] == 0.0


# --- the report's backtest section ----------------------------------------------------------

def test_backtest_report_shows_the_set_and_the_spa_test(tmp_path):
    table = forecast_table(10, n=80)
    folder = backtest_folder(tmp_path / "bt", table)
    older = html.unescape(page_text(render_report(folder, Kind.BACKTEST)))
    assert "No test of all models at once in this folder" in older
    mcs, spa = mcs_and_spa(table)
    metrics = files.read_json(folder / "metrics.json")
    files.write_json(folder / "metrics.json", {**metrics, "mcs": mcs, "spa": spa})
    text = html.unescape(page_text(render_report(folder, Kind.BACKTEST)))
    backtest = text.split("Backtest", 2)[-1]
    assert describe_mcs(mcs) in backtest and describe_spa(spa) in backtest
    assert "Model confidence set (90%)" in backtest and "a mean block of 8 cutoffs" in backtest
    assert f"between the lower {spa['pvalues']['lower']:.3g}" in backtest
    assert spa["p_value"] >= 0.05 and claims(text) == []
