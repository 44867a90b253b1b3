"""The training loop: Adam on MSE, gradient clipping, early stopping with best-weights restore.

Data stay in tensors: windows are gathered per batch from a strided view of the (T, F)
inputs, so no copy of every window is ever made.

Each batch is computed in two halves whose gradients add up to the batch's (the loss is the
batch mean either way). When torch may use two or more threads, the halves run at once in
two threads, each on half of torch's threads (one each on two cores): 1.29x per epoch
against one ``nn.LSTM`` call on two threads at batch 64, and no op on two OpenMP threads
that could fall into the spin-wait collapse of a busy machine (benchmarks/README.md, section
4.10). The dropout masks are drawn before the halves start, so every training step, and
every validation pass (split the same way), gives the same result, bit for bit, on one
thread or two, and so does early stopping; prediction runs on torch's thread count.

Everything the loop carries from one epoch to the next lives in :class:`TrainState`; with a
checkpoint store (see :mod:`marketcast.nn.checkpoint`) it is saved after every epoch, together
with the weights, the optimizer and both random generators, so a killed run resumes exactly
where it stopped.

Data-parallel training (:mod:`marketcast.nn.parallel`) runs this same loop in every process;
a :class:`Shard` is the only difference: which rows of each epoch's order a process trains
on, how its gradients are averaged with the others' after each batch, and how losses are
summed across processes. The default shard is one process with all the rows, and changes nothing.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from marketcast.config import TrainConfig
from marketcast.errors import ArtifactError, TrainingError
from marketcast.nn.network import StackedLSTM
from marketcast.perf import tune_malloc


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float  # NaN without a validation period
    seconds: float


Callback = Callable[[EpochLog, int], None]  # (log, max_epochs)


class Checkpoints(Protocol):
    """Where the loop saves its state after each epoch and restores it from
    (:class:`marketcast.nn.checkpoint.CheckpointStore`)."""

    def restore(self, net: nn.Module, optimizer: torch.optim.Optimizer,
                generator: torch.Generator, inputs: tuple[np.ndarray, ...]) -> TrainState | None:
        ...

    def save(self, state: TrainState, net: nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> None:
        ...

# Validation windows per forward pass: bounds memory whatever the number of tickers.
VAL_CHUNK = 4096
# The batch size train.learning_rate is given for when train.lr_scaling scales it.
REFERENCE_BATCH = 64
# Parts each training batch is computed in (their gradients are summed); see the module note.
# Exactly two: with more, concurrent gradient additions could happen in any order and
# (a + b) + c is not always a + (b + c).
PARTS = 2


class Shard:
    """One process's share of training: here, the only process, with all of it.

    :class:`marketcast.nn.parallel.DataParallel` overrides every method; each default leaves
    the one-process arithmetic exactly as it is.
    """

    def start_epoch(self, epoch: int) -> None:
        """Called before the epoch's first batch."""

    def rows(self, cutoffs: torch.Tensor, equal: bool) -> torch.Tensor:
        """This process's cutoffs (``equal``: every process gets as many)."""
        return cutoffs

    def batch_size(self, size: int) -> int:
        """Rows of this process in a batch of ``size`` rows."""
        return size

    def average_gradients(self, net: nn.Module) -> None:
        """Make every gradient of ``net`` the average over the processes."""

    def sum(self, *values: float) -> tuple[float, ...]:
        """``values`` summed over the processes."""
        return values


