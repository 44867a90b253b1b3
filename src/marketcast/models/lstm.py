"""The stacked-LSTM forecaster: scaling and windows from WindowTransform, the network from
:mod:`marketcast.nn.network`, the loop from :mod:`marketcast.nn.train`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from marketcast.calendar import next_trading_days
from marketcast.config import Config, ModelConfig, SplitConfig, TrainConfig
from marketcast.data import validate_prices
from marketcast.data.load import frame_from_pandas
from marketcast.data.readers import normalize_name
from marketcast.errors import ConfigError, DataError
from marketcast.models.base import BaseForecaster
from marketcast.models.lstm_numpy import NumpyLSTMForecaster
from marketcast.models.windows import WindowTransform, pool_series
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import Callback, Checkpoints, fit_network

# Windows per forward pass at prediction time: bounds memory on long test periods.
PREDICT_CHUNK = 4096


class LSTMForecaster(BaseForecaster, BaseEstimator):
    """Stacked LSTM on a window of past days, with scikit-learn's estimator conventions.

    The constructor only stores its keyword arguments (``get_params``/``set_params`` and
    ``sklearn.base.clone`` work); ``fit`` learns ``net_``, ``transform_``, ``history_`` and
    ``best_epoch_``. Parameters are those of ``[model]`` and ``[train]`` in the config
    (``epochs`` is ``train.max_epochs``: an upper bound, early stopping usually ends sooner).
    ``val_fraction``: share of the last rows held out for early stopping when ``fit`` is
    given no ``n_val``.

    ``fit`` takes arrays, or pandas: a Series of prices indexed by date, or a DataFrame
    whose ``close`` column (else its first) is the target and whose other columns are
    features. pandas input is checked against the data contract as a file is, and then
    :meth:`predict` returns a DataFrame on the next NYSE sessions.
    """

    name = "lstm"
    # Multi-day recursive forecasts advance the LSTM state one day at a time instead of
    # re-reading a sliding window: ~6x faster (benchmarks/README.md), within a tested
    # tolerance of the reference (tests/test_models.py); False restores the sliding window.
    stateful = True

    def __init__(self, lookback: int = ModelConfig.lookback, horizon: int = ModelConfig.horizon,
                 layers: int = ModelConfig.layers, units: int = ModelConfig.units,
                 dropout: float = ModelConfig.dropout,
                 target_transform: str = ModelConfig.target_transform,
                 epochs: int = TrainConfig.max_epochs, batch_size: int = TrainConfig.batch_size,
                 learning_rate: float = TrainConfig.learning_rate,
                 patience: int = TrainConfig.patience, clip_norm: float = TrainConfig.clip_norm,
                 seed: int = TrainConfig.seed, lr_scaling: str = TrainConfig.lr_scaling,
                 warmup_steps: int = TrainConfig.warmup_steps,
                 val_fraction: float = SplitConfig.val_fraction):
        self.lookback, self.horizon, self.layers, self.units = lookback, horizon, layers, units
        self.dropout, self.target_transform = dropout, target_transform
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.clip_norm, self.seed = patience, clip_norm, seed
        self.lr_scaling, self.warmup_steps = lr_scaling, warmup_steps
        self.val_fraction = val_fraction

    @classmethod
    def from_config(cls, model: ModelConfig | None = None,
                    train: TrainConfig | None = None) -> LSTMForecaster:
        """An unfitted forecaster with the settings of ``[model]`` and ``[train]``."""
        train_params = dataclasses.asdict(train or TrainConfig())
        train_params["epochs"] = train_params.pop("max_epochs")
        # Where the network trains (Ray Train workers) is the orchestration's, not the
        # estimator's: fit_many takes it as its trainer.
        train_params.pop("workers", None)
        return cls(**dataclasses.asdict(model or ModelConfig()), **train_params)

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(self.lookback, self.horizon, self.layers, self.units, self.dropout,
                           self.target_transform)

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(batch_size=self.batch_size, max_epochs=self.epochs,
                           learning_rate=self.learning_rate, patience=self.patience,
                           clip_norm=self.clip_norm, seed=self.seed,
                           lr_scaling=self.lr_scaling, warmup_steps=self.warmup_steps)

    def fit(self, y, X=None, *, n_val: int | None = None, callback: Callback | None = None,
            checkpoints: Checkpoints | None = None, warm_start: LSTMForecaster | None = None):
        """Fit on one series: a panel of one (see :meth:`fit_many`), the same arithmetic.

        ``y`` (T,) prices, ``X`` (T, F-1) features or None; or pandas (see the class).
        The last ``n_val`` rows (default: ``val_fraction`` of them) validate.
        ``warm_start``: an earlier fit to continue from (see :meth:`fit_many`).
        """
        dates, names, y, X = as_arrays(y, X)
        if n_val is None:
            n_val = int(round(self.val_fraction * len(y)))
        warm = None if warm_start is None else [warm_start]
        (fitted,) = self.fit_many([(y, X, n_val)], callback, checkpoints, warm)
        self._set_fitted(fitted.net_, fitted.transform_, fitted.history_, fitted.best_epoch_,
                         y, X)
        self.n_features_in_ = 1 if X is None else 1 + np.shape(X)[1]
        self.last_date_ = None if dates is None else dates[-1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def predict(self, h: int, y=None, X=None):
        """The ``h`` days after the end of ``y`` (default: the data seen by ``fit``).

        A DataFrame indexed by the next ``h`` NYSE sessions (column ``y_hat``) after pandas
        data, an array (h,) after arrays.
        """
        self._check_fitted()
        last = getattr(self, "last_date_", None) if y is None else None
        if isinstance(y, pd.Series | pd.DataFrame):
            dates, _, y, X = as_arrays(y, X)
            last = dates[-1]
        y_hat = super().predict(h, y, X)
        if last is None:
            return y_hat
        return pd.DataFrame({"y_hat": y_hat}, index=next_trading_days(last, h))

    def fit_many(self, series: Sequence[tuple[np.ndarray, np.ndarray | None, int]],
                 callback: Callback | None = None, checkpoints: Checkpoints | None = None,
                 warm_start: Sequence[LSTMForecaster] | None = None,
                 trainer: Callable = fit_network) -> list[LSTMForecaster]:
        """One network trained on the windows of every series; one fitted forecaster each.

        ``series`` holds ``(y, X, n_val)`` per series, as :meth:`fit` takes them. Each series
        is scaled by its own transform, fitted on its own training rows (all but the last
        ``n_val``); early stopping watches the pooled validation windows. The forecasters
        share the network and differ in their transforms and remembered last rows.

        ``warm_start`` (one fitted forecaster per series, sharing a network: an earlier
        fit's) makes this a warm refit: training starts from their network's weights (a
        fresh optimizer), and each series keeps its transform instead of refitting the
        scaler. The weights were learned on inputs scaled that way, so the inputs keep their
        meaning for them; refitting the scalers would shift every input under the weights
        whenever a new extreme return entered the training rows. Those scalers were fitted
        on rows before the earlier fit's cutoff, so nothing after this fit's rows is seen.
        Epochs and patience are this model's ``train`` (a warm refit passes smaller ones).

        ``trainer`` trains the network; it takes the arguments of
        :func:`~marketcast.nn.train.fit_network` (data-parallel training on Ray:
        :func:`marketcast.scale.train.ray_trainer`).
        """
        m, train = self.model_config, self.train_config
        Config(model=m, train=train)  # the ranges of every setting, as for a config file
        if warm_start is not None and len(warm_start) != len(series):
            raise ValueError(f"warm_start has {len(warm_start)} forecasters for "
                             f"{len(series)} series")
        transforms = None if warm_start is None else [w.transform_ for w in warm_start]
        pooled = pool_series(series, m.lookback, m.horizon, m.target_transform, transforms)
        # Seeded for this fit alone: the caller's torch random state is put back afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train.seed)
            net = StackedLSTM(pooled.Z.shape[1], m.units, m.layers, m.dropout, m.horizon)
            if warm_start is not None:
                net.load_state_dict(warm_start[0].net_.state_dict())  # copies: theirs unchanged
            history, best_epoch = trainer(
                net, pooled.Z, pooled.train_cutoffs, pooled.val_cutoffs, m.lookback,
                m.horizon, train, callback, checkpoints,
            )
        fitted = []
        for transform, (y, X, _) in zip(pooled.transforms, series, strict=True):
            forecaster = type(self)(**self.get_params())
            forecaster._set_fitted(net, transform, history, best_epoch, y, X)
            fitted.append(forecaster)
        return fitted

    @classmethod
    def from_network(cls, net: StackedLSTM, transform: WindowTransform, history: list,
                     best_epoch: int, y, X=None, *, model: ModelConfig | None = None,
                     train: TrainConfig | None = None) -> LSTMForecaster:
        """A fitted forecaster from a trained network and a fitted transform, remembering
        the last rows of ``y`` (and ``X``) to forecast after them."""
        forecaster = cls.from_config(model, train)
        forecaster._set_fitted(net, transform, history, best_epoch, y, X)
        return forecaster

    def _set_fitted(self, net, transform, history, best_epoch, y, X) -> None:
        self.net_, self.transform_ = net, transform
        self.history_, self.best_epoch_ = history, best_epoch
        self._remember(y, X, rows=self.lookback + 1)

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
            "model": dataclasses.asdict(self.model_config),
            "train": dataclasses.asdict(self.train_config),
            "transform": self.transform_.to_dict(),
            "best_epoch": self.best_epoch_,
            "context_y": self.y_.tolist(),
            "context_X": None if self.X_ is None else self.X_.tolist(),
        }
        return tensors, meta

    def to_numpy(self) -> NumpyLSTMForecaster:
        """This fitted model as the numpy forecaster its saved run reloads as (what
        ``marketcast forecast`` and ``evaluate`` use): the same forecasts within float32
        rounding, bit for bit those of the reloaded folder."""
        return NumpyLSTMForecaster.from_state(*self.get_state())

    @classmethod
    def from_state(cls, tensors: dict, meta: dict) -> LSTMForecaster:
        model = cls.from_config(ModelConfig(**meta["model"]), TrainConfig(**meta["train"]))
        model.transform_ = WindowTransform.from_dict(meta["transform"])
        m = model.model_config
        model.net_ = StackedLSTM(model.transform_.n_features_, m.units, m.layers, m.dropout,
                                 m.horizon)
        # numpy arrays (a run folder's) or tensors (get_state's); copied, never shared
        model.net_.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in tensors.items()},
                                   strict=True)
        model.net_.eval()
        model.best_epoch_ = meta["best_epoch"]
        model.history_ = []
        model.y_ = np.asarray(meta["context_y"], dtype=np.float64)
        model.X_ = None if meta["context_X"] is None else np.asarray(meta["context_X"])
        return model


def as_arrays(y, X=None) -> tuple[pd.DatetimeIndex | None, list[str] | None, np.ndarray,
                                    np.ndarray | None]:
    """``dates, names, y, X`` from arrays (no dates, no names) or from pandas checked
    against the data contract: a Series (``X`` optional, pandas, on the same dates) or a
    DataFrame whose ``close`` column (else its first) is the target."""
    if not isinstance(y, pd.Series | pd.DataFrame):
        return None, None, np.asarray(y, dtype=np.float64), X
    if isinstance(y, pd.DataFrame):
        if X is not None:
            raise ConfigError("pass a DataFrame of target and features alone, or a Series "
                              "and X, not a DataFrame and X")
        frame = frame_from_pandas(y)
        if frame.empty or frame.shape[1] == 0:
            raise DataError("the DataFrame has no numeric column to forecast")
        target = "close" if "close" in frame.columns else str(frame.columns[0])
    else:
        target = "close" if y.name is None else normalize_name(y.name)
        frame = frame_from_pandas(y, target)
        if X is not None:
            frame = frame.join(frame_from_pandas(pd.DataFrame(X)).drop(
                columns=target, errors="ignore"), how="left")
    extra = [c for c in frame.columns if c != target]
    frame = validate_prices(frame, target=target, features=extra)
    X = frame[extra].to_numpy(np.float64) if extra else None
    return frame.index, [target, *extra], frame[target].to_numpy(np.float64), X
