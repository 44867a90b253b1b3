"""The one judge of "better" and "worse".

A forecast is called better or worse than another only when the Diebold-Mariano test of
equal squared error (:func:`marketcast.evaluation.stats.diebold_mariano`) gives p < ALPHA,
and the p-value is printed beside every call. The same rule words the tests of many
comparisons at once (:mod:`marketcast.evaluation.multiple`): Hansen's SPA test ("is the best
of several models better than the random walk?") and Diebold-Mariano p-values adjusted across
tickers; the p-value then names its test (``SPA p``, ``BH-adjusted DM p``). Every verdict
sentence, report card and per-ticker call words its comparison here, so no two places can
disagree about what is significant. Relative differences may be shown as numbers elsewhere
("-3.9%"), never as "better" or "worse".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# The significance level of every comparison marketcast words.
ALPHA = 0.05

# With no skill at all, a two-sided test at ALPHA calls a comparison significantly better
# with probability ALPHA / 2 and significantly worse with ALPHA / 2: the share of many
# independent comparisons expected in each direction by chance alone.
CHANCE = ALPHA / 2

BETTER, WORSE, NOT_SIGNIFICANT = "better", "worse", "not significant"
# Each judgement as the words of a sentence.
WORDS = {BETTER: "significantly better", WORSE: "significantly worse",
         NOT_SIGNIFICANT: "not significantly different"}


def significant(p: float | None) -> bool:
    """Whether a p-value rejects at ALPHA; a missing or NaN p-value never does."""
    return p is not None and math.isfinite(p) and p < ALPHA


def call(p: float | None, difference: float) -> str:
    """The judgement of one comparison: ``"better"``, ``"worse"`` or ``"not significant"``.

    Parameters
    ----------
    p : float or None
        Diebold-Mariano p-value of the comparison (NaN or None when not computable).
    difference : float
        The model's loss minus the other's (an RMSE difference or the DM statistic):
        negative when the model has the smaller errors.
    """
    if significant(p) and difference < 0:
        return BETTER
    if significant(p) and difference > 0:
        return WORSE
    return NOT_SIGNIFICANT


def format_p(p: float | None, test: str = "DM", floor: float | None = None) -> str:
    """``"DM p = 0.0103"``, or ``"DM p not computable"`` for NaN or None.

    Three significant digits, more when rounding would move the value across ALPHA (0.04996
    must not read as 0.05). ``test`` names the test (``"SPA p = 0.43"``); ``floor``, the
    resolution of a bootstrap p-value (1 / replications), turns a p-value below it into
    ``"SPA p < 0.001"`` rather than a p-value of 0.
    """
    if p is None or not math.isfinite(p):
        return f"{test} p not computable"
    if floor is not None and p < floor:
        return f"{test} p < {floor:g}"
    for digits in range(3, 7):
        text = f"{p:.{digits}g}"
        if (float(text) < ALPHA) == (p < ALPHA):
            return f"{test} p = {text}"
    return f"{test} p {'<' if p < ALPHA else '>='} {ALPHA:g}"


def phrase(judged: str, other: str) -> str:
    """A judgement (from :func:`call`) against ``other`` in words, without the p-value:
    ``"significantly better than the linear model"``, ``"not significantly different from
    the random walk"``."""
    return f"{WORDS[judged]} {'from' if judged == NOT_SIGNIFICANT else 'than'} {other}"


def judgement(p: float | None, difference: float, other: str) -> str:
    """The comparison in words with its p-value, e.g. ``"significantly better than the
    random walk (DM p = 0.012)"`` or ``"not significantly different from the linear model
    (DM p = 0.083)"``; ``difference`` as in :func:`call`."""
    return f"{phrase(call(p, difference), other)} ({format_p(p)})"


def tally(calls: Iterable[str], other: str, unit: str = "tickers", test: str = "DM") -> str:
    """Judgements of many comparisons (values of :func:`call`) against ``other``, counted.

    ``"significantly better than the random walk on 1 of 5 tickers (20.0%), significantly
    worse on 2 (40.0%) and not significantly different on 2 (40.0%); DM p < 0.05 decides"``;
    a judgement no comparison got is left out. When none is significant: ``"not
    significantly different from the random walk on any of the 5 tickers (no DM p below
    0.05)"``. ``test`` names the p-values that decided (``"BH-adjusted DM"``).
    """
    calls = list(calls)
    n, better, worse = len(calls), calls.count(BETTER), calls.count(WORSE)
    if better == worse == 0:
        return f"{phrase(NOT_SIGNIFICANT, other)} on any of the {n} {unit} " \
               f"(no {test} p below {ALPHA:g})"
    counts = ((BETTER, better), (WORSE, worse), (NOT_SIGNIFICANT, n - better - worse))
    shown = [(judged, k) for judged, k in counts if k]
    (first, k), rest = shown[0], shown[1:]
    parts = [f"{phrase(first, other)} on {k} of {n} {unit} ({k / n:.1%})"]
    parts += [f"{WORDS[judged]} on {k} ({k / n:.1%})" for judged, k in rest]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed}; {test} p < {ALPHA:g} decides"


def by_chance(unit: str = "tickers") -> str:
    """What chance alone gives many two-sided comparisons when no model has skill: ``"with
    no skill, chance alone would put 2.5% of tickers in each direction (half of 0.05 per
    side)"``."""
    return (f"with no skill, chance alone would put {CHANCE:.1%} of {unit} in each direction "
            f"(half of {ALPHA:g} per side)")


def best_of(p: float | None, n_models: int, other: str, better: Iterable[str] = (),
            test: str = "SPA", floor: float | None = None) -> str:
    """The verdict of a test of the best of ``n_models`` against ``other`` (Hansen's SPA):
    ``"the best of 4 models is not significantly better than the random walk (SPA p =
    0.43)"``, or when p < ALPHA ``"at least one of 4 models is significantly better than the
    random walk (SPA p = 0.012): lstm"``, naming the models ``better`` the test singles out.
    """
    shown = format_p(p, test, floor)
    if not significant(p):
        return f"the best of {n_models} models is not {WORDS[BETTER]} than {other} ({shown})"
    named = ", ".join(better)
    return (f"at least one of {n_models} models is {WORDS[BETTER]} than {other} ({shown})"
            + (f": {named}" if named else ""))
