import numpy as np
import pandas as pd
import pytest

from marketcast.evaluation.adaptive import (
    GAMMA,
    METHODS,
    add_aci_intervals,
    alpha_bounds,
    calibrate,
    choose_method,
    evaluation_part,
    interval_tables,
)
from marketcast.evaluation.interval_tests import interval_score
from marketcast.evaluation.intervals import ewma_volatility


def garch_prices(n=1600, switch=800, seed=0):
    """Prices whose log returns follow a GARCH(1,1) with normal errors; at ``switch`` the
    unconditional volatility quadruples (omega times 16): a calm regime, then a stormy one."""
    rng = np.random.default_rng(seed)
    a, b = 0.08, 0.9
    r, var = np.zeros(n), np.zeros(n)
    var[0] = 1e-4
    for t in range(1, n):
        omega = (1e-4 if t < switch else 16e-4) * (1 - a - b)
        var[t] = omega + a * r[t - 1] ** 2 + b * var[t - 1]
        r[t] = np.sqrt(var[t]) * rng.standard_normal()
    return pd.bdate_range("2010-01-04", periods=n), 100 * np.exp(np.cumsum(r))


def naive_table(dates, y, first=100, h=2):
    """The random walk's walk-forward table: every cutoff from ``first``, steps 1..h."""
    rows = []
    for c in range(first, len(y) - h):
        for s in range(1, h + 1):
            rows.append(("naive", dates[c], dates[c + s], s, y[c + s], y[c], y[c]))
    return pd.DataFrame(rows, columns=["model", "cutoff", "date", "step", "y", "y_hat",
                                       "y_cutoff"])


def covered(t):
    t = t.dropna(subset=["lower"])
    return ((t["y"] >= t["lower"]) & (t["y"] <= t["upper"])).mean()


def test_aci_covers_a_garch_series_with_a_volatility_switch():
    dates, y = garch_prices()
    table = naive_table(dates, y)
    aci = add_aci_intervals(table, 0.9, ewma_volatility(dates, y))
    plain = interval_tables(table, 0.9, None, ("conformal",))["conformal"]
    storm = aci["cutoff"] >= dates[900]
    for step in (1, 2):
        one = aci[aci["step"] == step]
        # About 1480 forecasts per step: a binomial standard error under 0.8 points; the
        # stated bounds are 87-93% overall and 85-95% after the switch.
        assert 0.87 <= covered(one) <= 0.93
        assert 0.85 <= covered(one[storm[one.index]]) <= 0.95
    # Plain conformal, calibrated on the calm regime, misses more after the switch.
    assert covered(plain[plain["cutoff"] >= dates[900]]) < covered(aci[storm]) - 0.03
    low, high = alpha_bounds(0.9)
    used = aci["alpha_t"].dropna()
    assert used.between(low, high).all() and used.std() > 0


def test_aci_level_follows_the_recursion_with_delayed_feedback():
    dates, y = garch_prices(400, switch=200, seed=1)
    table = naive_table(dates, y, h=3)
    aci = add_aci_intervals(table, 0.9, ewma_volatility(dates, y))
    low, high = alpha_bounds(0.9)
    for step in (1, 3):
        one = aci[aci["step"] == step].sort_values("cutoff")
        missed = ((one["y"] < one["lower"]) | (one["y"] > one["upper"])).to_numpy()
        has = one["lower"].notna().to_numpy()
        dates_, cutoffs = one["date"].to_numpy(), one["cutoff"].to_numpy()
        alpha_t, applied = 0.1, 0
        for row in range(len(one)):
            # A forecast's miss counts once its target date is on or before the cutoff.
            while applied < row and dates_[applied] <= cutoffs[row]:
                if has[applied]:
                    alpha_t = min(max(alpha_t + GAMMA * (0.1 - missed[applied]), low), high)
                applied += 1
            if has[row]:
                assert one["alpha_t"].iloc[row] == pytest.approx(alpha_t, abs=1e-12)