ONE_PROCESS = Shard()


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
    net: StackedLSTM,
    Z: np.ndarray,
    train_cutoffs: np.ndarray,
    val_cutoffs: np.ndarray,
    lookback: int,
    horizon: int,
    config: TrainConfig,
    callback: Callback | None = None,
    checkpoints: Checkpoints | None = None,
    shard: Shard = ONE_PROCESS,
) -> tuple[list[EpochLog], int]:
    """Train ``net`` in place on windows of ``Z`` (T, F); return the loss history and best epoch.

    Cutoffs are row indices of ``Z``; a pooled array of many tickers (see
    :mod:`marketcast.pipeline.panel`) works as long as every cutoff's window and targets stay inside
    its own ticker's rows. The best epoch is the one with the lowest validation loss
    (weights restored to it), or the last epoch when there are no validation cutoffs. With
    ``checkpoints``, training continues from the last saved epoch and saves a checkpoint
    after every epoch. ``shard``: this process's share of data-parallel training (default:
    one process, all of it).
    """
    tune_malloc()  # once per process; see marketcast.perf and benchmarks/README.md
    inputs = torch.from_numpy(np.ascontiguousarray(Z))
    windows = inputs.unfold(0, lookback, 1)  # (T-L+1, F, L) view
    targets = inputs[:, 0].unfold(0, horizon, 1)  # (T-h+1, h) view

    def batch(cutoffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return windows[cutoffs - lookback + 1].transpose(1, 2), targets[cutoffs + 1]

    train_idx = torch.from_numpy(train_cutoffs)
    val_idx = torch.from_numpy(val_cutoffs)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling only
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate_at(config, 0))
    state = TrainState()
    if checkpoints is not None:
        inputs_key = (Z, train_cutoffs, val_cutoffs)
        state = checkpoints.restore(net, optimizer, generator, inputs_key) or state
        if state.epoch > config.max_epochs or state.waited > config.patience:
            raise ArtifactError(
                f"the checkpoint records epoch {state.epoch} (waited {state.waited}), beyond "
                f"the run's {config.max_epochs} epochs (patience {config.patience}); it was "
                "edited: delete the run's checkpoint folder and start again")
    with _parts_in_parallel() as pool:
        _train_epochs(net, batch, train_idx, val_idx, lookback, horizon, config, generator,
                      optimizer, state, pool, callback, checkpoints, shard)
    if state.best_weights is not None:
        net.load_state_dict(state.best_weights)
    net.eval()
    return state.history, state.best_epoch


def _train_epochs(net, batch, train_idx, val_idx, lookback, horizon, config, generator,
                  optimizer, state, pool, callback, checkpoints, shard) -> None:
    """Epochs until ``max_epochs`` or early stopping, carried in ``state``."""
    batch_size = shard.batch_size(config.batch_size)
    while state.epoch < config.max_epochs and state.waited < config.patience:
        epoch, started = state.epoch + 1, time.perf_counter()
        shard.start_epoch(epoch)
        net.train()
        # Every process draws the same order and trains on its rows of it.
        order = shard.rows(train_idx[torch.randperm(len(train_idx), generator=generator)],
                           equal=True)
        total = 0.0
        # Steps before this epoch's: every epoch has as many batches (rows are equal).
        first_step = (epoch - 1) * math.ceil(len(order) / batch_size)
        with pool.threads_per_part():
            for step, start in enumerate(range(0, len(order), batch_size), first_step):
                x, y = batch(order[start : start + batch_size])
                _set_learning_rate(optimizer, config, step)
                optimizer.zero_grad(set_to_none=True)
                masks = net.dropout_masks(len(x), lookback)
                loss = _batch_gradients(net, x, y, masks, pool)
                _check_finite(loss, "training", epoch)  # before it reaches the weights
                shard.average_gradients(net)
                nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
                optimizer.step()
                total += loss * len(x)
        total, windows = shard.sum(total, len(order))
        val_loss = math.nan
        if len(val_idx):
            errors, values = shard.sum(
                _validation_sse(net, batch, shard.rows(val_idx, equal=False), pool),
                len(val_idx) * horizon)
            val_loss = errors / values
            _check_finite(val_loss, "validation", epoch)
        log = EpochLog(epoch, total / windows, val_loss, time.perf_counter() - started)
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


