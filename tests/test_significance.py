"""The one judge of "better" and "worse", and every verdict that goes through it: the run
verdict, the backtest verdict, the global model's per-ticker calls and verdict, and the
report cards and sentences of run, backtest and global folders."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from marketcast import files
from marketcast.evaluation.metrics import (
    accuracy,
    backtest_verdict,
    compare,
    lag_copy,
    verdict,
)
from marketcast.evaluation.significance import (
    ALPHA,
    call,
    format_p,
    judgement,
    phrase,
    tally,
)
from marketcast.evaluation.stats import diebold_mariano
from marketcast.pipeline.global_model import global_verdict, summarize_tickers, ticker_scores
from marketcast.report import render_report
from marketcast.runs.layout import Kind

# "better", "worse", "beats" or "loses to" said as a claim, i.e. not after "not significantly".
CLAIM = re.compile(r"(?<!not significantly )\b(better|worse|beats?|loses to)\b")


def claims(text: str) -> list[str]:
    return CLAIM.findall(text)


# --- the judge ------------------------------------------------------------------------------

def test_alpha_is_five_percent():
    assert ALPHA == 0.05


@pytest.mark.parametrize(("p", "difference", "expected"), [
    (0.04, -1.0, "better"), (0.04, 2.5, "worse"), (0.001, -1e-9, "better"),
    (0.05, -1.0, "not significant"), (0.05, 1.0, "not significant"),
    (0.2, -1.0, "not significant"), (0.2, 1.0, "not significant"),
    (float("nan"), -1.0, "not significant"), (None, 1.0, "not significant"),
    (0.04, 0.0, "not significant"), (0.04, float("nan"), "not significant"),
])
def test_call(p, difference, expected):
    assert call(p, difference) == expected


@pytest.mark.parametrize(("p", "difference", "expected"), [
    (0.04, -1.0, "significantly better than the random walk (DM p = 0.04)"),
    (0.04, 1.0, "significantly worse than the random walk (DM p = 0.04)"),
    (0.012, -3.0, "significantly better than the random walk (DM p = 0.012)"),
    (0.05, -1.0, "not significantly different from the random walk (DM p = 0.05)"),
    (0.2, 1.0, "not significantly different from the random walk (DM p = 0.2)"),
    (0.0832, -1.0, "not significantly different from the random walk (DM p = 0.0832)"),
    (float("nan"), -1.0, "not significantly different from the random walk "
                         "(DM p not computable)"),
])
def test_judgement_words(p, difference, expected):
    assert judgement(p, difference, "the random walk") == expected


def test_p_value_never_reads_across_alpha():
    assert format_p(0.0103) == "DM p = 0.0103"
    assert format_p(0.58170057) == "DM p = 0.582"
    assert format_p(0.049996) == "DM p = 0.049996"  # 3 digits would read 0.05
    assert format_p(0.0500004) == "DM p = 0.05"  # not significant, and reads so
    assert format_p(0.04999999999) == "DM p < 0.05"
    assert format_p(None) == format_p(float("nan")) == "DM p not computable"
    assert format_p(0.7134, "bootstrap") == "bootstrap p = 0.713"
    assert format_p(None, "bootstrap") == "bootstrap p not computable"


def test_phrase_and_tally():
    assert phrase("worse", "the linear model") == "significantly worse than the linear model"
    assert phrase("not significant", "X") == "not significantly different from X"
    assert tally(["not significant"] * 3, "the random walk") == (
        "not significantly different from the random walk on any of the 3 tickers "
        "(no DM p below 0.05)")
    assert tally(["better", "worse", "worse", "not significant", "not significant"],
                 "the random walk") == (
        "significantly better than the random walk on 1 of 5 tickers (20.0%), significantly "
        "worse on 2 (40.0%) and not significantly different on 2 (40.0%); DM p < 0.05 decides")
    # A judgement no ticker got is left out.
    assert tally(["worse", "worse", "not significant"], "the random walk", "series") == (
        "significantly worse than the random walk on 2 of 3 series (66.7%) and not "
        "significantly different on 1 (33.3%); DM p < 0.05 decides")
    assert tally(["better"] * 2, "X") == \
        "significantly better than X on 2 of 2 tickers (100.0%); DM p < 0.05 decides"
    assert tally(["worse"], "buy-and-hold", test="bootstrap") == (
        "significantly worse than buy-and-hold on 1 of 1 tickers (100.0%); bootstrap p < "
        "0.05 decides")
    assert tally([], "X", test="bootstrap").endswith("(no bootstrap p below 0.05)")


# --- forecast tables with known p-values ----------------------------------------------------

def forecast_table(seed: int, n: int = 60, h: int = 1, skilled: bool = False) -> pd.DataFrame:
    """Long table (model, cutoff, date, step, y, y_hat, y_cutoff) on a random walk.

    ``naive`` forecasts the last price. Unless ``skilled``, ``lstm`` and ``linear`` forecast
    it plus a little noise, indistinguishable from the random walk and from each other over
    ``n`` cutoffs; ``skilled``: ``lstm`` nearly knows the outcome and ``linear`` is the last
    price plus three times the daily move's noise.
    """
    rng = np.random.default_rng(seed)
    y = 100 + np.cumsum(rng.normal(size=n + h))
    dates = pd.bdate_range("2021-01-04", periods=n + h)
    cutoffs = np.repeat(np.arange(n), h)
    targets = cutoffs + np.tile(np.arange(1, h + 1), n)
    last, actual = y[cutoffs], y[targets]
    noise = {m: rng.normal(size=len(cutoffs)) for m in ("lstm", "linear")}
    if skilled:
        y_hat = {"lstm": actual + 0.2 * noise["lstm"], "linear": last + 3.0 * noise["linear"]}
    else:
        y_hat = {m: last + 0.3 * e for m, e in noise.items()}
    return pd.concat([
        pd.DataFrame({"model": model, "cutoff": dates[cutoffs], "date": dates[targets],
                      "step": targets - cutoffs, "y": actual, "y_hat": forecast,
                      "y_cutoff": last})
        for model, forecast in (("lstm", y_hat["lstm"]), ("naive", last),
                                ("linear", y_hat["linear"]))
    ], ignore_index=True)


def dm_p(table: pd.DataFrame, model: str, other: str, step: int = 1) -> float:
    """The DM p-value of two models' errors, straight from the table."""
    rows = table[table["step"] == step]
    e = {m: (g["y_hat"] - g["y"]).to_numpy() for m, g in rows.groupby("model")}
    return diebold_mariano(e[model], e[other], h=step)[1]


def test_tables_are_what_they_claim():
    for seed, h in ((10, 1), (11, 1), (17, 1), (10, 2)):
        table = forecast_table(seed, h=h)
        for step in range(1, h + 1):
            for model, other in (("lstm", "naive"), ("lstm", "linear"), ("linear", "naive")):
                assert dm_p(table, model, other, step) >= ALPHA, (seed, step, model, other)
    table = forecast_table(0, skilled=True)
    assert dm_p(table, "lstm", "naive") < 1e-3 and dm_p(table, "lstm", "linear") < 1e-3
    assert dm_p(table, "linear", "naive") < 1e-3


def test_compare_pairs_rows_and_agrees_with_accuracy():
    table = forecast_table(0, skilled=True)
    pairs = compare(table, ["lstm"]).set_index("other")
    assert list(pairs.index) == ["naive", "linear"]
    assert pairs.loc["linear", "dm_p_value"] == pytest.approx(dm_p(table, "lstm", "linear"),
                                                              rel=1e-12)
    assert (pairs["call"] == "better").all()
    # The p-value vs the random walk is the one in the score table, to the last bit.
    scores = accuracy(table).set_index("model")
    assert pairs.loc["naive", "dm_p_value"] == scores.loc["lstm", "dm_p_value"]
    # Rows missing from one model are left out of the pair, not compared with NaN.
    fewer = table.drop(table.index[(table["model"] == "linear")][:10])
    assert compare(fewer, ["lstm"]).set_index("other").loc["linear", "n"] == 50


