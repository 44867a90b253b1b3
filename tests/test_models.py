import numpy as np
import pytest
import torch

from marketcast.config import Config, ModelConfig, TrainConfig
from marketcast.errors import ConfigError, NotFittedError
from marketcast.models import MODELS, LinearForecaster, LSTMForecaster, NaiveForecaster, make_model

FAST = Config(model=ModelConfig(lookback=8, layers=2, units=6),
              train=TrainConfig(max_epochs=3, batch_size=16, patience=2))


def walk(n=160, seed=0):
    rng = np.random.default_rng(seed)
    return 50 * np.exp(np.cumsum(0.001 + 0.01 * rng.standard_normal(n)))


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(name):
    """Every registered model: unfitted error, shapes, finite positive prices, no refit."""
    y = walk()
    model = make_model(name, FAST)
    with pytest.raises(NotFittedError):
        model.predict(5)
    assert model.fit(y[:140], n_val=20) is model
    ahead = model.predict(5)
    assert ahead.shape == (5,) and np.all(np.isfinite(ahead)) and np.all(ahead > 0)
    cutoffs = np.array([130, 140, 150])
    batch = model.predict_cutoffs(y, None, cutoffs, 3)
    assert batch.shape == (3, 3)
    # A forecast from cutoff t equals predict() on the history up to t.
    np.testing.assert_allclose(batch[1], model.predict(3, y[:141]), rtol=1e-6)


def test_stateful_steps_match_nn_lstm_over_the_growing_window():
    """StackedLSTM.forecast's written-out cell is nn.LSTM: feeding each forecast back through
    nn.LSTM over the whole window plus the forecasts so far gives the same values."""
    model = LSTMForecaster.from_config(FAST.model, FAST.train).fit(walk(), n_val=20)
    net = model.net_
    x = torch.from_numpy(model.transform_.windows(
        model.transform_.inputs(model.y_), np.array([len(model.y_) - 1])).copy())
    with torch.inference_mode():
        stateful = net.forecast(x, 12)[0]
        seq, values = x, []
        for _ in range(12):
            values.append(net(seq)[0, 0])
            seq = torch.cat([seq, values[-1].reshape(1, 1, 1)], dim=1)  # grows, never slides
    np.testing.assert_allclose(stateful.numpy(), torch.stack(values).numpy(), rtol=1e-5,
                               atol=1e-6)


# Stated tolerance of the stateful 30-day forecast against the float32 sliding-window
# reference (LSTMForecaster.stateful = False): relative price difference at any step.
STATEFUL_RTOL = 0.005


@pytest.mark.parametrize("transform", ["log_return", "level"])
def test_stateful_forecast_within_tolerance_of_sliding_window(transform, monkeypatch):
    y = walk(400, seed=3)
    model = LSTMForecaster.from_config(
        ModelConfig(lookback=20, layers=2, units=16, target_transform=transform),
        TrainConfig(max_epochs=8, batch_size=32, patience=8)).fit(y[:300], n_val=50)
    cutoffs = np.arange(299, 399)
    stateful = model.predict_cutoffs(y, None, cutoffs, 30)
    monkeypatch.setattr(LSTMForecaster, "stateful", False)
    sliding = model.predict_cutoffs(y, None, cutoffs, 30)
    # Step 1 reads the same window either way.
    np.testing.assert_allclose(stateful[:, 0], sliding[:, 0], rtol=1e-6)
    np.testing.assert_allclose(stateful, sliding, rtol=STATEFUL_RTOL)
    assert not np.array_equal(stateful[:, 1:], sliding[:, 1:])  # two different paths ran


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'prophet'"):
        make_model("prophet", FAST)


def test_naive_repeats_last_value():
    y = np.array([1.0, 2.0, 3.5, 4.0])
    model = NaiveForecaster().fit(y)
    np.testing.assert_array_equal(model.predict(3), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(model.predict_cutoffs(y, None, np.array([1, 2]), 2),
                                  [[2.0, 2.0], [3.5, 3.5]])


def test_linear_matches_closed_form_ridge():
    """Level transform: scaled windows -> ridge with an unpenalised intercept, by hand."""
    y, lookback, alpha = walk(120), 5, 1e-3
    model = LinearForecaster(lookback, 1, "level", alpha=alpha).fit(y, n_val=0)
    lo, hi = y.min(), y.max()
    s = (y - lo) / (hi - lo)
    A = np.stack([s[t - lookback + 1 : t + 1] for t in range(lookback - 1, len(y) - 1)])
    b = s[lookback:]
    Am, bm = A - A.mean(0), b - b.mean()
    w = np.linalg.solve(Am.T @ Am + alpha * np.eye(lookback), Am.T @ bm)
    expected = (s[-lookback:] - A.mean(0)) @ w + b.mean()
    assert model.predict(1)[0] == pytest.approx(expected * (hi - lo) + lo, rel=1e-9)


def test_recursive_forecast_feeds_predictions_back():
    y = walk(120)
    model = LinearForecaster(5, 1, "log_return").fit(y)
    two = model.predict(2)
    one = model.predict(1)
    extended = np.append(y, one)
    assert two[1] == pytest.approx(model.predict(1, extended)[0], rel=1e-6)


def test_lstm_same_seed_same_weights_and_forecast():
    y = walk()
    a = LSTMForecaster.from_config(FAST.model, FAST.train).fit(y, n_val=20)
    b = LSTMForecaster.from_config(FAST.model, FAST.train).fit(y, n_val=20)
    np.testing.assert_array_equal(a.predict(10), b.predict(10))
    assert [e.train_loss for e in a.history_] == [e.train_loss for e in b.history_]


def test_lstm_state_round_trip_is_exact():
    y = walk()
    model = LSTMForecaster.from_config(FAST.model, FAST.train).fit(y, n_val=20)
    tensors, meta = model.get_state()
    again = LSTMForecaster.from_state(tensors, meta)
    np.testing.assert_array_equal(again.predict(30), model.predict(30))
    cutoffs = np.arange(100, 150)
    np.testing.assert_array_equal(again.predict_cutoffs(y, None, cutoffs, 1),
                                  model.predict_cutoffs(y, None, cutoffs, 1))


def test_lstm_early_stopping_restores_best_epoch():
    y = walk(200)
    train = TrainConfig(max_epochs=30, batch_size=16, patience=3, learning_rate=0.02)
    model = LSTMForecaster.from_config(FAST.model, train).fit(y, n_val=40)
    val = [e.val_loss for e in model.history_]
    assert model.best_epoch_ == int(np.argmin(val)) + 1
    assert len(val) <= 30
    if len(val) < 30:  # stopped early: exactly `patience` epochs after the best
        assert len(val) == model.best_epoch_ + 3


def test_extra_features_refuse_recursion_past_horizon():
    y = walk()
    X = np.random.default_rng(0).uniform(size=(len(y), 1))
    model = LinearForecaster(5, 1, "log_return").fit(y, X)
    assert model.predict(1).shape == (1,)
    with pytest.raises(ConfigError, match="needs future feature values"):
        model.predict(3)
