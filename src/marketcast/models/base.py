"""The forecaster protocol shared by every model.

Models see arrays, not dates: ``y`` is the price series (T,), ``X`` optional extra features
(T, F-1). ``fit(y, X, n_val=...)`` learns from all rows it is given, keeping the last
``n_val`` rows for validation (early stopping) and fitting any scaler on the rows before
them. ``predict_cutoffs`` forecasts ``h`` days from many cutoffs with the fitted parameters,
without refitting; ``predict(h)`` forecasts after the last row.
"""

from __future__ import annotations

import numpy as np

from marketcast.errors import NotFittedError


class BaseForecaster:
    name = "base"

    def fit(self, y: np.ndarray, X: np.ndarray | None = None, *, n_val: int = 0):
        raise NotImplementedError

    def predict_cutoffs(
        self, y: np.ndarray, X: np.ndarray | None, cutoffs: np.ndarray, h: int
    ) -> np.ndarray:
        """Forecasts (n, h) in price units: row i forecasts ``y[cutoffs[i]+1 .. +h]``."""
        raise NotImplementedError

    def predict(self, h: int, y: np.ndarray | None = None, X: np.ndarray | None = None):
        """Forecast the ``h`` days after the end of ``y`` (default: the data seen by ``fit``)."""
        self._check_fitted()
        if y is None:
            y, X = self.y_, self.X_
        y = np.asarray(y, dtype=np.float64)
        return self.predict_cutoffs(y, X, np.array([len(y) - 1]), h)[0]

    def _remember(self, y: np.ndarray, X: np.ndarray | None, rows: int) -> None:
        """Keep the last ``rows`` rows of the fit data for :meth:`predict` without ``y``."""
        self.y_ = np.asarray(y, dtype=np.float64)[-rows:]
        self.X_ = None if X is None else np.asarray(X, dtype=np.float64)[-rows:]

    def _check_fitted(self) -> None:
        if not hasattr(self, "y_"):
            raise NotFittedError(f"{self.name} model is not fitted; call fit first")
