"""ARIMA(p, 1, q) with drift on log prices, the order chosen by AIC over a small grid.

Fitting uses statsmodels (innovations MLE) on daily log returns. Forecasts from any cutoff
reuse the fitted parameters: the ARMA innovations are filtered once over the whole history
(``scipy.signal.lfilter``), so each cutoff costs a few multiplications, not a refit or a
state-space pass.
"""

from __future__ import annotations

import warnings

import numpy as np

from marketcast.errors import DataError
from marketcast.models.base import BaseForecaster

# (p, q) orders tried on the returns; d = 1 on log prices.
ORDERS = tuple((p, q) for p in range(3) for q in range(3))


class ARIMAForecaster(BaseForecaster):
    name = "arima"

    def __init__(self, orders=ORDERS):
        self.orders = orders

    def fit(self, y, X=None, *, n_val=0):
        from statsmodels.tsa.arima.model import ARIMA

        r = np.diff(np.log(np.asarray(y, dtype=np.float64)))
        best = None
        for p, q in self.orders:
            with warnings.catch_warnings():
                # Non-converged or non-invertible candidates simply lose on AIC.
                warnings.simplefilter("ignore")
                try:
                    result = ARIMA(r, order=(p, 0, q), trend="c").fit(method="innovations_mle")
                except (ValueError, np.linalg.LinAlgError):
                    continue
            if np.isfinite(result.aic) and (best is None or result.aic < best[0]):
                best = (result.aic, p, q, result.params)
        if best is None:
            raise DataError("no ARIMA order could be fitted; the series may be too short")
        self.aic_, p, q, params = best
        self.order_ = (p, 1, q)
        self.mu_ = float(params[0])
        self.ar_ = np.asarray(params[1 : 1 + p], dtype=np.float64)
        self.ma_ = np.asarray(params[1 + p : 1 + p + q], dtype=np.float64)
        self._remember(y, X, rows=len(y))
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()
        y = np.asarray(y, dtype=np.float64)
        z = np.concatenate([[0.0], np.diff(np.log(y)) - self.mu_])  # z[t]: return into day t
        # Innovations e[t] with e + sum(ma_j e[t-j]) = z - sum(ar_i z[t-i]); e[t] uses data <= t.
        from scipy.signal import lfilter  # ~1 s to import; `marketcast forecast` never needs it

        e = lfilter(np.r_[1.0, -self.ar_], np.r_[1.0, self.ma_], z)
        p, q = len(self.ar_), len(self.ma_)
        out = np.empty((len(cutoffs), h))
        for row, cutoff in enumerate(cutoffs):
            # Newest last; days before the data count as zero; future innovations are zero.
            zs = [0.0] * p + list(z[max(cutoff - p + 1, 0) : cutoff + 1])
            es = [0.0] * q + list(e[max(cutoff - q + 1, 0) : cutoff + 1])
            path = np.empty(h)
            for k in range(h):
                path[k] = sum(self.ar_[i] * zs[-1 - i] for i in range(p)) + sum(
                    self.ma_[j] * es[-1 - j] for j in range(q))
                zs.append(path[k])
                es.append(0.0)
            out[row] = y[cutoff] * np.exp(np.cumsum(path + self.mu_))
        return out
