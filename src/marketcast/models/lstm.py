"""The stacked-LSTM forecaster: scaling and windows from WindowTransform, the network from
:mod:`marketcast.nn.network`, the loop from :mod:`marketcast.nn.train`."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from marketcast.config import ModelConfig, TrainConfig
from marketcast.models.base import BaseForecaster
from marketcast.models.windows import WindowTransform
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import Callback, Checkpoints, fit_network

# Windows per forward pass at prediction time: bounds memory on long test periods.
PREDICT_CHUNK = 4096


class LSTMForecaster(BaseForecaster):
    name = "lstm"
    # Multi-day recursive forecasts advance the LSTM state one day at a time instead of
    # re-reading a sliding window: ~6x faster (benchmarks/README.md), within a tested
    # tolerance of the reference (tests/test_models.py); False restores the sliding window.
    stateful = True

    def __init__(self, model: ModelConfig | None = None, train: TrainConfig | None = None):
        self.model = model or ModelConfig()
        self.train = train or TrainConfig()

    def fit(self, y, X=None, *, n_val=0, callback: Callback | None = None,
            checkpoints: Checkpoints | None = None):
        m = self.model
        y = np.asarray(y, dtype=np.float64)
        n_train = len(y) - n_val
        self.transform_ = WindowTransform(m.lookback, m.horizon, m.target_transform)
        self.transform_.fit(y, X, n_train=n_train)
        Z = self.transform_.inputs(y, X)
        torch.manual_seed(self.train.seed)
        self.net_ = StackedLSTM(self.transform_.n_features_, m.units, m.layers, m.dropout,
                                m.horizon)
        train_origins = self.transform_.origins(0, n_train)
        val_origins = self.transform_.origins(n_train, len(y)) if n_val else train_origins[:0]
        self.history_, self.best_epoch_ = fit_network(
            self.net_, Z, train_origins, val_origins, m.lookback, m.horizon, self.train, callback,
            checkpoints,
        )
        self._remember(y, X, rows=m.lookback + 1)
        return self

    def predict_origins(self, y, X, origins, h):
        self._check_fitted()
        y, t = np.asarray(y, np.float64), self.transform_
        if self.stateful and h > 1 and t.horizon == 1 and t.n_features_ == 1:
            return self._predict_stateful(y, origins, h)
        return t.forecast(self._predict_scaled, y, X, origins, h)

    def _predict_stateful(self, y: np.ndarray, origins, h: int) -> np.ndarray:
        """Recursive forecasts advancing the LSTM state (see ``StackedLSTM.forecast``)."""
        t = self.transform_
        origins = t.check_origins(origins)
        windows = t.windows(t.inputs(y), origins)
        self.net_.eval()
        with torch.inference_mode():
            chunks = [
                self.net_.forecast(torch.from_numpy(
                    np.ascontiguousarray(windows[i : i + PREDICT_CHUNK])), h)
                for i in range(0, len(windows), PREDICT_CHUNK)
            ]
        return t.to_price(y, origins, torch.cat(chunks).numpy())

    def _predict_scaled(self, windows: np.ndarray) -> np.ndarray:
        self.net_.eval()
        with torch.inference_mode():
            chunks = [
                self.net_(torch.from_numpy(np.ascontiguousarray(windows[i : i + PREDICT_CHUNK])))
                for i in range(0, len(windows), PREDICT_CHUNK)
            ]
        return torch.cat(chunks).numpy()

    def get_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Weights (for safetensors) and everything else as JSON-ready metadata."""
        self._check_fitted()
        tensors = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        meta = {
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "transform": self.transform_.to_dict(),
            "best_epoch": self.best_epoch_,
            "context_y": self.y_.tolist(),
            "context_X": None if self.X_ is None else self.X_.tolist(),
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict) -> LSTMForecaster:
        model = cls(ModelConfig(**meta["model"]), TrainConfig(**meta["train"]))
        model.transform_ = WindowTransform.from_dict(meta["transform"])
        m = model.model
        model.net_ = StackedLSTM(model.transform_.n_features_, m.units, m.layers, m.dropout,
                                 m.horizon)
        model.net_.load_state_dict(tensors, strict=True)
        model.net_.eval()
        model.best_epoch_ = meta["best_epoch"]
        model.history_ = []
        model.y_ = np.asarray(meta["context_y"], dtype=np.float64)
        model.X_ = None if meta["context_X"] is None else np.asarray(meta["context_X"])
        return model
