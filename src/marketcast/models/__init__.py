"""Model registry: every forecaster by name."""

from __future__ import annotations

from marketcast.config import Config
from marketcast.errors import ConfigError
from marketcast.models.arima import ARIMAForecaster
from marketcast.models.base import BaseForecaster
from marketcast.models.baselines import DriftForecaster, LinearForecaster, NaiveForecaster
from marketcast.models.lstm import LSTMForecaster

# Every registered model; a backtest runs them all by default.
MODELS = ("lstm", "naive", "drift", "linear", "arima")
# The models of `marketcast run`: the LSTM and the two baselines it must beat.
RUN_MODELS = ("lstm", "naive", "linear")


def make_model(name: str, config: Config) -> BaseForecaster:
    """A fresh, unfitted model ``name`` configured from ``config``."""
    m = config.model
    if name == "lstm":
        return LSTMForecaster(m, config.train)
    if name == "naive":
        return NaiveForecaster()
    if name == "drift":
        return DriftForecaster()
    if name == "linear":
        return LinearForecaster(m.lookback, m.horizon, m.target_transform)
    if name == "arima":
        return ARIMAForecaster()
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


__all__ = ["MODELS", "RUN_MODELS", "ARIMAForecaster", "BaseForecaster", "DriftForecaster",
           "LSTMForecaster", "LinearForecaster", "NaiveForecaster", "make_model"]
