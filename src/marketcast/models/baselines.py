"""Baselines every LSTM is compared with: the random walk and a ridge regression on windows."""

from __future__ import annotations

import numpy as np

from marketcast.models.base import BaseForecaster
from marketcast.models.windows import WindowTransform


class NaiveForecaster(BaseForecaster):
    """Random walk: every future day equals the last observed price (tomorrow = today)."""

    name = "naive"

    def fit(self, y, X=None, *, n_val=0):
        self._remember(y, X, rows=1)
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()
        return np.repeat(np.asarray(y, dtype=np.float64)[cutoffs][:, None], h, axis=1)


class LinearForecaster(BaseForecaster):
    """Ridge regression on the same scaled lookback window and target transform as the LSTM.

    The scaler is fitted on the training rows; the regression on every window whose targets
    fall before the end of the fit data (training and validation rows).
    """

    name = "linear"

    def __init__(self, lookback=60, horizon=1, target_transform="log_return", alpha=1e-3):
        self.lookback = lookback
        self.horizon = horizon
        self.target_transform = target_transform
        # A touch of ridge keeps the 60-coefficient fit stable on near-collinear prices.
        self.alpha = alpha

    def fit(self, y, X=None, *, n_val=0):
        y = np.asarray(y, dtype=np.float64)
        self.transform_ = WindowTransform(self.lookback, self.horizon, self.target_transform,
                                          dtype=np.float64)
        self.transform_.fit(y, X, n_train=len(y) - n_val)
        Z = self.transform_.inputs(y, X)
        cutoffs = self.transform_.cutoffs(0, len(y))
        inputs = self.transform_.windows(Z, cutoffs).reshape(len(cutoffs), -1)
        from sklearn.linear_model import Ridge  # imported on use: keeps CLI start-up short

        self.ridge_ = Ridge(alpha=self.alpha).fit(inputs, self.transform_.targets(Z, cutoffs))
        self._remember(y, X, rows=self.lookback + 1)
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()

        def predict_scaled(windows: np.ndarray) -> np.ndarray:
            out = self.ridge_.predict(windows.reshape(len(windows), -1))
            return out.reshape(len(windows), -1)

        return self.transform_.forecast(predict_scaled, np.asarray(y, np.float64), X, cutoffs, h)


class DriftForecaster(BaseForecaster):
    """Random walk with drift: the last price plus k times the mean daily change of the fit
    data (the straight line through its first and last price)."""

    name = "drift"

    def fit(self, y, X=None, *, n_val=0):
        y = np.asarray(y, dtype=np.float64)
        self.slope_ = (y[-1] - y[0]) / max(len(y) - 1, 1)
        self._remember(y, X, rows=1)
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()
        last = np.asarray(y, dtype=np.float64)[cutoffs][:, None]
        return last + self.slope_ * np.arange(1, h + 1)[None, :]