def test_aci_interval_at_a_cutoff_ignores_every_later_price():
    dates, y = garch_prices(500, switch=250, seed=2)
    table = naive_table(dates, y)
    aci = add_aci_intervals(table, 0.9, ewma_volatility(dates, y))
    changed = y.copy()
    changed[350:] *= np.exp(np.random.default_rng(9).normal(0, 0.05, len(y) - 350))
    again = add_aci_intervals(naive_table(dates, changed), 0.9,
                              ewma_volatility(dates, changed))
    before = aci["cutoff"] < dates[350]  # cutoffs whose prices are all unchanged
    assert before.sum() > 400 and aci.loc[before, "lower"].notna().sum() > 300
    for column in ("lower", "upper", "alpha_t"):
        np.testing.assert_array_equal(again.loc[before, column], aci.loc[before, column])
    assert not np.allclose(again.loc[~before, "upper"], aci.loc[~before, "upper"],
                           equal_nan=True)


def test_auto_chooses_on_the_validation_cutoffs_only():
    dates, y = garch_prices(900, switch=450, seed=3)
    table = naive_table(dates, y)
    volatility = ewma_volatility(dates, y)
    tables = interval_tables(table, 0.9, volatility)
    choice = choose_method(tables, 0.9)
    # The scores are the mean interval scores of the first third of the cutoffs that
    # have intervals of every method, computed here by hand.
    with_all = sorted(set.intersection(*(set(t.loc[t["lower"].notna(), "cutoff"])
                                         for t in tables.values())))
    validation = with_all[: int(np.ceil(len(with_all) / 3))]
    for method in METHODS:
        t = tables[method]
        part = t[t["cutoff"].isin(validation)].dropna(subset=["lower"])
        assert choice.scores[method] == pytest.approx(
            np.mean(interval_score(part["y"], part["lower"], part["upper"], 0.9)))
    assert choice.method == min(choice.scores, key=choice.scores.get)
    # Scoring starts once every validation outcome is known.
    last_target = table.loc[table["cutoff"] == validation[-1], "date"].max()
    assert pd.Timestamp(choice.evaluation_from) >= last_target
    scored = evaluation_part(tables[choice.method], choice)
    assert scored["cutoff"].min() == pd.Timestamp(choice.evaluation_from)
    # Wild prices after the validation outcomes change neither the choice nor its scores.
    changed = y.copy()
    cut = dates.get_loc(last_target) + 1
    changed[cut:] *= np.exp(np.random.default_rng(4).normal(0, 0.2, len(y) - cut))
    again = choose_method(interval_tables(naive_table(dates, changed), 0.9,
                                          ewma_volatility(dates, changed)), 0.9)
    assert again == choice


def test_calibrate_auto_returns_the_chosen_method_and_keeps_own_bounds():
    dates, y = garch_prices(700, switch=350, seed=5)
    table = naive_table(dates, y, h=1)
    own = table.assign(model="garch", lower=table["y_hat"] * 0.9,
                       upper=table["y_hat"] * 1.1)
    both = pd.concat([table.assign(lower=np.nan, upper=np.nan), own], ignore_index=True)
    out, choice = calibrate(both, 0.9, "auto", ewma_volatility(dates, y))
    expected = interval_tables(both, 0.9, ewma_volatility(dates, y))[choice.method]
    np.testing.assert_array_equal(out["upper"], expected["upper"])
    garch = out[out["model"] == "garch"]
    np.testing.assert_allclose(garch["upper"], garch["y_hat"] * 1.1)
    plain, none = calibrate(both, 0.9, "conformal", None)
    assert none is None and plain["lower"].notna().sum() < len(plain)
    # Too few cutoffs for any interval: no choice, plain (empty) bounds.
    short, nothing = calibrate(both.iloc[:10], 0.9, "auto", ewma_volatility(dates, y))
    assert nothing is None and short.loc[short["model"] == "naive", "lower"].isna().all()