def peak_learning_rate(config: TrainConfig) -> float:
    """``config.learning_rate`` scaled to ``config.batch_size`` as ``lr_scaling`` says."""
    ratio = config.batch_size / REFERENCE_BATCH
    factor = {"none": 1.0, "sqrt": math.sqrt(ratio), "linear": ratio}[config.lr_scaling]
    return config.learning_rate * factor


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based, over the whole training): the
    peak, reached linearly over the first ``warmup_steps`` steps."""
    peak = peak_learning_rate(config)
    return peak * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else peak


def _set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig,
                       step: int) -> None:
    """Warm-up: the rate of ``step`` (constant after ``config.warmup_steps``)."""
    if config.warmup_steps and step <= config.warmup_steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, step)


def _batch_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, masks, pool) -> float:
    """Accumulate the gradient of the batch's mean squared error in ``PARTS`` parts; return
    the loss. Each parameter receives exactly one gradient per part, and with two parts
    their sum is the same in either order, so threads cannot change the result."""
    scale = 1.0 / y.numel()

    def part(rows: slice) -> float:
        mask = None if masks is None else [m[rows] for m in masks]
        loss = (net(x[rows], mask) - y[rows]).square().sum() * scale
        loss.backward()
        return loss.item()

    return math.fsum(pool.map(part, _parts(len(x))))


def _parts(n: int) -> list[slice]:
    """``n`` rows in ``PARTS`` consecutive slices as equal as can be (no empty one)."""
    bounds = [round(i * n / PARTS) for i in range(PARTS + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class _Pool:
    """Runs the parts of a batch: the first in the calling thread, the others in threads."""

    def __init__(self, executor: ThreadPoolExecutor | None):
        self.executor = executor

    def map(self, fn, items: list) -> list:
        if self.executor is None or len(items) < 2:
            return [fn(item) for item in items]
        futures = [self.executor.submit(fn, item) for item in items[1:]]
        try:
            first = fn(items[0])
        finally:  # never leave a part running behind an error or an interrupt
            wait(futures)
        return [first, *(f.result() for f in futures)]

    @contextlib.contextmanager
    def threads_per_part(self) -> Iterator[None]:
        """Torch ops on each part's share of the threads while the parts run side by side
        (unchanged when serial)."""
        if self.executor is None:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(_threads_per_part(threads))
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _threads_per_part(threads: int) -> int:
    """One on two cores; on bigger machines each part gets its share (not measured here)."""
    return max(1, threads // PARTS)


def _init_part_thread(threads: int) -> None:
    # torch's thread count is partly per OS thread (OpenMP, MKL). Reading it first marks
    # this thread as initialised, so that its first parallel op does not reset it.
    torch.get_num_threads()
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _parts_in_parallel() -> Iterator[_Pool]:
    """Threads for the parts of a batch when torch may use two or more threads."""
    threads = torch.get_num_threads()
    if threads < 2:
        yield _Pool(None)
        return
    with ThreadPoolExecutor(PARTS - 1, thread_name_prefix="marketcast-part",
                            initializer=_init_part_thread,
                            initargs=(_threads_per_part(threads),)) as executor:
        yield _Pool(executor)


def _validation_sse(net: nn.Module, batch, val_idx: torch.Tensor, pool: _Pool) -> float:
    """Sum of squared errors over the validation windows, in chunks (the pooled validation set
    of a global model has ~10^5 windows, and one pass over all of them would hold every LSTM
    activation at once), each chunk in parts like a training batch: the same result on one
    thread or two."""
    net.eval()

    def part(rows: torch.Tensor) -> float:
        with torch.inference_mode():  # per thread
            x, y = batch(rows)
            return nn.functional.mse_loss(net(x), y, reduction="sum").item()

    total = 0.0
    with pool.threads_per_part():
        for start in range(0, len(val_idx), VAL_CHUNK):
            chunk = val_idx[start : start + VAL_CHUNK]
            total += math.fsum(pool.map(part, [chunk[rows] for rows in _parts(len(chunk))]))
    return total


def _check_finite(loss: float, kind: str, epoch: int) -> None:
    if not math.isfinite(loss):
        raise TrainingError(
            f"{kind} loss became {loss} in epoch {epoch}; lower --learning-rate or check the "
            "data for extreme values"
        )
