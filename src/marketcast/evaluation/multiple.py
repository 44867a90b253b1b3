"""Many comparisons at once: every model of a backtest, every ticker of a panel.

A Diebold-Mariano test compares two models. With five models, or five hundred tickers, some
comparison comes out "significant" by chance; these tests answer the questions of the whole
family, with the libraries' own implementations:

- :func:`model_confidence_set`: the models whose squared errors are not significantly larger
  than the best's (Hansen, Lunde and Nason's Model Confidence Set, ``arch.bootstrap.MCS``);
- :func:`spa_test`: is the best of the models better than the random walk? (Hansen's test of
  Superior Predictive Ability, ``arch.bootstrap.SPA``, the random walk as benchmark);
- :func:`adjust_p_values`: per-ticker Diebold-Mariano p-values adjusted across tickers
  (Benjamini-Hochberg, ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``), and
  :func:`share_summary`, the shares of tickers called better or worse before and after, beside
  the share chance alone gives (``significance.CHANCE``, 2.5% each way).

Both bootstraps are stationary bootstraps (Politis and Romano) of the step-1 loss matrix with a
fixed seed (:data:`SEED`), :data:`REPS` replications and a mean block length of ``floor(sqrt(T))``
cutoffs (:func:`block_size`; arch's own default rule, passed explicitly so that metrics.json
records it): 15 for 250 cutoffs. Squared errors of daily prices cluster with volatility; blocks
keep that dependence inside each resample. Bootstrap p-values are multiples of ``1 / REPS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, SPA
from statsmodels.stats.multitest import multipletests

from marketcast.evaluation import significance
from marketcast.evaluation.metrics import BENCHMARK, model_label

# The MCS holds the best models with 90% confidence: a model leaves it at MCS p <= 0.10.
MCS_SIZE = 0.10
REPS = 1000  # bootstrap replications (arch's default)
SEED = 0  # the same resamples on every run: the same folder gives the same p-values
BOOTSTRAP = "stationary"
# Fewer aligned cutoffs than this and the tests are not run (the SPA's threshold for
# "relevant" models needs log(log(T)) > 0).
MIN_CUTOFFS = 3


def loss_matrix(table: pd.DataFrame, step: int = 1) -> pd.DataFrame:
    """Squared errors ``(y_hat - y)**2`` (price units squared) at ``step``: one row per
    cutoff where every model forecast, one column per model in table order; shape (T, k)."""
    rows = table[table["step"] == step]
    losses = rows.assign(loss=(rows["y_hat"] - rows["y"]) ** 2).pivot(
        index="cutoff", columns="model", values="loss")
    return losses[list(rows["model"].unique())].dropna()


def block_size(t: int) -> int:
    """Mean block length of the stationary bootstrap for ``t`` cutoffs: ``floor(sqrt(t))``."""
    return max(1, int(np.sqrt(t)))


def model_confidence_set(losses: pd.DataFrame, size: float = MCS_SIZE, reps: int = REPS,
                         seed: int = SEED) -> dict:
    """The Model Confidence Set at ``1 - size`` of the models in ``losses`` (T x k, k >= 2).

    ``arch.bootstrap.MCS`` with the range statistic (``method="R"``): models are eliminated
    worst first while the equal-loss hypothesis is rejected; a model's MCS p-value is the
    smallest size at which it would leave the set, and it stays in while p > ``size``.

    Returns
    -------
    dict
        JSON-ready: ``included`` and ``excluded`` (model names; included in column order,
        excluded by p-value), ``pvalues`` and ``mse`` per model, and the settings (``level``,
        ``size``, ``method``, ``bootstrap``, ``block_size``, ``reps``, ``seed``, ``n``).
    """
    b = block_size(len(losses))
    mcs = MCS(losses, size=size, reps=reps, block_size=b, method="R", bootstrap=BOOTSTRAP,
              seed=seed)
    mcs.compute()
    p = mcs.pvalues["Pvalue"]
    included = set(mcs.included)
    excluded = sorted(mcs.excluded, key=lambda m: (p[m], list(losses.columns).index(m)))
    return {
        "level": round(1 - size, 10), "size": size, "method": "R", "bootstrap": BOOTSTRAP,
        "block_size": b, "reps": reps, "seed": seed, "n": len(losses),
        "loss": "squared error at step 1 (price units)",
        "included": [m for m in losses.columns if m in included],
        "excluded": [str(m) for m in excluded],
        "pvalues": {str(m): float(p[m]) for m in losses.columns},
        "mse": {str(m): float(v) for m, v in losses.mean().items()},
    }


def spa_test(losses: pd.DataFrame, benchmark: str = BENCHMARK, reps: int = REPS,
             seed: int = SEED) -> dict:
    """Hansen's test of Superior Predictive Ability: is any column of ``losses`` (T x k) better
    than ``benchmark``'s (by default the random walk: tomorrow = today)?

    ``arch.bootstrap.SPA(losses[benchmark], the other columns)``; the null is that no model
    has a smaller expected loss than the benchmark. arch gives three p-values, which differ in
    how models far worse than the benchmark are re-centred: ``lower``, ``consistent`` (Hansen's
    choice, the one reported as ``p_value``) and ``upper`` (White's Reality Check). In arch
    8.0.0 the statistic is the largest mean loss difference itself; the loss variances only
    decide which models count as relevant for the consistent p-value.

    Returns
    -------
    dict
        JSON-ready: ``benchmark``, ``models``, ``p_value`` (consistent), ``pvalues``
        (lower/consistent/upper), ``better`` (the models arch's ``better_models`` singles out
        at ALPHA with the consistent critical value; reported only when ``p_value < ALPHA``)
        and the settings (``block_size``, ``reps``, ``seed``, ``n``).
    """
    models = losses.drop(columns=benchmark)
    b = block_size(len(losses))
    spa = SPA(losses[benchmark], models, block_size=b, reps=reps, bootstrap=BOOTSTRAP,
              seed=seed)
    spa.compute()
    p = {k: float(v) for k, v in spa.pvalues.items()}
    better = [str(models.columns[i])
              for i in spa.better_models(significance.ALPHA, "consistent")]
    return {
        "benchmark": benchmark, "models": [str(m) for m in models.columns],
        "p_value": p["consistent"], "pvalues": p,
        "better": better if significance.significant(p["consistent"]) else [],
        "bootstrap": BOOTSTRAP, "block_size": b, "reps": reps, "seed": seed, "n": len(losses),
        "loss": "squared error at step 1 (price units)",
    }


def mcs_and_spa(table: pd.DataFrame) -> tuple[dict | None, dict | None]:
    """Both tests on the step-1 losses of a backtest's long table; ``None`` for a test that
    cannot run (one model only, the random walk missing, fewer than MIN_CUTOFFS cutoffs)."""
    losses = loss_matrix(table)
    if losses.shape[1] < 2 or len(losses) < MIN_CUTOFFS:
        return None, None
    spa = spa_test(losses) if BENCHMARK in losses.columns else None
    return model_confidence_set(losses), spa


def describe_mcs(mcs: dict) -> str:
    """``"model confidence set (90%): naive, lstm, linear; excluded: arima (MCS p =
    0.01)"``."""
    floor = 1 / mcs["reps"]
    text = f"model confidence set ({mcs['level']:.0%}): {', '.join(mcs['included'])}"
    if not mcs["excluded"]:
        return f"{text}; none excluded (every MCS p > {mcs['size']:g})"
    out = [f"{m} ({significance.format_p(mcs['pvalues'][m], 'MCS', floor)})"
           for m in mcs["excluded"]]
    return f"{text}; excluded: {', '.join(out)}"


def describe_spa(spa: dict) -> str:
    """``"SPA vs the random walk: the best of 4 models is not significantly better than the
    random walk (SPA p = 0.43)"``, worded by :func:`significance.best_of`."""
    return f"SPA vs {model_label(spa['benchmark'])}: " + significance.best_of(
        spa["p_value"], len(spa["models"]), model_label(spa["benchmark"]), spa["better"],
        floor=1 / spa["reps"])


def describe(mcs: dict | None, spa: dict | None) -> list[str]:
    """The lines of :func:`describe_mcs` and :func:`describe_spa` for the tests that ran."""
    return ([describe_mcs(mcs)] if mcs else []) + ([describe_spa(spa)] if spa else [])


def adjust_p_values(p: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``multipletests(method="fdr_bh")``).

    The adjustment runs over the finite p-values only (``m`` is their number); a NaN
    p-value (a ticker whose test was not computable) stays NaN. Shape as ``p``. BH controls
    the false discovery rate for independent or positively dependent tests; tickers of one
    market are correlated, so read the adjusted shares as approximate.
    """
    p = np.asarray(p, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = multipletests(p[finite], alpha=significance.ALPHA,
                                         method="fdr_bh")[1]
    return adjusted


def adjusted_calls(p: Sequence[float] | np.ndarray | pd.Series,
                   differences: Iterable[float]) -> list[str]:
    """The judge's calls (:func:`significance.call`) on the BH-adjusted ``p``;
    ``differences`` as for the call (negative: the model has the smaller loss)."""
    return [significance.call(q, d) for q, d in zip(adjust_p_values(p), differences,
                                                    strict=True)]


def share_summary(calls: Iterable[str], adjusted: Iterable[str]) -> dict:
    """Shares (%) of comparisons called better and worse on the raw and on the adjusted
    p-values, and ``chance_pct``: the share expected in each direction with no skill at all
    (100 * ALPHA / 2 = 2.5%), which the raw shares are to be read against."""
    calls, adjusted = list(calls), list(adjusted)
    n = max(len(calls), 1)

    def pct(values: list[str], judged: str) -> float:
        return 100.0 * values.count(judged) / n

    return {"better_pct": pct(calls, significance.BETTER),
            "worse_pct": pct(calls, significance.WORSE),
            "better_adjusted_pct": pct(adjusted, significance.BETTER),
            "worse_adjusted_pct": pct(adjusted, significance.WORSE),
            "chance_pct": 100.0 * significance.CHANCE}
