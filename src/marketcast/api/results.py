"""What the API functions return: fitted models with their data, and their scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast.config import Config
from marketcast.models import BaseForecaster
from marketcast.models.windows import Split
from marketcast.pipeline.series import Series

if TYPE_CHECKING:  # scipy.stats and torch: not for `forecast`
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
class Evaluation:
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


@dataclass
class RunResult:
    path: Path
    trained: Trained
    evaluation: Evaluation
    forecast: pd.DataFrame
    seconds: float
