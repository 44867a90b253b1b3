"""The training step: a batch in two parts, dropout masks drawn beforehand, threads or not."""

import threading

import numpy as np
import pytest
import torch

from marketcast.config import TrainConfig
from marketcast.errors import TrainingError
from marketcast.nn.network import StackedLSTM
from marketcast.nn.train import _batch_gradients, _Pool, fit_network


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def series(n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.standard_normal(n)).astype(np.float32)
    return ((z - z.min()) / (z.max() - z.min()))[:, None]  # (T, 1)


def train(threads, dropout=0.2, epochs=3):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = StackedLSTM(1, 8, 2, dropout, 1)
    Z = series()
    cutoffs = np.arange(19, 250, dtype=np.int64)
    val = np.arange(250, 298, dtype=np.int64)
    config = TrainConfig(max_epochs=epochs, batch_size=32, patience=10, seed=0)
    history, best = fit_network(net, Z, cutoffs, val, 20, 1, config)
    return net.state_dict(), [(e.train_loss, e.val_loss) for e in history]


def test_two_threads_give_the_one_thread_result_bit_for_bit(torch_threads, monkeypatch):
    seen = set()
    forward = StackedLSTM.forward

    def recording(self, x, masks=None):
        if self.training:
            seen.add(threading.current_thread().name.split("_")[0])
        return forward(self, x, masks)

    monkeypatch.setattr(StackedLSTM, "forward", recording)
    weights_1, losses_1 = train(threads=1)
    assert seen == {"MainThread"}
    weights_2, losses_2 = train(threads=2)
    assert seen == {"MainThread", "marketcast-part"}  # the second half ran in the worker
    assert losses_1 == losses_2
    for name, w in weights_1.items():
        assert torch.equal(w, weights_2[name]), name


@pytest.mark.parametrize("training", [False, True])
def test_masked_forward_equals_the_single_nn_lstm_call(training):
    # With every unit kept, the layer-by-layer path is nn.LSTM's arithmetic exactly: outputs
    # and gradients (in training mode nn.LSTM's own dropout is off: p = 0 would be the same).
    torch.manual_seed(0)
    net = StackedLSTM(2, 8, 3, 0.2, 2)
    ones = [torch.ones(m.shape) for m in net.dropout_masks(5, 15)]
    net.train(training)
    net.dropout.p = net.lstm.dropout = 0.0  # nn.LSTM path without random dropout
    x = torch.randn(5, 15, 2)
    masked, plain = net(x, ones), net(x)
    assert torch.equal(masked, plain)
    if training:
        grads_masked = torch.autograd.grad(masked.sum(), list(net.parameters()))
        grads_plain = torch.autograd.grad(plain.sum(), list(net.parameters()))
        for a, b in zip(grads_masked, grads_plain, strict=True):
            assert torch.equal(a, b)


def test_parts_with_dropout_add_up_to_the_whole_masked_batch():
    torch.manual_seed(0)
    net = StackedLSTM(1, 8, 2, 0.3, 1)
    x, y = torch.randn(32, 12, 1), torch.randn(32, 1)
    masks = net.dropout_masks(32, 12)
    torch.nn.functional.mse_loss(net(x, masks), y).backward()
    whole = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    _batch_gradients(net, x, y, masks, _Pool(None))
    for a, b in zip(whole, (p.grad for p in net.parameters()), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_parts_add_up_to_the_whole_batch_gradient():
    torch.manual_seed(0)
    net = StackedLSTM(1, 8, 2, 0.0, 3)  # no dropout: the plain MSE of one call is the reference
    x, y = torch.randn(33, 12, 1), torch.randn(33, 3)
    loss = torch.nn.functional.mse_loss(net(x), y)
    loss.backward()
    whole = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    got = _batch_gradients(net, x, y, None, _Pool(None))  # parts of 17 and 16 windows
    assert got == pytest.approx(loss.item(), rel=1e-6)
    for a, b in zip(whole, (p.grad for p in net.parameters()), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_dropout_masks_keep_one_minus_p_scaled_up():
    torch.manual_seed(0)
    net = StackedLSTM(1, 50, 3, 0.2, 1)
    masks = net.dropout_masks(64, 100)
    assert [tuple(m.shape) for m in masks] == [(64, 100, 50), (64, 100, 50), (64, 50)]
    values = torch.cat([m.flatten() for m in masks])
    assert values.unique().tolist() == [0.0, pytest.approx(1 / 0.8)]
    assert (values == 0).float().mean().item() == pytest.approx(0.2, abs=0.005)
    assert StackedLSTM(1, 8, 1, 0.0, 1).dropout_masks(4, 5) is None


def test_nan_in_a_threaded_half_stops_before_the_weights_move(torch_threads, monkeypatch):
    torch.set_num_threads(2)
    forward = StackedLSTM.forward

    def diverging(self, x, masks=None):
        out = forward(self, x, masks)
        in_worker = threading.current_thread().name.startswith("marketcast-part")
        return out * float("nan") if self.training and in_worker else out

    monkeypatch.setattr(StackedLSTM, "forward", diverging)
    torch.manual_seed(0)
    net = StackedLSTM(1, 8, 1, 0.2, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    config = TrainConfig(max_epochs=2, batch_size=32, patience=10, seed=0)
    with pytest.raises(TrainingError, match="training loss became nan in epoch 1"):
        fit_network(net, series(), np.arange(19, 250, dtype=np.int64),
                    np.arange(250, 298, dtype=np.int64), 20, 1, config)
    assert torch.get_num_threads() == 2  # restored after the error
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
