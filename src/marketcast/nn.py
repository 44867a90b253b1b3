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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B batch, L lookback, F features, H hidden units, O horizon
        out, _ = self.lstm(x)  # -> (B, L, H)
        last = self.dropout(out[:, -1])  # -> (B, H)
        return self.head(last)  # -> (B, O)
