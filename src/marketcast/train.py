"""The training loop: Adam on MSE, gradient clipping, early stopping with best-weights restore.

Data stay in tensors: windows are gathered per batch from a strided view of the (T, F)
inputs, so no copy of every window is ever made.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from marketcast.config import TrainConfig
from marketcast.errors import TrainingError


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float  # NaN without a validation period
    seconds: float


Callback = Callable[[EpochLog, int], None]  # (log, max_epochs)

# Validation windows per forward pass: bounds memory whatever the number of tickers.
VAL_CHUNK = 4096


def fit_network(
    net: nn.Module,
    Z: np.ndarray,
    train_origins: np.ndarray,
    val_origins: np.ndarray,
    lookback: int,
    horizon: int,
    config: TrainConfig,
    callback: Callback | None = None,
) -> tuple[list[EpochLog], int]:
    """Train ``net`` in place on windows of ``Z`` (T, F); return the loss history and best epoch.

    Origins are row indices of ``Z``; a pooled array of many tickers (see
    :mod:`marketcast.panel`) works as long as every origin's window and targets stay inside
    its own ticker's rows. The best epoch is the one with the lowest validation loss
    (weights restored to it), or the last epoch when there are no validation origins.
    """
    import time

    inputs = torch.from_numpy(np.ascontiguousarray(Z))
    windows = inputs.unfold(0, lookback, 1)  # (T-L+1, F, L) view
    targets = inputs[:, 0].unfold(0, horizon, 1)  # (T-h+1, h) view

    def batch(origins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return windows[origins - lookback + 1].transpose(1, 2), targets[origins + 1]

    train_idx = torch.from_numpy(train_origins)
    val_idx = torch.from_numpy(val_origins)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = nn.MSELoss()
    history: list[EpochLog] = []
    best_loss, best_epoch, best_state, waited = math.inf, 0, None, 0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            x, y = batch(order[start : start + config.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
            optimizer.step()
            total += loss.item() * len(x)
        train_loss = total / len(order)
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"training loss became {train_loss} in epoch {epoch}; lower --learning-rate "
                "or check the data for extreme values"
            )
        val_loss = math.nan
        if len(val_idx):
            net.eval()
            with torch.inference_mode():
                # In chunks: the pooled validation set of a global model has ~10^5 windows,
                # and one pass over all of them would hold every LSTM activation at once.
                val_sum = 0.0
                for start in range(0, len(val_idx), VAL_CHUNK):
                    x, y = batch(val_idx[start : start + VAL_CHUNK])
                    val_sum += nn.functional.mse_loss(net(x), y, reduction="sum").item()
                val_loss = val_sum / (len(val_idx) * horizon)
        log = EpochLog(epoch, train_loss, val_loss, time.perf_counter() - started)
        history.append(log)
        if callback is not None:
            callback(log, config.max_epochs)
        if not len(val_idx):
            best_epoch = epoch
            continue
        if val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch
