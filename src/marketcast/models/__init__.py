"""Model registry: every forecaster by name."""

from __future__ import annotations

from marketcast.config import Config
from marketcast.errors import ConfigError
from marketcast.models.arima import ARIMAForecaster
from marketcast.models.base import BaseForecaster
from marketcast.models.baselines import DriftForecaster, LinearForecaster, NaiveForecaster
from marketcast.models.garch import GARCHForecaster
from marketcast.models.lstm import LSTMForecaster

# Every registered model (`--models` chooses among them in a backtest).
MODELS = ("lstm", "naive", "drift", "linear", "arima", "garch")
# The models of `marketcast run`: the LSTM and the two baselines it must beat.
RUN_MODELS = ("lstm", "naive", "linear")


def make_model(name: str, config: Config) -> BaseForecaster:
    """A fresh, unfitted model ``name`` configured from ``config``."""
    m = config.model
    if name == "lstm":
        return LSTMForecaster.from_config(m, config.train)
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
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


__all__ = ["MODELS", "RUN_MODELS", "ARIMAForecaster", "BaseForecaster", "DriftForecaster",
           "GARCHForecaster", "LSTMForecaster", "LinearForecaster", "NaiveForecaster",
           "make_model"]
