"""One LSTM training scored on the validation period after every epoch, in price units.

The loop's own validation loss is a scaled MSE of the network's target (a scaled log return
by default), which says little to a reader; after each epoch this module also forecasts
every validation day one day ahead from the network as it is at that epoch (no best-weights
restore) and scores the forecasts in price units: RMSE and Theil's U, the RMSE over the
random walk's (tomorrow = today) on the same days. Only the rows before the test period are
ever passed in (see :func:`marketcast.scale.tune.validation_data`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from marketcast.config import Config
from marketcast.models.lstm import LSTMForecaster, pool_series
from marketcast.models.windows import Split
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import fit_network
from marketcast.pipeline.series import Series

# One row per epoch: the loop's losses (scaled MSE), the validation scores in price units,
# the epoch's training seconds, and whether training ends after it (its last epoch).
EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "val_rmse", "val_theils_u",
                 "epoch_seconds", "last"]

OnEpoch = Callable[[dict], None]  # called with each epoch's row; may raise to stop training


def fit_scored(seen: Series, split: Split, config: Config,
               on_epoch: OnEpoch | None = None) -> pd.DataFrame:
    """Train the configured LSTM on ``seen`` (train and validation rows only) and return one
    row per epoch (:data:`EPOCH_COLUMNS`).

    The arithmetic is that of :meth:`LSTMForecaster.fit` (same seed, network and loop, so the
    same losses); the network is kept at hand to forecast the validation days after each
    epoch. Forecasting runs in eval mode and draws no random numbers, so scoring does not
    change training. ``on_epoch`` may raise (a pruned trial) to stop after any epoch.
    """
    m, t = config.model, config.train
    pooled = pool_series([(seen.y, seen.X, split.n_val)], m.lookback, m.horizon,
                         m.target_transform)
    torch.manual_seed(t.seed)
    net = StackedLSTM(pooled.Z.shape[1], m.units, m.layers, m.dropout, m.horizon)
    forecaster = LSTMForecaster.from_network(net, pooled.transforms[0], [], 0, seen.y, seen.X,
                                             model=m, train=t)
    cutoffs = np.arange(split.n_train - 1, len(seen.y) - 1)  # one per validation day
    actual, naive = seen.y[cutoffs + 1], seen.y[cutoffs]
    naive_rmse = _rmse(actual - naive)
    rows: list[dict] = []
    best, waited = np.inf, 0

    def callback(log, max_epochs: int) -> None:
        nonlocal best, waited
        y_hat = forecaster.predict_cutoffs(seen.y, seen.X, cutoffs, 1)[:, 0]
        rmse = _rmse(actual - y_hat)
        # The loop's own stopping rule, to mark the epoch training ends after.
        best, waited = (log.val_loss, 0) if log.val_loss < best else (best, waited + 1)
        last = log.epoch >= max_epochs or waited >= t.patience
        rows.append({"epoch": log.epoch, "train_loss": log.train_loss,
                     "val_loss": log.val_loss, "val_rmse": rmse,
                     "val_theils_u": rmse / naive_rmse if naive_rmse > 0 else np.nan,
                     "epoch_seconds": log.seconds, "last": last})
        if on_epoch is not None:
            on_epoch(rows[-1])

    fit_network(net, pooled.Z, pooled.train_cutoffs, pooled.val_cutoffs, m.lookback,
                m.horizon, t, callback)
    return pd.DataFrame(rows, columns=EPOCH_COLUMNS)


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))
