"""marketcast: stacked-LSTM stock price forecasts, evaluated honestly.

The public API mirrors the CLI: :func:`load_prices` and :func:`summarize` (``marketcast
data``), :func:`download`, :func:`list_tickers`/:func:`list_store` and :func:`check_data`
(its subcommands), :func:`run`, :func:`backtest`, :func:`train`, :func:`evaluate`,
:func:`evaluate_run`, :func:`forecast` and :func:`run_global`, and the estimator
:class:`LSTMForecaster` (scikit-learn conventions; pandas in, pandas out);
``marketcast.scale.batch.batch``
and ``marketcast.scale.tune.tune`` back ``batch`` and ``tune``. Heavy modules (torch) load on
first use, so ``marketcast --help`` is quick.
"""

import importlib

from marketcast.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    MarketcastError,
    NotFittedError,
    StorageError,
    TrainingError,
)

__version__ = "0.1.0"

_LAZY = {
    "run": "marketcast.api",
    "train": "marketcast.api",
    "train_run": "marketcast.api",
    "evaluate": "marketcast.api",
    "evaluate_run": "marketcast.api",
    "forecast": "marketcast.api",
    "backtest": "marketcast.api",
    "run_global": "marketcast.api",
    "load_run": "marketcast.api",
    "LSTMForecaster": "marketcast.models",
    "Config": "marketcast.config",
    "load_config": "marketcast.config",
    "load_prices": "marketcast.data",
    "summarize": "marketcast.data",
    "check_data": "marketcast.data",
    "list_tickers": "marketcast.data",
    "list_store": "marketcast.data",
    "download": "marketcast.data",
}

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "MarketcastError",
    "NotFittedError",
    "StorageError",
    "TrainingError",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'marketcast' has no attribute {name!r}")
