"""The public Python API; each CLI command is one function here.

:mod:`~.single` trains, evaluates and forecasts one series, :mod:`~.panel` the global
model of many, :mod:`~.backtest` runs walk-forward evaluation, and :mod:`~.save` writes
their run folders. Each loads on first use: ``forecast`` then imports neither the
backtest's statistics nor torch.
"""

import importlib

_LAZY = {
    "BacktestResult": "backtest", "backtest": "backtest",
    "GlobalEvaluation": "panel", "GlobalRunResult": "panel", "evaluate_global": "panel",
    "run_global": "panel",
    "write_run": "save",
    "Evaluation": "single", "RunResult": "single", "Trained": "single", "evaluate": "single",
    "evaluate_run": "single", "forecast": "single", "forecast_tickers": "single",
    "load_run": "single", "run": "single", "train": "single", "train_run": "single",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'marketcast.api' has no attribute {name!r}")
    module = importlib.import_module(f"marketcast.api.{_LAZY[name]}")
    # Importing a submodule binds its name here (api.backtest the module); the function of
    # that name takes its place, as an eager `from ... import backtest` would do.
    names = {n: getattr(module, n) for n, where in _LAZY.items() if where == _LAZY[name]}
    globals().update(names)
    return names[name]
