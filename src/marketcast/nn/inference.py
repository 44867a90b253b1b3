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
        units = tensors["lstm.weight_hh_l0"].shape[1]
        # sigmoid(x) = (1 + tanh(x / 2)) / 2: halving the i, f, o rows once here lets one
        # tanh over all 4H gates serve every gate of a step.
        scale = np.full((4 * units, 1), 0.5, dtype=np.float32)
        scale[2 * units : 3 * units] = 1.0
        self.w_ih, self.w_hh, self.b = [], [], []
        inputs = tensors["lstm.weight_ih_l0"].shape[1]
        for k in range(layers):
            w_ih, w_hh = tensors[f"lstm.weight_ih_l{k}"], tensors[f"lstm.weight_hh_l{k}"]
            b = tensors[f"lstm.bias_ih_l{k}"] + tensors[f"lstm.bias_hh_l{k}"]
            if w_ih.shape != (4 * units, inputs) or w_hh.shape != (4 * units, units) \
                    or b.shape != (4 * units,):
                raise ValueError(f"layer {k}'s weights have inconsistent shapes")
            self.w_ih.append(np.ascontiguousarray((w_ih * scale).T, dtype=np.float32))
            self.w_hh.append(np.ascontiguousarray((w_hh * scale).T, dtype=np.float32))
            self.b.append((b * scale[:, 0]).astype(np.float32))
            inputs = units
        self.head_w = np.ascontiguousarray(tensors["head.weight"].T, dtype=np.float32)
        self.head_b = np.asarray(tensors["head.bias"], dtype=np.float32)
        if self.head_w.shape[0] != units or self.head_b.shape != self.head_w.shape[1:]:
            raise ValueError("the head's weights do not fit the LSTM's units")
        self.units, self.n_features = units, tensors["lstm.weight_ih_l0"].shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, O) forecasts of (B, L, F) windows: ``StackedLSTM.forward`` in eval mode."""
        last, _, _ = self._read(x)
        return last @ self.head_w + self.head_b  # -> (B, O)

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` one-day forecasts (B, steps), each fed back as the next input, the state
        advancing one day per step: ``StackedLSTM.forecast`` (needs F = O = 1)."""
        last, h, c = self._read(x)
        value = last @ self.head_w + self.head_b  # -> (B, 1)
        values = [value]
        for _ in range(steps - 1):
            inputs = value
            for k in range(len(self.b)):
                gates = inputs @ self.w_ih[k] + h[k] @ self.w_hh[k] + self.b[k]  # -> (B, 4H)
                h[k], c[k] = self._cell(gates, c[k])
                inputs = h[k]
            value = inputs @ self.head_w + self.head_b  # -> (B, 1)
            values.append(value)
        return np.concatenate(values, axis=1)  # -> (B, steps)

    def _read(self, x: np.ndarray) -> tuple[np.ndarray, list, list]:
        """Run the window through every layer: the last layer's last output (B, H) and
        each layer's final h and c (B, H)."""
        # B batch, L lookback, F features, H hidden units
        out = np.asarray(x, dtype=np.float32)  # -> (B, L, F)
        batch, lookback = out.shape[:2]
        hs, cs = [], []
        for k in range(len(self.b)):
            projected = out @ self.w_ih[k] + self.b[k]  # -> (B, L, 4H): every day at once
            h = np.zeros((batch, self.units), dtype=np.float32)
            c = np.zeros_like(h)
            outputs = np.empty((batch, lookback, self.units), dtype=np.float32)
            for t in range(lookback):
                h, c = self._cell(projected[:, t] + h @ self.w_hh[k], c)  # -> (B, H)
                outputs[:, t] = h
            hs.append(h)
            cs.append(c)
            out = outputs  # -> (B, L, H)
        return out[:, -1], hs, cs

    def _cell(self, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New (h, c) from the pre-activations (B, 4H), i, f, o rows already halved."""
        u = self.units
        t = np.tanh(gates)
        s = t * 0.5 + 0.5  # sigmoid of the i, f, o gates (column block g is unused)
        c = s[:, u : 2 * u] * c + s[:, :u] * t[:, 2 * u : 3 * u]
        return s[:, 3 * u :] * np.tanh(c), c
