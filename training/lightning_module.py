"""The Lightning wrapper of :class:`PriceNetwork`: losses, optimiser and per-epoch metrics.

Loss per horizon: Huber on the scaled forward return (robust to the fat tails of crypto returns)
plus binary cross-entropy on the direction, both masked where a target is missing.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from training.config import TrainConfig
from training.network import PriceNetwork


class PriceModule(L.LightningModule):
    """Trains a :class:`PriceNetwork` on (window, scaled returns, directions) batches."""

    def __init__(self, n_features: int, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.network = PriceNetwork(
            n_features,
            len(config.horizons),
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout,
        )
        self.huber = nn.HuberLoss(reduction="none", delta=config.huber_delta)
        self.bce = nn.BCEWithLogitsLoss(reduction="none")

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(windows)

    def _losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        windows, returns, directions = batch
        predicted_return, logit = self.network(windows)
        mask = torch.isfinite(returns)
        safe_returns = torch.nan_to_num(returns)
        safe_directions = torch.nan_to_num(directions)
        count = mask.sum().clamp(min=1)
        regression = (self.huber(predicted_return, safe_returns) * mask).sum() / count
        classification = (self.bce(logit, safe_directions) * mask).sum() / count
        loss = regression + self.config.direction_loss_weight * classification
        hits = (((logit > 0).float() == safe_directions).float() * mask).sum() / count
        return loss, hits

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss, _ = self._losses(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        loss, hits = self._losses(batch)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        self.log("val_direction_accuracy", hits, on_epoch=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
