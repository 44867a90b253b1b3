"""A saved LSTM forecasting with numpy: what ``marketcast forecast`` and ``evaluate`` use.

:class:`NumpyLSTMForecaster` holds the same transform and remembered rows as a fitted
:class:`marketcast.models.lstm.LSTMForecaster` and forecasts the same way (stateful
recursion past one day, sliding windows otherwise), with the network computed by
:class:`marketcast.nn.inference.NumpyLSTM`. Nothing here imports torch, so a forecast from a
run folder starts in a fraction of the time; fitting stays with ``LSTMForecaster``.
"""

from __future__ import annotations

import numpy as np

from marketcast.config import ModelConfig, TrainConfig
from marketcast.models.base import BaseForecaster
from marketcast.models.windows import WindowTransform
from marketcast.nn.inference import NumpyLSTM

# Windows per pass: the first layer's inputs for every day of a chunk, (chunk, L, 4H)
# float32, stay near 50 MB at the default lookback 60 and 50 units.
PREDICT_CHUNK = 1024


class NumpyLSTMForecaster(BaseForecaster):
    name = "lstm"
    # As LSTMForecaster.stateful: False re-reads a sliding window at every recursive step.
    stateful = True

    def fit(self, y, X=None, *, n_val=0):
        raise NotImplementedError("a numpy LSTM only forecasts from saved weights; fit "
                                  "marketcast.models.LSTMForecaster instead")

    def to_numpy(self) -> NumpyLSTMForecaster:
        """Itself (as ``LSTMForecaster.to_numpy`` gives one)."""
        return self

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()
        y, t = np.asarray(y, np.float64), self.transform_
        if self.stateful and h > 1 and t.horizon == 1 and t.n_features_ == 1:
            cutoffs = t.check_cutoffs(cutoffs)
            windows = t.windows(t.inputs(y), cutoffs)
            return t.to_price(y, cutoffs, self._chunked(windows, h))
        return t.forecast(self._chunked, y, X, cutoffs, h)

    def _chunked(self, windows: np.ndarray, steps: int | None = None) -> np.ndarray:
        """Scaled forecasts of (n, L, F) windows: (n, O), or (n, steps) recursively."""
        run = self.net_ if steps is None else (lambda x: self.net_.forecast(x, steps))
        if len(windows) <= PREDICT_CHUNK:
            return run(windows)
        return np.concatenate([run(windows[i : i + PREDICT_CHUNK])
                               for i in range(0, len(windows), PREDICT_CHUNK)])

    @classmethod
    def from_state(cls, tensors: dict, meta: dict) -> NumpyLSTMForecaster:
        """From the weights (numpy arrays, or tensors) and metadata of
        ``LSTMForecaster.get_state``; ValueError or KeyError when they do not fit."""
        model = cls()
        model.model, model.train = ModelConfig(**meta["model"]), TrainConfig(**meta["train"])
        model.transform_ = WindowTransform.from_dict(meta["transform"])
        model.net_ = NumpyLSTM({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()})
        if model.net_.n_features != model.transform_.n_features_:
            raise ValueError(f"the network reads {model.net_.n_features} features, the "
                             f"scaler {model.transform_.n_features_}")
        model.best_epoch_ = meta["best_epoch"]
        model.y_ = np.asarray(meta["context_y"], dtype=np.float64)
        model.X_ = None if meta["context_X"] is None else np.asarray(meta["context_X"])
        return model
