"""The training loop: Adam on MSE, gradient clipping, early stopping with best-weights restore.

Data stay in tensors: windows are gathered per batch from a strided view of the (T, F)
inputs, so no copy of every window is ever made. Everything the loop carries from one epoch
to the next lives in :class:`TrainState`; with a checkpoint store (see
:mod:`marketcast.checkpoint`) it is saved after every epoch, together with the weights, the
optimizer and both random generators, so a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from marketcast.config import TrainConfig
from marketcast.errors import TrainingError
from marketcast.perf import tune_malloc

if TYPE_CHECKING:
    from marketcast.checkpoint import CheckpointStore


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float  # NaN without a validation period
    seconds: float


Callback = Callable[[EpochLog, int], None]  # (log, max_epochs)

# Validation windows per forward pass: bounds memory whatever the number of tickers.
VAL_CHUNK = 4096


@dataclass
class TrainState:
    """What the loop carries between epochs (a checkpoint stores it with the weights)."""

    epoch: int = 0  # epochs completed
    history: list[EpochLog] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    waited: int = 0  # epochs since the validation loss last improved


def fit_network(
    net: nn.Module,
    Z: np.ndarray,
    train_origins: np.ndarray,
    val_origins: np.ndarray,
    lookback: int,
    horizon: int,
    config: TrainConfig,
    callback: Callback | None = None,
    checkpoints: CheckpointStore | None = None,
) -> tuple[list[EpochLog], int]:
    """Train ``net`` in place on windows of ``Z`` (T, F); return the loss history and best epoch.

    Origins are row indices of ``Z``; a pooled array of many tickers (see
    :mod:`marketcast.panel`) works as long as every origin's window and targets stay inside
    its own ticker's rows. The best epoch is the one with the lowest validation loss
    (weights restored to it), or the last epoch when there are no validation origins. With
    ``checkpoints``, training continues from the last saved epoch and saves a checkpoint
    after every epoch.
    """
    tune_malloc()  # once per process; see marketcast.perf and benchmarks/README.md
    inputs = torch.from_numpy(np.ascontiguousarray(Z))
    windows = inputs.unfold(0, lookback, 1)  # (T-L+1, F, L) view
    targets = inputs[:, 0].unfold(0, horizon, 1)  # (T-h+1, h) view

    def batch(origins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return windows[origins - lookback + 1].transpose(1, 2), targets[origins + 1]

    train_idx = torch.from_numpy(train_origins)
    val_idx = torch.from_numpy(val_origins)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling only
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = nn.MSELoss()
    state = TrainState()
    if checkpoints is not None:
        inputs_key = (Z, train_origins, val_origins)
        state = checkpoints.restore(net, optimizer, generator, inputs_key) or state
    while state.epoch < config.max_epochs and state.waited < config.patience:
        epoch, started = state.epoch + 1, time.perf_counter()
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            x, y = batch(order[start : start + config.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            _check_finite(loss.item(), "training", epoch)  # before it reaches the weights
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
            optimizer.step()
            total += loss.item() * len(x)
        val_loss = math.nan
        if len(val_idx):
            val_loss = _validation_loss(net, batch, val_idx, horizon)
            _check_finite(val_loss, "validation", epoch)
        log = EpochLog(epoch, total / len(order), val_loss, time.perf_counter() - started)
        state.epoch = epoch
        state.history.append(log)
        if not len(val_idx):
            state.best_epoch = epoch
        elif val_loss < state.best_loss:
            state.best_loss, state.best_epoch, state.waited = val_loss, epoch, 0
            state.best_weights = copy.deepcopy(net.state_dict())
        else:
            state.waited += 1
        if checkpoints is not None:
            checkpoints.save(state, net, optimizer, generator)
        if callback is not None:
            callback(log, config.max_epochs)
    if state.best_weights is not None:
        net.load_state_dict(state.best_weights)
    net.eval()
    return state.history, state.best_epoch


def _validation_loss(net: nn.Module, batch, val_idx: torch.Tensor, horizon: int) -> float:
    """Mean squared error over the validation windows, in chunks: the pooled validation set
    of a global model has ~10^5 windows, and one pass over all of them would hold every LSTM
    activation at once."""
    net.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(val_idx), VAL_CHUNK):
            x, y = batch(val_idx[start : start + VAL_CHUNK])
            total += nn.functional.mse_loss(net(x), y, reduction="sum").item()
    return total / (len(val_idx) * horizon)


def _check_finite(loss: float, kind: str, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingError(
            f"{kind} loss became {loss} in epoch {epoch}; lower --learning-rate or check the "
            "data for extreme values"
        )