# --- every verdict path, on differences that are not significant ---------------------------

def test_run_verdict_not_significant():
    lines = verdict(compare(forecast_table(10), ["lstm"]))
    assert len(lines) == 2
    assert all(claims(line) == [] for line in lines)
    assert "not significantly different from the random walk (DM p = 0." in lines[0]
    assert "not significantly different from the linear model (DM p = 0." in lines[1]


def test_run_verdict_per_step():
    lines = verdict(compare(forecast_table(10, h=2), ["lstm"]))
    assert [line.split(" RMSE")[0] for line in lines] == ["LSTM at step 1", "LSTM at step 2"] * 2
    assert all(claims(line) == [] for line in lines)


@pytest.mark.parametrize("h", [1, 2])
def test_backtest_verdict_not_significant(h):
    table = forecast_table(10, h=h)
    lines = backtest_verdict(compare(table), lag_copy(table))
    judged = [line for line in lines if "DM p" in line]
    assert len(judged) == 2 * h  # lstm and linear, each step, against the random walk
    assert all(claims(line) == [] for line in lines)
    assert all("not significantly different from the random walk" in line for line in judged)


def test_global_calls_and_verdict_not_significant():
    per_ticker = pd.DataFrame([ticker_scores(f"T{seed}", forecast_table(seed))
                               for seed in (10, 11, 17)])
    assert per_ticker["lstm_vs_naive"].tolist() == ["not significant"] * 3
    line = global_verdict(summarize_tickers(per_ticker), per_ticker["lstm_vs_naive"])
    assert claims(line) == []
    assert line.endswith("not significantly different from the random walk on any of the 3 "
                         "tickers (no DM p below 0.05)")


# --- and when a difference is significant ---------------------------------------------------

def test_significant_verdicts_say_so_with_the_p_value():
    table = forecast_table(0, skilled=True)
    lines = verdict(compare(table, ["lstm"]))
    assert lines[0].endswith("significantly better than the random walk "
                             f"(DM p = {dm_p(table, 'lstm', 'naive'):.3g})")
    assert lines[1].endswith("significantly better than the linear model "
                             f"(DM p = {dm_p(table, 'lstm', 'linear'):.3g})")
    bt = backtest_verdict(compare(table), lag_copy(table))
    assert bt[1].startswith("linear: RMSE")
    assert bt[1].endswith("significantly worse than the random walk "
                          f"(DM p = {dm_p(table, 'linear', 'naive'):.3g})")


def test_significant_global_call_and_verdict():
    table = forecast_table(0, skilled=True)
    assert ticker_scores("T0", table)["lstm_vs_naive"] == "better"
    per_ticker = pd.DataFrame([ticker_scores("T0", table),
                               ticker_scores("T11", forecast_table(11))])
    assert global_verdict(summarize_tickers(per_ticker), per_ticker["lstm_vs_naive"]).endswith(
        "significantly better than the random walk on 1 of 2 tickers (50.0%) and not "
        "significantly different on 1 (50.0%); DM p < 0.05 decides")


# --- report cards and sentences, from constructed folders ----------------------------------

CONFIG = '[data]\nsource = "synthetic.csv"\ntarget = "close"\n'


def run_folder(path, table: pd.DataFrame, saved: bool = True):
    """A `run` folder as api.run writes its scores (no model, plots or manifest: the report
    is given the kind, as api.run renders it before the manifest exists); without ``saved``,
    as folders written before the comparisons were saved (and their verdict lines had no
    test vs linear)."""
    path.mkdir()
    (path / "config.toml").write_text(CONFIG)
    files.write_csv(path / "test_forecasts.csv", table)
    pairs = compare(table, ["lstm"])
    metrics = {"metrics": files.json_records(accuracy(table)), "verdict": verdict(pairs)}
    if saved:
        metrics["comparisons"] = files.json_records(pairs)
    else:
        metrics["verdict"] = ["LSTM RMSE 1 vs naive 1: 0.2% worse than tomorrow = today",
                              "LSTM RMSE 1 vs linear 1: 3.9% better than the linear model"]
    files.write_json(path / "metrics.json", metrics)
    return path


