"""The one judge of "better" and "worse".

A forecast is called better or worse than another only when the Diebold-Mariano test of
equal squared error (:func:`marketcast.evaluation.stats.diebold_mariano`) gives p < ALPHA,
and the p-value is printed beside every call. Other tests (the bootstrap test of a trading
strategy's Sharpe ratio against buy-and-hold) are judged and worded by the same functions,
named by their ``test`` argument. Every verdict sentence, report card and
per-ticker call words its comparison here, so no two places can disagree about what is
significant. Relative differences may be shown as numbers elsewhere ("-3.9%"), never as
"better" or "worse".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# The significance level of every comparison marketcast words.
ALPHA = 0.05

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


def format_p(p: float | None, test: str = "DM") -> str:
    """``"DM p = 0.0103"``, or ``"DM p not computable"`` for NaN or None; ``test`` names
    the test (``"bootstrap"``: ``"bootstrap p = 0.71"``).

    Three significant digits, more when rounding would move the value across ALPHA (0.04996
    must not read as 0.05).
    """
    if p is None or not math.isfinite(p):
        return f"{test} p not computable"
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


def judgement(p: float | None, difference: float, other: str, test: str = "DM") -> str:
    """The comparison in words with its p-value, e.g. ``"significantly better than the
    random walk (DM p = 0.012)"`` or ``"not significantly different from the linear model
    (DM p = 0.083)"``; ``difference`` as in :func:`call`, ``test`` as in :func:`format_p`."""
    return f"{phrase(call(p, difference), other)} ({format_p(p, test)})"


def tally(calls: Iterable[str], other: str, unit: str = "tickers", test: str = "DM") -> str:
    """Judgements of many comparisons (values of :func:`call`) against ``other``, counted.

    ``"significantly better than the random walk on 1 of 5 tickers (20.0%), significantly
    worse on 2 (40.0%) and not significantly different on 2 (40.0%); DM p < 0.05 decides"``;
    a judgement no comparison got is left out. When none is significant: ``"not
    significantly different from the random walk on any of the 5 tickers (no DM p below
    0.05)"``. ``test`` names the test, as in :func:`format_p`.
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
