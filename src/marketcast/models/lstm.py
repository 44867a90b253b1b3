"""The stacked-LSTM forecaster: scaling and windows from WindowTransform, the network from
:mod:`marketcast.nn.network`, the loop from :mod:`marketcast.nn.train`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from marketcast.config import ModelConfig, TrainConfig
from marketcast.models.base import BaseForecaster
from marketcast.models.windows import WindowTransform
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import Callback, Checkpoints, fit_network

# Windows per forward pass at prediction time: bounds memory on long test periods.
PREDICT_CHUNK = 4096


@dataclass
class Pooled:
    """Scaled rows of many series stacked into one array, and the window cutoffs in it.

    ``Z`` is (N, F) float32; series ``k`` owns rows ``starts[k]:starts[k+1]``.
    ``train_cutoffs`` and ``val_cutoffs`` are row indices of ``Z`` (int64); every cutoff's
    window and targets stay inside its own series' rows.
    """

    Z: np.ndarray
    starts: np.ndarray
    transforms: list[WindowTransform]
    train_cutoffs: np.ndarray
    val_cutoffs: np.ndarray


def pool_series(series: Sequence[tuple[np.ndarray, np.ndarray | None, int]], lookback: int,
                horizon: int, target_transform: str) -> Pooled:
    """Scale each ``(y, X, n_val)`` on its own training rows and stack the scaled rows.

    Memory: one float32 array of (rows, summed over series) x F plus the cutoff indices;
    windows are gathered per batch by :func:`marketcast.nn.train.fit_network`, never copied.
    """
    blocks, transforms, train, val, starts = [], [], [], [], [0]
    for y, X, n_val in series:
        y = np.asarray(y, dtype=np.float64)
        n_train, start = len(y) - n_val, starts[-1]
        transform = WindowTransform(lookback, horizon, target_transform)
        transform.fit(y, X, n_train=n_train)
        blocks.append(transform.inputs(y, X))
        transforms.append(transform)
        train.append(transform.cutoffs(0, n_train) + start)
        if n_val:
            val.append(transform.cutoffs(n_train, len(y)) + start)
        starts.append(start + len(y))
    empty = np.empty(0, dtype=np.int64)
    return Pooled(
        Z=np.concatenate(blocks),
        starts=np.asarray(starts, dtype=np.int64),
        transforms=transforms,
        train_cutoffs=np.concatenate(train) if train else empty,
        val_cutoffs=np.concatenate(val) if val else empty,
    )


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
        """Fit on one series: a panel of one (see :meth:`fit_many`), the same arithmetic."""
        (fitted,) = self.fit_many([(y, X, n_val)], callback, checkpoints)
        self._set_fitted(fitted.net_, fitted.transform_, fitted.history_, fitted.best_epoch_,
                         y, X)
        return self

    def fit_many(self, series: Sequence[tuple[np.ndarray, np.ndarray | None, int]],
                 callback: Callback | None = None,
                 checkpoints: Checkpoints | None = None,
                 trainer: Callable = fit_network) -> list[LSTMForecaster]:
        """One network trained on the windows of every series; one fitted forecaster each.

        ``series`` holds ``(y, X, n_val)`` per series, as :meth:`fit` takes them. Each series
        is scaled by its own transform, fitted on its own training rows (all but the last
        ``n_val``); early stopping watches the pooled validation windows. The forecasters
        share the network and differ in their transforms and remembered last rows.
        ``trainer`` trains the network; it takes the arguments of
        :func:`~marketcast.nn.train.fit_network` (data-parallel training on Ray:
        :func:`marketcast.scale.train.ray_trainer`).
        """
        m = self.model
        pooled = pool_series(series, m.lookback, m.horizon, m.target_transform)
        torch.manual_seed(self.train.seed)
        net = StackedLSTM(pooled.Z.shape[1], m.units, m.layers, m.dropout, m.horizon)
        history, best_epoch = trainer(
            net, pooled.Z, pooled.train_cutoffs, pooled.val_cutoffs, m.lookback, m.horizon,
            self.train, callback, checkpoints,
        )
        return [self.from_network(net, transform, history, best_epoch, y, X,
                                  model=self.model, train=self.train)
                for transform, (y, X, _) in zip(pooled.transforms, series, strict=True)]

    @classmethod
    def from_network(cls, net: StackedLSTM, transform: WindowTransform, history: list,
                     best_epoch: int, y, X=None, *, model: ModelConfig | None = None,
                     train: TrainConfig | None = None) -> LSTMForecaster:
        """A fitted forecaster from a trained network and a fitted transform, remembering
        the last rows of ``y`` (and ``X``) to forecast after them."""
        forecaster = cls(model, train)
        forecaster._set_fitted(net, transform, history, best_epoch, y, X)
        return forecaster

    def _set_fitted(self, net, transform, history, best_epoch, y, X) -> None:
        self.net_, self.transform_ = net, transform
        self.history_, self.best_epoch_ = history, best_epoch
        self._remember(y, X, rows=self.model.lookback + 1)

    def predict_cutoffs(self, y, X, cutoffs, h):
        self._check_fitted()
        y, t = np.asarray(y, np.float64), self.transform_
        if self.stateful and h > 1 and t.horizon == 1 and t.n_features_ == 1:
            return self._predict_stateful(y, cutoffs, h)
        return t.forecast(self._predict_scaled, y, X, cutoffs, h)

    def _predict_stateful(self, y: np.ndarray, cutoffs, h: int) -> np.ndarray:
        """Recursive forecasts advancing the LSTM state (see ``StackedLSTM.forecast``)."""
        t = self.transform_
        cutoffs = t.check_cutoffs(cutoffs)
        windows = t.windows(t.inputs(y), cutoffs)
        self.net_.eval()
        with torch.inference_mode():
            chunks = [
                self.net_.forecast(torch.from_numpy(
                    np.ascontiguousarray(windows[i : i + PREDICT_CHUNK])), h)
                for i in range(0, len(windows), PREDICT_CHUNK)
            ]
        return t.to_price(y, cutoffs, torch.cat(chunks).numpy())

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