def backtest_folder(path, table: pd.DataFrame):
    path.mkdir()
    (path / "config.toml").write_text(CONFIG)
    files.write_csv(path / "backtest.csv", table)
    pairs, lag = compare(table), lag_copy(table)
    files.write_json(path / "metrics.json", {
        "kind": "backtest", "metrics": files.json_records(accuracy(table, by_step=True)),
        "lag_copy": files.json_records(lag), "comparisons": files.json_records(pairs),
        "verdict": backtest_verdict(pairs, lag)})
    return path


def global_folder(path, tables: list[pd.DataFrame]):
    path.mkdir()
    (path / "config.toml").write_text(CONFIG)
    per_ticker = pd.DataFrame([ticker_scores(f"T{i}", t) for i, t in enumerate(tables)])
    files.write_csv(path / "per_ticker.csv", per_ticker)
    files.write_csv(path / "test_forecasts.csv", pd.concat(
        [t.assign(ticker=f"T{i}") for i, t in enumerate(tables)], ignore_index=True))
    summary = summarize_tickers(per_ticker)
    files.write_json(path / "metrics.json", {
        "kind": "global", **summary,
        "verdict": [global_verdict(summary, per_ticker["lstm_vs_naive"])]})
    return path


def verdict_section(html: str) -> str:
    """The visible text of the page's verdict section."""
    part = html.split('<section id="verdict"', 1)[1].split("</section>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


def page_text(html: str) -> str:
    body = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


@pytest.mark.parametrize("saved", [True, False])
def test_run_report_not_significant(tmp_path, saved):
    table = forecast_table(10)
    html = render_report(run_folder(tmp_path / "run", table, saved), Kind.RUN)
    assert claims(page_text(html)) == []
    text = verdict_section(html)
    p = dm_p(table, "lstm", "linear")
    # The card and the sentence vs linear, with one p-value.
    assert "LSTM not significantly different from the linear model" in text
    assert text.count(f"DM p = {p:.3g}") == 2
    assert "3.9%" not in text  # an older folder's stale sentences are not shown


def test_run_report_significant(tmp_path):
    table = forecast_table(0, skilled=True)
    text = verdict_section(render_report(run_folder(tmp_path / "run", table), Kind.RUN))
    for other, label in (("naive", "the random walk"), ("linear", "the linear model")):
        p = f"DM p = {dm_p(table, 'lstm', other):.3g}"
        assert f"LSTM significantly better than {label}" in text  # the card
        assert f"significantly better than {label} ({p})" in text  # the sentence
        assert text.count(p) == 2


def test_backtest_report_not_significant(tmp_path):
    html = render_report(backtest_folder(tmp_path / "bt", forecast_table(10, h=2)),
                         Kind.BACKTEST)
    assert claims(page_text(html)) == []
    assert "lstm at step 2: RMSE" in verdict_section(html)


def test_global_report_not_significant(tmp_path):
    tables = [forecast_table(s) for s in (10, 11, 17)]
    html = render_report(global_folder(tmp_path / "g", tables), Kind.GLOBAL)
    assert claims(page_text(html)) == []
    text = verdict_section(html)
    assert ("LSTM not significantly different from the random walk on any of the 3 tickers "
            "(no DM p below 0.05)") in text


def test_saved_comparisons_are_read_back(tmp_path):
    table = forecast_table(0, skilled=True)
    folder = run_folder(tmp_path / "run", table)
    saved = json.loads((folder / "metrics.json").read_text())["comparisons"]
    assert [(c["other"], c["call"]) for c in saved] == [("naive", "better"), ("linear", "better")]
    # The report words the saved p-values (exact), not ones recomputed from the CSV.
    saved[1]["dm_p_value"] = 0.2
    files.write_json(folder / "metrics.json", {
        **json.loads((folder / "metrics.json").read_text()), "comparisons": saved})
    text = verdict_section(render_report(folder, Kind.RUN))
    assert "LSTM not significantly different from the linear model" in text
    assert text.count("DM p = 0.2") == 2
