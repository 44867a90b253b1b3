"""Data-parallel training: one process's share of the loop of :mod:`marketcast.nn.train`.

Every process runs the same loop on the same data with the same seed. Each epoch they draw
the same shuffled order of the training cutoffs; process ``rank`` trains on
``order[rank::world]``, cut so that every process has as many rows (and so takes as many
steps: the gradient average is a collective that every process must join). A batch of
``batch_size`` rows is split across the processes (``ceil(batch_size / world)`` each), so an
optimizer step averages about as many windows as in one process and the number of steps per
epoch is the same. After each batch the gradients are averaged across the processes by one
all-reduce of all of them, flattened into one buffer (what ``DistributedDataParallel`` does
with its buckets, but once the batch's gradient is complete: the loop computes a batch in two
parts, each with its own backward pass, side by side in two threads when the process has two
or more CPUs, and DDP's per-backward hooks would average each part on its own and cannot
serve two backward passes at once). The training and validation losses are sums of squared
errors and counts all-reduced across the processes, so every process takes the same
early-stopping decision. The process group (gloo on CPU) is set up by the caller (Ray
Train).

Dropout: process 0 draws its masks from the generator a one-process run would use, so one
process gives exactly the weights of :func:`marketcast.nn.train.fit_network`; every other
process reseeds its generator at each epoch from (seed, rank, epoch), so that a run restored
from a checkpoint continues on the masks it would have drawn.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from marketcast.errors import TrainingError
from marketcast.nn.train import Shard

# Spreads the per-rank seeds far apart from each other and from the seed itself.
RANK_SEED_STRIDE = 1_000_003


class DataParallel(Shard):
    """The share of process ``dist.get_rank()`` of ``dist.get_world_size()``; every process
    starts from the same weights (:func:`same_weights`)."""

    def __init__(self, seed: int):
        if not dist.is_initialized():
            raise RuntimeError("data-parallel training needs a torch.distributed process group")
        self.rank, self.world, self.seed = dist.get_rank(), dist.get_world_size(), seed

    def start_epoch(self, epoch: int) -> None:
        if self.rank:
            torch.manual_seed(self.seed + RANK_SEED_STRIDE * (self.rank + self.world * epoch))

    def rows(self, cutoffs: torch.Tensor, equal: bool) -> torch.Tensor:
        stop = len(cutoffs) // self.world * self.world if equal else len(cutoffs)
        if equal and stop == 0:
            raise TrainingError(f"{len(cutoffs)} training windows cannot be shared by "
                                f"{self.world} training workers; use fewer workers")
        return cutoffs[self.rank : stop : self.world]

    def batch_size(self, size: int) -> int:
        return math.ceil(size / self.world)

    def average_gradients(self, net: nn.Module) -> None:
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        if self.world > 1:
            flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, *values: float) -> tuple[float, ...]:
        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        return tuple(total.tolist())


def same_weights(net: nn.Module) -> None:
    """Give every process the weights of process 0."""
    for value in net.state_dict().values():
        dist.broadcast(value, src=0)


def gradient_bytes(net: nn.Module) -> int:
    """Bytes of one gradient average: every trainable parameter as float32."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad) * 4
