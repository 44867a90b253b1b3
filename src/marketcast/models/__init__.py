"""Model registry: every forecaster by name.

``LSTMForecaster`` (which imports torch) loads on first use, so that forecasting from a
saved model (:func:`saved_lstm` with the numpy engine) never imports torch.
"""

from __future__ import annotations

from marketcast.config import Config
from marketcast.errors import ConfigError, shown
from marketcast.models.arima import ARIMAForecaster
from marketcast.models.base import BaseForecaster
from marketcast.models.baselines import DriftForecaster, LinearForecaster, NaiveForecaster
from marketcast.models.garch import GARCHForecaster
from marketcast.models.lstm_numpy import NumpyLSTMForecaster

# Every registered model (`--models` chooses among them in a backtest).
MODELS = ("lstm", "naive", "drift", "linear", "arima", "garch")
# The models of `marketcast run`: the LSTM and the two baselines it must beat.
RUN_MODELS = ("lstm", "naive", "linear")
# How a saved LSTM computes its forecasts: numpy (no torch import; the default for
# forecast and evaluate) or torch (the network as trained; agrees within float32 rounding).
ENGINES = ("numpy", "torch")


def make_model(name: str, config: Config) -> BaseForecaster:
    """A fresh, unfitted model ``name`` configured from ``config``."""
    m = config.model
    if name == "lstm":
        return _lstm_class().from_config(m, config.train)
    if name == "naive":
        return NaiveForecaster()
    if name == "drift":
        return DriftForecaster()
    if name == "linear":
        return LinearForecaster(m.lookback, m.horizon, m.target_transform)
    if name == "arima":
        return ARIMAForecaster()
    if name == "garch":
        return GARCHForecaster()
    raise ConfigError(f"unknown model {shown(name)}; choose from {', '.join(MODELS)}")


def saved_lstm(tensors: dict, meta: dict, engine: str = "numpy") -> BaseForecaster:
    """A fitted LSTM from saved weights and metadata (``LSTMForecaster.get_state``),
    forecasting with ``engine``; ValueError, KeyError or RuntimeError when they do not fit."""
    if engine == "numpy":
        return NumpyLSTMForecaster.from_state(tensors, meta)
    if engine == "torch":
        return _lstm_class().from_state(tensors, meta)
    raise ConfigError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


def _lstm_class():
    from marketcast.models.lstm import LSTMForecaster

    return LSTMForecaster


def __getattr__(name: str):
    if name == "LSTMForecaster":  # imports torch: on first use only
        return _lstm_class()
    raise AttributeError(f"module 'marketcast.models' has no attribute {name!r}")


__all__ = ["ENGINES", "MODELS", "RUN_MODELS", "ARIMAForecaster", "BaseForecaster",
           "DriftForecaster", "GARCHForecaster", "LSTMForecaster", "LinearForecaster",
           "NaiveForecaster", "NumpyLSTMForecaster", "make_model", "saved_lstm"]
