"""The public Python API; each CLI command is one function here.

:mod:`~.single` trains, evaluates and forecasts one series, :mod:`~.panel` the global
model of many, :mod:`~.backtest` runs walk-forward evaluation, and :mod:`~.save` writes
their run folders.
"""

from marketcast.api.backtest import BacktestResult, backtest
from marketcast.api.panel import GlobalEvaluation, GlobalRunResult, evaluate_global, run_global
from marketcast.api.save import write_run
from marketcast.api.single import (
    Evaluation,
    RunResult,
    Trained,
    evaluate,
    evaluate_run,
    forecast,
    forecast_tickers,
    load_run,
    run,
    train,
    train_run,
)

__all__ = [
    "BacktestResult", "Evaluation", "GlobalEvaluation", "GlobalRunResult", "RunResult",
    "Trained", "backtest", "evaluate", "evaluate_global", "evaluate_run", "forecast",
    "forecast_tickers",
    "load_run", "run", "run_global", "train", "train_run", "write_run",
]
