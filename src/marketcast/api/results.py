"""What the API functions return: fitted models with their data, and their scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast.api.display import Shown
from marketcast.api.inputs import MEMORY
from marketcast.config import Config
from marketcast.errors import ConfigError
from marketcast.models import BaseForecaster
from marketcast.models.windows import Split
from marketcast.pipeline.series import Series

if TYPE_CHECKING:  # scipy.stats and torch: not for `forecast`
    from marketcast.evaluation.adaptive import Intervals
    from marketcast.evaluation.strategy import Strategies
    from marketcast.models.lstm import LSTMForecaster


@dataclass
class Trained:
    """Fitted models with the data and split they were fitted on."""

    config: Config
    frame: pd.DataFrame
    series: Series
    split: Split
    models: dict[str, BaseForecaster]

    @property
    def lstm(self) -> LSTMForecaster:
        return self.models["lstm"]

    def history(self) -> pd.DataFrame:
        return pd.DataFrame([vars(e) for e in self.lstm.history_])


@dataclass
class Evaluation(Shown):
    """Test-period forecasts (long table) and their scores."""

    table: pd.DataFrame
    scores: pd.DataFrame
    scores_by_step: pd.DataFrame
    verdict: list[str] = field(default_factory=list)
    # LSTM out-of-sample residuals per step up to the forecast length (for intervals).
    residuals: pd.DataFrame | None = None
    # The LSTM against the random walk and the linear model, per step, with the DM test
    # behind each verdict sentence (metrics.compare).
    comparisons: pd.DataFrame | None = None
    # Trading rules on every model's test-period forecasts against buy-and-hold.
    strategy: Strategies | None = None
    # The test forecasts' intervals (calibrated sequentially) judged as a value-at-risk
    # model; None with --interval 0.
    intervals: Intervals | None = None
    # How the forecast fan is calibrated (pipeline.series.fan_settings); saved in model.json.
    fan: dict | None = None

    plots = ("test", "residuals", "strategy")

    def _title(self) -> str:
        days = self.table["date"].nunique()
        return f"Test-period evaluation: {days} days, models {', '.join(self.models)}"

    @property
    def models(self) -> list[str]:
        return list(self.table["model"].unique())

    def _verdict(self) -> list[str]:
        return list(self.verdict)

    def _scores(self) -> pd.DataFrame:
        return self.scores

    def _figure(self, name: str, target: str = "price"):
        return test_figure(name, self.table, self.strategy, target)


@dataclass
class RunResult(Shown):
    """What :func:`marketcast.run` returns: the fitted models, their test-period
    evaluation, the forecast after the last day, and the run folder if it was saved."""

    path: Path | None
    trained: Trained
    evaluation: Evaluation
    forecast: pd.DataFrame
    seconds: float

    plots = ("forecast", "test", "loss", "residuals", "strategy")

    def _title(self) -> str:
        d, series = self.trained.config.data, self.trained.series
        where = f"; saved in {self.path}" if self.path else "; not saved (write=True saves it)"
        source = "data in memory" if d.source == MEMORY else d.ticker or d.source
        return (f"marketcast run: {source}, {d.target}, {len(series.y)} days "
                f"{series.dates[0]:%Y-%m-%d} to {series.dates[-1]:%Y-%m-%d} "
                f"({self.seconds:.1f} s{where})")

    def _verdict(self) -> list[str]:
        return list(self.evaluation.verdict)

    def _scores(self) -> pd.DataFrame:
        return self.evaluation.scores

    def _figure(self, name: str):
        from marketcast.report import plots

        config, series = self.trained.config, self.trained.series
        if name == "forecast":
            history = pd.Series(series.y, index=series.dates)
            return plots.plot_forecast(history, self.forecast, config.data.target,
                                       level=config.forecast.interval or None)
        if name == "loss":
            return plots.plot_loss(self.trained.history(), self.trained.lstm.best_epoch_)
        return test_figure(name, self.evaluation.table, self.evaluation.strategy,
                           config.data.target)


def test_figure(name: str, table: pd.DataFrame, strategy: Strategies | None,
                target: str = "price", focus: str = "lstm"):
    """The plots of a long forecast table (``model, date, step, y, y_hat``): ``test``
    (one-day-ahead forecasts against the outcome), ``residuals`` (of ``focus`` beside the
    random walk's) and ``strategy`` (equity and drawdown of the first trading rule)."""
    from marketcast.report import plots

    if name == "test":
        return plots.plot_test(plots.one_step_wide(table), target)
    if name == "residuals":
        focus = focus if focus in set(table["model"]) else str(table["model"].iloc[0])
        return plots.plot_residuals(plots.one_step_residuals(table, focus), focus, target)
    if strategy is None:
        raise ConfigError("no trading strategy was scored here (it needs --stride 1)")
    rules = strategy.table.loc[strategy.table["model"] != "buy_and_hold", "rule"]
    return plots.plot_strategy(strategy.table, str(rules.iloc[0]))
