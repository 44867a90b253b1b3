"""The plain training loop: the reference the fast loop of :mod:`marketcast.nn.train` is
tested against (tests/test_learning.py).

The same contract and semantics as :func:`marketcast.nn.train.fit_network`: Adam on the mean
squared error, gradient-norm clipping, shuffling from a generator seeded with ``config.seed``,
early stopping on the validation loss with best-weights restore, the same windows and targets.
Written the obvious way instead: every window copied out once, one ``net(x)`` call per batch
(the single ``nn.LSTM`` call, with its own dropout), no parts, no threads, no checkpoints.
Without dropout both loops compute the same thing and differ only in the order of
floating-point sums; with dropout they draw different random masks. For tests: it copies
every window, so it is no loop for a big panel.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from marketcast.config import TrainConfig
from marketcast.errors import TrainingError
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import EpochLog, learning_rate_at


def fit_reference(
    net: StackedLSTM,
    Z: np.ndarray,
    train_cutoffs: np.ndarray,
    val_cutoffs: np.ndarray,
    lookback: int,
    horizon: int,
    config: TrainConfig,
) -> tuple[list[EpochLog], int]:
    """Train ``net`` in place on windows of ``Z`` (T, F); return the loss history and best epoch.

    Cutoff ``o`` has inputs ``Z[o-lookback+1 .. o]`` (L, F) and targets ``Z[o+1 .. o+horizon, 0]``
    (O,). The best epoch has the lowest validation loss (weights restored to it), or is the
    last epoch when there are no validation cutoffs.
    """

    def windows(cutoffs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = [Z[o - lookback + 1 : o + 1] for o in cutoffs]  # n of (L, F)
        y = [Z[o + 1 : o + 1 + horizon, 0] for o in cutoffs]  # n of (O,)
        return torch.from_numpy(np.stack(x)), torch.from_numpy(np.stack(y))

    x_train, y_train = windows(train_cutoffs)
    validate = len(val_cutoffs) > 0
    x_val, y_val = windows(val_cutoffs) if validate else (None, None)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling only
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate_at(config, 0))
    step = 0
    history, best_loss, best_epoch, best_weights, waited = [], math.inf, 0, None, 0
    for epoch in range(1, config.max_epochs + 1):
        if waited >= config.patience:
            break
        started = time.perf_counter()
        net.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, step)
            step += 1
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(net(x_train[rows]), y_train[rows])
            _check_finite(loss.item(), "training", epoch)  # before it reaches the weights
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
            optimizer.step()
            total += loss.item() * len(rows)
        val_loss = math.nan
        if validate:
            net.eval()
            with torch.no_grad():
                val_loss = nn.functional.mse_loss(net(x_val), y_val).item()
            _check_finite(val_loss, "validation", epoch)
        history.append(EpochLog(epoch, total / len(order), val_loss,
                                time.perf_counter() - started))
        if not validate:
            best_epoch = epoch
        elif val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_weights = copy.deepcopy(net.state_dict())
        else:
            waited += 1
    if best_weights is not None:
        net.load_state_dict(best_weights)
    net.eval()
    return history, best_epoch


def _check_finite(loss: float, kind: str, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingError(f"{kind} loss became {loss} in epoch {epoch}")
