"""GARCH(1,1) with Student-t errors on daily log returns: the econometric anchor for risk.

The point forecast is the random walk with drift (the fitted mean log return); what the model
adds is the conditional variance, which clusters: its intervals widen after turbulent days
and narrow in calm ones. Fitted with :func:`arch.arch_model` on percent log returns; the
variance at a cutoff comes from arch's own forecast with the fitted parameters held fixed and
only the returns up to that cutoff (``ARCHModel.fix(...).forecast(start=...)``), so no later
price reaches it.
"""

from __future__ import annotations

import numpy as np

from marketcast.errors import DataError
from marketcast.models.base import BaseForecaster

# Percent returns keep arch's optimiser well scaled.
SCALE = 100.0
# Fewer returns than this leave GARCH's four parameters (plus nu) poorly identified.
MIN_RETURNS = 100


class GARCHForecaster(BaseForecaster):
    name = "garch"

    def fit(self, y, X=None, *, n_val: int = 0):
        """Fit on every row given (GARCH has no early stopping, so ``n_val`` rows are used
        too); ``X`` is ignored: the model sees prices only."""
        y = np.asarray(y, dtype=np.float64)
        returns = _percent_returns(y)
        if len(returns) < MIN_RETURNS:
            raise DataError(f"GARCH needs at least {MIN_RETURNS} daily returns to fit; got "
                            f"{len(returns)}: use more data or leave garch out of --models")
        result = _model(returns).fit(disp="off", show_warning=False)
        self.params_ = {k: float(v) for k, v in result.params.items()}
        self._remember(y, None, rows=1)
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        """The random walk with drift: ``y[c] * exp(mu * k)`` for steps ``k = 1..h``."""
        self._check_fitted()
        y, cutoffs = np.asarray(y, np.float64), np.asarray(cutoffs, dtype=np.int64)
        drift = self.params_["mu"] / SCALE * np.arange(1, h + 1)
        return y[cutoffs][:, None] * np.exp(drift)[None, :]

    def variance_cutoffs(self, y, cutoffs, h) -> np.ndarray:
        """Variance (n, h) of the log return from each cutoff to each step ahead (the sum of
        the conditional one-day variances), from the returns up to that cutoff only."""
        self._check_fitted()
        y, cutoffs = np.asarray(y, np.float64), np.asarray(cutoffs, dtype=np.int64)
        returns = _percent_returns(y[: int(cutoffs.max()) + 1])
        fixed = _model(returns).fix(list(self.params_.values()))
        # Return r[i] = log(y[i+1] / y[i]): the forecast made after r[c-1] is cutoff c's.
        first = int(cutoffs.min()) - 1
        daily = fixed.forecast(horizon=h, start=first, reindex=False).variance.to_numpy()
        return np.cumsum(daily[cutoffs - 1 - first], axis=1) / SCALE**2

    def predict_interval(self, y, X, cutoffs, h, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval (n, h) of the price at each step after each cutoff.

        Quantiles of the fitted standardised Student t scaled by the cumulative standard
        deviation (a sum of t variables is not exactly t; past one step this is the usual
        approximation), around the drifted log price.
        """
        nu = self.params_["nu"]
        from scipy import stats  # slow to import: only for intervals

        z = stats.t.ppf((1 + level) / 2, nu) * np.sqrt((nu - 2) / nu)
        spread = z * np.sqrt(self.variance_cutoffs(y, cutoffs, h))
        centre = self.predict_cutoffs(y, X, cutoffs, h)
        return centre * np.exp(-spread), centre * np.exp(spread)


def _percent_returns(y: np.ndarray) -> np.ndarray:
    return SCALE * np.diff(np.log(y))


def _model(returns: np.ndarray):
    from arch import arch_model  # arch imports statsmodels: only when a GARCH is fitted

    return arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
