"""The stacked LSTM network: layers of LSTM, dropout, a dense head to ``horizon`` outputs."""

from __future__ import annotations

import torch
from torch import nn


class StackedLSTM(nn.Module):
    def __init__(self, n_features: int, units: int, layers: int, dropout: float, horizon: int):
        super().__init__()
        # nn.LSTM applies dropout between its layers; the last layer's output gets its own.
        self.lstm = nn.LSTM(
            n_features, units, num_layers=layers, batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(units, horizon)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, O) forecasts of (B, L, F) windows.

        Without ``masks``, one ``nn.LSTM`` call (dropout from the global generator in training
        mode). With ``masks`` (from :meth:`dropout_masks`), the layers run one by one and the
        masks are the dropout: the same network and the same arithmetic (equal to the single
        call when every mask is 1), but the randomness is drawn beforehand, so that parts of a
        batch can run in threads and still give the same result (see marketcast.nn.train).
        """
        # B batch, L lookback, F features, H hidden units, O horizon
        if masks is None:
            out, _ = self.lstm(x)  # -> (B, L, H)
            last = self.dropout(out[:, -1])  # -> (B, H)
            return self.head(last)  # -> (B, O)
        lstm = self.lstm
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        out = x
        for k in range(lstm.num_layers):
            if k:
                out = out * masks[k - 1]  # -> (B, L, H)
            # torch.lstm is the function nn.LSTM calls: one layer, no dropout of its own.
            out = torch.lstm(out, (zeros, zeros), self._layer(k), True, 1, 0.0, self.training,
                             False, True)[0]  # -> (B, L, H)
        return self.head(out[:, -1] * masks[-1])  # -> (B, O)

    def _layer(self, k: int) -> list[torch.Tensor]:
        """Layer ``k``'s W_ih (4H, I), W_hh (4H, H), b_ih and b_hh (4H), gates i, f, g, o."""
        return [getattr(self.lstm, f"{name}_l{k}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def dropout_masks(self, batch: int, lookback: int) -> list[torch.Tensor] | None:
        """Dropout masks for one training batch, drawn from the global generator: one
        (B, L, H) per layer output fed to the next layer, then one (B, H) for the last
        output; entries 0 or 1 / (1 - p). None without dropout."""
        p = self.dropout.p
        if p == 0:
            return None
        units, layers = self.lstm.hidden_size, self.lstm.num_layers
        shapes = [(batch, lookback, units)] * (layers - 1) + [(batch, units)]
        return [(torch.rand(shape) >= p).float().mul_(1 / (1 - p)) for shape in shapes]

    def forecast(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` one-day forecasts, each fed back as the next input (needs F = O = 1).

        Stateful: the window is read once and each layer's (h, c) then advances one step per
        forecast, instead of re-reading a window slid over the forecasts. The state thus
        remembers the window's oldest day too, which a sliding window would have dropped;
        the difference is bounded by a test against the sliding-window reference. The steps
        are written out (one matmul per layer) because a one-step ``nn.LSTM`` call costs
        ~0.3 ms of overhead. Inference only: dropout is not applied.
        """
        # B batch, L lookback, H hidden units
        lstm, units = self.lstm, self.lstm.hidden_size
        out, (h, c) = lstm(x)  # -> (B, L, H); h, c (layers, B, H)
        h, c = list(h.unbind(0)), list(c.unbind(0))
        weights = [  # layer k: [W_ih W_hh]^T (I + H, 4H) and b_ih + b_hh, gates i, f, g, o
            (torch.cat([w_ih, w_hh], dim=1).T, b_ih + b_hh)
            for w_ih, w_hh, b_ih, b_hh in map(self._layer, range(lstm.num_layers))
        ]
        value = self.head(out[:, -1])  # -> (B, 1)
        values = [value]
        for _ in range(steps - 1):
            inputs = value
            for k, (w, b) in enumerate(weights):
                gates = torch.addmm(b, torch.cat([inputs, h[k]], dim=1), w)  # -> (B, 4H)
                s = gates.sigmoid()
                cell = gates[:, 2 * units : 3 * units].tanh()
                c[k] = s[:, units : 2 * units] * c[k] + s[:, :units] * cell  # -> (B, H)
                h[k] = s[:, 3 * units :] * c[k].tanh()  # -> (B, H)
                inputs = h[k]
            value = self.head(inputs)  # -> (B, 1)
            values.append(value)
        return torch.cat(values, dim=1)  # -> (B, steps)
