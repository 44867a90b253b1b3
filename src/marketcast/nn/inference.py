"""The stacked LSTM's inference in numpy: forecasts from saved weights without torch.

:class:`NumpyLSTM` reads the weights :class:`marketcast.nn.network.StackedLSTM` saves, as
numpy arrays (``safetensors.numpy``), and computes what the network computes in eval mode
(no dropout): per layer ``k``, ``lstm.weight_ih_l{k}`` (4H, I), ``lstm.weight_hh_l{k}``
(4H, H), ``lstm.bias_ih_l{k}`` and ``lstm.bias_hh_l{k}`` (4H), gates in PyTorch's order
i, f, g, o::

    i, f, o = sigmoid(.)   g = tanh(.)   of   x W_ih^T + b_ih + h W_hh^T + b_hh
    c' = f c + i g         h' = o tanh(c')

then ``head.weight`` (O, H) and ``head.bias`` (O) on the last hidden state. Arithmetic in
float32 like the network's, so the two agree to float32 rounding (tests/test_inference.py).
"""

from __future__ import annotations

import numpy as np

PREFIX = "lstm.weight_ih_l"


class NumpyLSTM:
    """The network of a saved ``StackedLSTM`` state dict, for forecasts only."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        """Raises ValueError when ``tensors`` is not a StackedLSTM state dict."""
        layers = sum(1 for k in tensors if k.startswith(PREFIX))
        expected = {f"lstm.{name}_l{k}" for k in range(layers)
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        expected |= {"head.weight", "head.bias"}
        if not layers or set(tensors) != expected:
            raise ValueError(f"weights {sorted(tensors)} are not those of a stacked LSTM")
        u = self.units = tensors["lstm.weight_hh_l0"].shape[1]
        self.n_features = inputs = tensors["lstm.weight_ih_l0"].shape[1]
        # Gate rows reordered to i, f, o, g (the three sigmoids side by side), and the
        # sigmoid rows halved: sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh over all 4H
        # pre-activations serves every gate (halving is exact in floating point).
        order = np.r_[0 : 2 * u, 3 * u : 4 * u, 2 * u : 3 * u]
        scale = np.r_[np.full(3 * u, 0.5), np.ones(u)].astype(np.float32)
        self.w_ih, self.w_hh, self.b = [], [], []
        for k in range(layers):
            w_ih, w_hh = tensors[f"lstm.weight_ih_l{k}"], tensors[f"lstm.weight_hh_l{k}"]
            b = tensors[f"lstm.bias_ih_l{k}"] + tensors[f"lstm.bias_hh_l{k}"]
            if w_ih.shape != (4 * u, inputs) or w_hh.shape != (4 * u, u) or b.shape != (4 * u,):
                raise ValueError(f"layer {k}'s weights have inconsistent shapes")
            self.w_ih.append(np.ascontiguousarray(w_ih[order].T * scale, dtype=np.float32))
            self.w_hh.append(np.ascontiguousarray(w_hh[order].T * scale, dtype=np.float32))
            self.b.append((b[order] * scale).astype(np.float32))
            inputs = u
        self.head_w = np.ascontiguousarray(tensors["head.weight"].T, dtype=np.float32)
        self.head_b = np.asarray(tensors["head.bias"], dtype=np.float32)
        if self.head_w.shape[0] != u or self.head_b.shape != self.head_w.shape[1:]:
            raise ValueError("the head's weights do not fit the LSTM's units")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, O) forecasts of (B, L, F) windows: ``StackedLSTM.forward`` in eval mode."""
        h, _ = self._read(x)
        return h[-1] @ self.head_w + self.head_b  # -> (B, O)

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` one-day forecasts (B, steps), each fed back as the next input, the state
        advancing one day per step: ``StackedLSTM.forecast`` (needs F = O = 1)."""
        h, c = self._read(x)
        value = h[-1] @ self.head_w + self.head_b  # -> (B, 1)
        values = [value]
        for _ in range(steps - 1):
            inputs = value
            for k in range(len(self.b)):
                gates = inputs @ self.w_ih[k] + h[k] @ self.w_hh[k] + self.b[k]  # -> (B, 4H)
                h[k], c[k] = self._cell(gates, c[k])  # -> (B, H) each
                inputs = h[k]
            value = inputs @ self.head_w + self.head_b  # -> (B, 1)
            values.append(value)
        return np.concatenate(values, axis=1)  # -> (B, steps)

    def _read(self, x: np.ndarray) -> tuple[list, list]:
        """Every layer's final h and c (B, H) after reading the window, layer by layer."""
        # B batch, L lookback, F features, H hidden units
        out = np.asarray(x, dtype=np.float32)  # -> (B, L, F)
        batch, lookback = out.shape[:2]
        hs, cs = [], []
        for k in range(len(self.b)):
            projected = out @ self.w_ih[k] + self.b[k]  # -> (B, L, 4H): every day at once
            h = np.zeros((batch, self.units), dtype=np.float32)
            c = np.zeros_like(h)
            last = k == len(self.b) - 1
            outputs = None if last else np.empty((batch, lookback, self.units), np.float32)
            for t in range(lookback):
                h, c = self._cell(projected[:, t] + h @ self.w_hh[k], c)  # -> (B, H)
                if not last:  # the next layer's inputs
                    outputs[:, t] = h
            hs.append(h)
            cs.append(c)
            out = outputs  # -> (B, L, H)
        return hs, cs

    def _cell(self, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New (h, c) (..., H) from pre-activations (..., 4H) in the order i, f, o, g with
        i, f, o halved; ``gates`` is overwritten."""
        u = self.units
        t = np.tanh(gates, out=gates)
        sigmoids = t[..., : 3 * u]
        sigmoids *= 0.5
        sigmoids += 0.5
        c = t[..., u : 2 * u] * c + t[..., :u] * t[..., 3 * u :]
        return t[..., 2 * u : 3 * u] * np.tanh(c), c
