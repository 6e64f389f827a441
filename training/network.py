"""The price network: an LSTM over a window of features, attention over its time steps, and two
heads per horizon (forward return and direction logit). Plain torch, so serving needs no Lightning.
"""

from __future__ import annotations

import torch
from torch import nn


class TemporalAttention(nn.Module):
    """Additive attention: a learned weight per time step, softmax over the window."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1)
        )

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(states).squeeze(-1), dim=1)
        context = torch.bmm(weights.unsqueeze(1), states).squeeze(1)
        return context, weights


class PriceNetwork(nn.Module):
    """LSTM with attention predicting, per horizon, a scaled forward return and a direction logit.

    Input: ``(batch, sequence_length, n_features)``. Output: two tensors ``(batch, n_horizons)``.
    """

    def __init__(
        self,
        n_features: int,
        n_horizons: int,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = TemporalAttention(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.return_head = nn.Linear(2 * hidden_size, n_horizons)
        self.direction_head = nn.Linear(2 * hidden_size, n_horizons)

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, _ = self.lstm(windows)
        context, _ = self.attention(states)
        summary = self.dropout(torch.cat([context, states[:, -1, :]], dim=1))
        return self.return_head(summary), self.direction_head(summary)
