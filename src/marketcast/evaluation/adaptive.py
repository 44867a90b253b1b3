"""Adaptive conformal inference, and the interval method chosen on validation cutoffs.

**Adaptive conformal inference** (ACI; Gibbs and Candès, "Adaptive conformal inference under
distribution shift", NeurIPS 2021) keeps a running miscoverage level per model and step,
``alpha_{t+1} = alpha_t + gamma * (alpha - err_t)``, where ``err_t`` is 1 when forecast ``t``
missed its interval: after a miss the next intervals are calibrated at a higher coverage,
after a run of hits at a lower one, so the long-run miss rate is held near ``alpha``
whatever the drift of the residuals. A forecast's miss is known only once its target date
has passed, so the interval at cutoff ``c`` applies the updates of the forecasts whose target
date is on or before ``c`` (in the order they became known) and calibrates on their scores
alone: nothing later reaches it. ``gamma = 0.005`` is the value Gibbs and Candès use in all
their experiments (stock-market volatility among them); it moves ``alpha_t`` by
0.005 * 0.9 after a miss, slow enough that ``alpha_t`` stays a stable level and fast enough
to correct a calibration that is off for a few months. ACI is online gradient descent on
the pinball loss of the quantile level, so keeping ``alpha_t`` in ``[alpha / 4,
min(3 * alpha, 0.5)]`` (a 97.5% to 70% interval at level 0.9) is projected gradient descent,
which keeps its regret bound and never asks for an infinite quantile.

ACI is applied to the **volatility-scaled** scores (residuals over the EWMA volatility known
at the cutoff, :func:`~marketcast.evaluation.intervals.add_sequential_intervals`): at
``gamma = 0.005`` ACI corrects slow drift but cannot follow volatility clusters, which move
within days; scaling follows the clusters, and ACI corrects what scaling gets wrong (an
EWMA that lags a shock, tails fatter than the calibration window saw).

Written here rather than taken from MAPIE (``TimeSeriesRegressor(method="aci")``): MAPIE
wraps one scikit-learn estimator on feature rows and updates with each outcome as soon as it
predicts the next, whereas ours is a walk-forward table of several models and steps whose
outcomes arrive ``step`` days late, scored on volatility-scaled residuals; the update is a
dozen lines, and a new dependency for it would not fit the protocol without an adapter larger
than the method.

**The method in use** (``interval_method = "auto"``) is chosen by mean interval score on the
first third of the cutoffs that have intervals (the validation cutoffs), pooled over the
models calibrated here and their steps: the interval score is in price units of one series,
so the models' scores add up, and pooling triples a sample of about 80 cutoffs in which a
90% interval misses only about 8 times. The evaluation cutoffs are those on or after the
last target date of a validation forecast, so no outcome that chose the method is scored.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketcast.evaluation.interval_tests import (
    interval_evaluation,
    interval_score,
    volatility_regimes,
)
from marketcast.evaluation.intervals import (
    MIN_CALIBRATION,
    add_sequential_intervals,
    ewma_volatility,
    scaled_scores,
)

METHODS = ("conformal", "scaled", "aci")
# Gibbs and Candès (2021) use 0.005 in every experiment.
GAMMA = 0.005
# Share of the cutoffs with intervals on which "auto" chooses the method.
VALIDATION_SHARE = 1 / 3


def alpha_bounds(level: float) -> tuple[float, float]:
    """The range ``alpha_t`` is kept in: a quarter to three times the nominal miss rate."""
    alpha = 1.0 - level
    return alpha / 4, min(3 * alpha, 0.5)


def add_aci_intervals(table: pd.DataFrame, level: float, volatility: pd.Series,
                      gamma: float = GAMMA) -> pd.DataFrame:
    """Add ``lower``, ``upper`` and ``alpha_t`` (the miscoverage level used) to a
    walk-forward table: adaptive conformal intervals on volatility-scaled scores, leak-free.

    ``volatility`` is a daily log-return standard deviation known at each cutoff date (e.g.
    :func:`~marketcast.evaluation.intervals.ewma_volatility`). Per model and step, the
    interval at cutoff ``c`` uses the scores and misses of the forecasts with target date on
    or before ``c`` only; rows with fewer than :data:`MIN_CALIBRATION` of them get NaN.
    """
    alpha = 1.0 - level
    low, high = alpha_bounds(level)
    table = table.sort_values(["model", "step", "cutoff"], kind="stable").copy()
    q = np.full(len(table), np.nan)
    used = np.full(len(table), np.nan)
    for _, idx in table.groupby(["model", "step"], sort=False).indices.items():
        scale, scores, known_by = scaled_scores(table.iloc[idx], volatility)
        calibration: list[float] = []
        bound = np.full(len(idx), np.nan)  # each row's quantile of the scores
        alpha_t, added = alpha, 0
        for row in range(len(idx)):
            while added < known_by[row]:
                if np.isfinite(bound[added]):  # its miss is known now: update the level
                    alpha_t += gamma * (alpha - float(scores[added] > bound[added]))
                    alpha_t = min(max(alpha_t, low), high)
                if np.isfinite(scores[added]):
                    bisect.insort(calibration, scores[added])
                added += 1
            if len(calibration) >= MIN_CALIBRATION and np.isfinite(scale[row]):
                bound[row] = _quantile(calibration, 1.0 - alpha_t)
                q[idx[row]] = bound[row] * scale[row]
                used[idx[row]] = alpha_t
    table["lower"] = table["y_hat"] * np.exp(-q)
    table["upper"] = table["y_hat"] * np.exp(q)
    table["alpha_t"] = used
    return table.sort_index()


def interval_tables(table: pd.DataFrame, level: float, volatility: pd.Series | None,
                    methods=METHODS) -> dict[str, pd.DataFrame]:
    """The table with the bounds of each method (``scaled`` and ``aci`` need
    ``volatility``); a model that forecasts its own bounds (GARCH) keeps them in each."""
    own = table[["lower", "upper"]].copy() if "lower" in table.columns else None
    bare = table.drop(columns=["lower", "upper"], errors="ignore")
    out = {}
    for method in methods:
        if method == "conformal":
            one = add_sequential_intervals(bare, level)
        elif method == "scaled":
            one = add_sequential_intervals(bare, level, volatility)
        else:
            one = add_aci_intervals(bare, level, volatility)
        if own is not None:
            keep = own["lower"].notna()
            one.loc[keep, ["lower", "upper"]] = own.loc[keep].to_numpy()
        out[method] = one
    return out


@dataclass(frozen=True)
class Choice:
    """The interval method chosen on the validation cutoffs, and why."""

    method: str
    scores: dict[str, float]  # mean interval score per method on the validation cutoffs
    validation: tuple[str, str]  # first and last validation cutoff (ISO dates)
    evaluation_from: str | None  # first evaluation cutoff; None when there is none
    n_validation: int  # forecasts behind each mean score

    def to_dict(self) -> dict:
        return {"method": self.method, "chosen_by": "mean interval score, validation cutoffs",
                "validation_scores": self.scores,
                "validation_cutoffs": list(self.validation),
                "evaluation_from": self.evaluation_from, "n_validation": self.n_validation}

    def sentence(self) -> str:
        scores = ", ".join(f"{m} {s:.4g}" for m, s in self.scores.items())
        scored = (f"; intervals scored on the cutoffs from {self.evaluation_from} only"
                  if self.evaluation_from else "; no cutoff is left to score them on")
        return (f"interval method {self.method}: the lowest mean interval score on the "
                f"validation cutoffs {self.validation[0]} to {self.validation[1]} ({scores})"
                f"{scored}")


def choose_method(tables: dict[str, pd.DataFrame], level: float,
                  share: float = VALIDATION_SHARE,
                  own: tuple[str, ...] = ("garch",)) -> Choice | None:
    """The method of ``tables`` (:func:`interval_tables`) with the lowest mean interval score
    over the forecasts of the first ``share`` of the cutoffs where every method gives an
    interval, pooled over the models but those in ``own`` (their bounds are their own);
    None when no cutoff has them all."""
    rows = {m: t[~t["model"].isin(own)] for m, t in tables.items()}
    cutoffs = None
    for t in rows.values():
        have = set(t.loc[t["lower"].notna(), "cutoff"])
        cutoffs = have if cutoffs is None else cutoffs & have
    ordered = sorted(cutoffs or ())
    if not ordered:
        return None
    n_val = max(1, math.ceil(len(ordered) * share))
    validation = set(ordered[:n_val])
    scores, n, last_date = {}, 0, None
    for method, t in rows.items():
        part = t[t["cutoff"].isin(validation) & t["lower"].notna()]
        scores[method] = float(np.mean(interval_score(part["y"], part["lower"],
                                                      part["upper"], level)))
        n, last_date = len(part), part["date"].max()
    later = [c for c in ordered[n_val:] if c >= last_date]
    return Choice(min(scores, key=scores.get), scores,
                  (_iso(ordered[0]), _iso(ordered[n_val - 1])),
                  _iso(later[0]) if later else None, n)


def evaluation_part(table: pd.DataFrame, choice: Choice | None) -> pd.DataFrame:
    """The rows of ``table`` that score the chosen method: cutoffs from
    ``choice.evaluation_from`` (every row without a choice; none when nothing is left)."""
    if choice is None:
        return table
    if choice.evaluation_from is None:
        return table.iloc[:0]
    return table[table["cutoff"] >= pd.Timestamp(choice.evaluation_from)]


def calibrate(table: pd.DataFrame, level: float, method: str,
              volatility: pd.Series | None) -> tuple[pd.DataFrame, Choice | None]:
    """The table with the bounds of ``method`` (``auto``: the one :func:`choose_method`
    picks, returned with the choice; otherwise, or when no cutoff has intervals to choose
    on, the choice is None and ``auto`` gives the plain conformal bounds)."""
    if method != "auto":
        return interval_tables(table, level, volatility, (method,))[method], None
    tables = interval_tables(table, level, volatility)
    choice = choose_method(tables, level)
    return tables[choice.method if choice else "conformal"], choice


@dataclass
class Intervals:
    """A forecast table with its bounds, the method that made them (and how ``auto`` chose
    it), and their evaluation (:func:`~marketcast.evaluation.interval_tests.
    interval_evaluation`) on the cutoffs after the choice."""

    table: pd.DataFrame
    scores: pd.DataFrame
    method: str
    choice: Choice | None

    def to_dict(self) -> dict:
        """For metrics.json: the method, how it was chosen and calibrated."""
        about = self.choice.to_dict() if self.choice else {"method": self.method}
        return {**about, "calibration": CALIBRATION}


# How every interval here is calibrated: said beside every evaluation of them.
CALIBRATION = ("sequential: each interval calibrated only on residuals whose target date is "
               "on or before its cutoff")


def evaluate_intervals(table: pd.DataFrame, dates: pd.DatetimeIndex, y, level: float,
                       method: str) -> Intervals:
    """Calibrate a walk-forward (or test-period) table of one series with ``method``,
    leak-free, and judge the intervals as a value-at-risk model on the cutoffs not used to
    choose the method; volatility and its terciles come from the prices ``y`` on ``dates``
    known at each cutoff."""
    banded, choice = calibrate(table, level, method, ewma_volatility(dates, y))
    scores = interval_evaluation(evaluation_part(banded, choice), level,
                                 volatility_regimes(dates, y))
    used = method if method != "auto" else (choice.method if choice else "conformal")
    return Intervals(banded, scores, used, choice)


def _quantile(values: list[float], level: float) -> float:
    """The conformal quantile ``ceil((n + 1) * level) / n`` of sorted ``values``; the
    largest value when that rank is past the end (few scores at a high level)."""
    rank = min(math.ceil((len(values) + 1) * level), len(values))
    return values[max(rank, 1) - 1]


def _iso(value) -> str:
    return pd.Timestamp(value).date().isoformat()
