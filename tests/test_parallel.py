"""Data-parallel training's share of the loop (marketcast.nn.parallel), in a one-process
gloo group on a file store: no Ray, no network."""

import numpy as np
import pytest
import torch
import torch.distributed as dist

from marketcast.config import TrainConfig
from marketcast.nn.network import StackedLSTM
from marketcast.nn.parallel import DataParallel, gradient_bytes
from marketcast.nn.train import fit_network


@pytest.fixture
def group(tmp_path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1),
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def train(shard=None):
    rng = np.random.default_rng(0)
    z = np.cumsum(rng.standard_normal(300)).astype(np.float32)
    Z = ((z - z.min()) / (z.max() - z.min()))[:, None]
    torch.manual_seed(0)
    net = StackedLSTM(1, 8, 2, 0.2, 1)
    config = TrainConfig(max_epochs=3, batch_size=32, seed=0)
    history, best = fit_network(net, Z, np.arange(19, 250), np.arange(250, 298), 20, 1, config,
                                **({"shard": shard(config.seed)} if shard else {}))
    return net.state_dict(), [(e.train_loss, e.val_loss) for e in history], best


def test_one_process_of_one_trains_exactly_as_the_plain_loop(group):
    weights, history, best = train()
    weights_dp, history_dp, best_dp = train(DataParallel)
    assert history_dp == history and best_dp == best
    for name, value in weights.items():
        assert torch.equal(weights_dp[name], value), name


def test_shares_of_an_order_are_equal_and_disjoint(group):
    shard = DataParallel(seed=0)
    shard.rank, shard.world = 1, 3  # as process 1 of 3 would see it
    order = torch.arange(100)
    assert shard.rows(order, equal=True).tolist() == list(range(1, 99, 3))  # 33 of 100
    assert len(shard.rows(order, equal=False)) == 33
    shard.rank = 0
    assert len(shard.rows(order, equal=True)) == 33 and shard.batch_size(64) == 22


def test_gradient_bytes_are_the_float32_parameters():
    net = StackedLSTM(1, 50, 3, 0.2, 1)
    # Layer 1: 4H (1 + H + 2) weights and biases; layers 2, 3: 4H (2H + 2); head H + 1.
    assert gradient_bytes(net) == 4 * (200 * 53 + 2 * 200 * 102 + 51) == 205_804
