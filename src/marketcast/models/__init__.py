"""Model registry: every forecaster by name."""

from __future__ import annotations

from marketcast.config import Config
from marketcast.errors import ConfigError
from marketcast.models.base import BaseForecaster
from marketcast.models.baselines import LinearForecaster, NaiveForecaster
from marketcast.models.lstm import LSTMForecaster

MODELS = ("lstm", "naive", "linear")


def make_model(name: str, config: Config) -> BaseForecaster:
    """A fresh, unfitted model ``name`` configured from ``config``."""
    m = config.model
    if name == "lstm":
        return LSTMForecaster(m, config.train)
    if name == "naive":
        return NaiveForecaster()
    if name == "linear":
        return LinearForecaster(m.lookback, m.horizon, m.target_transform)
    raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


__all__ = ["MODELS", "BaseForecaster", "LSTMForecaster", "LinearForecaster",
           "NaiveForecaster", "make_model"]
