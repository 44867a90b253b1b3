"""The LSTM learns: the fast loop agrees with the plain reference loop."""

import numpy as np
import pytest
import torch

from marketcast.config import TrainConfig
from marketcast.nn.network import StackedLSTM
from marketcast.nn.reference import fit_reference
from marketcast.nn.train import fit_network

# Fast loop vs reference, measured on this test's data (torch 2.13, one thread; two threads
# give the fast loop's one-thread result bit for bit, tests/test_train.py): per-epoch losses
# within 1.0e-6 relative, weights within 2.4e-7 and predictions within 7.5e-8 absolute. The
# two halves add gradients in another order, so not bit-identical; the tolerances are 40-100x
# those gaps. Real differences in semantics are far outside them: clipping skipped, another
# shuffling seed or the last (short) batch left out each moved the losses by 30% or more.
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5

def features(n=400, seed=0):
    """Two scaled random walks (T, 2): column 0 is the target, column 1 an extra input."""
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.standard_normal((n, 2)), axis=0)
    return ((z - z.min(0)) / (z.max(0) - z.min(0))).astype(np.float32)


def test_fast_loop_agrees_with_the_reference_loop():
    Z, lookback, horizon = features(), 20, 2
    train_origins = np.arange(lookback - 1, 300, dtype=np.int64)
    val_origins = np.arange(300, len(Z) - horizon, dtype=np.int64)
    # lr 1e-2 so that the weights travel; clip_norm 0.1 clips about a third of the steps;
    # patience 3 stops the run in epoch 9 of 10 with the best weights of epoch 6.
    config = TrainConfig(max_epochs=10, batch_size=32, learning_rate=1e-2, patience=3,
                         clip_norm=0.1, seed=0)
    runs = []
    for fit in (fit_network, fit_reference):
        torch.manual_seed(0)
        net = StackedLSTM(2, 8, 2, 0.0, horizon)  # no dropout: the loops draw it differently
        history, best_epoch = fit(net, Z, train_origins, val_origins, lookback, horizon, config)
        windows = np.stack([Z[o - lookback + 1 : o + 1] for o in val_origins])
        with torch.no_grad():
            predictions = net(torch.from_numpy(windows))
        runs.append((history, best_epoch, net.state_dict(), predictions))
    (fast, fast_best, fast_weights, fast_pred), (ref, ref_best, ref_weights, ref_pred) = runs

    assert (len(fast), fast_best) == (len(ref), ref_best) == (9, 6)
    for f, r in zip(fast, ref, strict=True):
        assert f.train_loss == pytest.approx(r.train_loss, rel=LOSS_RTOL), f.epoch
        assert f.val_loss == pytest.approx(r.val_loss, rel=LOSS_RTOL), f.epoch
    for name, w in ref_weights.items():
        torch.testing.assert_close(fast_weights[name], w, rtol=0, atol=WEIGHT_ATOL)
    torch.testing.assert_close(fast_pred, ref_pred, rtol=0, atol=WEIGHT_ATOL)
