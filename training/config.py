"""The one configuration object of a price-model training job: frozen, validated, YAML-loadable."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warehouse.errors import ConfigError

MODEL_NAME = "marketlake-price"
"""The registered model name in the MLflow registry."""


class TrainConfig(BaseModel):
    """Everything that decides what a training run produces.

    The model pools all symbols (no symbol embedding): every feature is scale-free (returns,
    ratios, z-scores), so one model learns from every symbol's history and still applies to a
    symbol it never saw, which is what ``marketlake evaluate --file`` asks of it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = (1, 2, 4, 24)
    sequence_length: int = Field(48, ge=2, le=1024)
    hidden_size: int = Field(64, ge=4, le=1024)
    num_layers: int = Field(1, ge=1, le=4)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(10, ge=1)
    patience: int = Field(3, ge=1)
    huber_delta: float = Field(1.0, gt=0.0)
    direction_loss_weight: float = Field(1.0, ge=0.0)
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    min_feature_coverage: float = Field(0.9, gt=0.0, le=1.0)
    seed: int = 42
    num_threads: int | None = Field(None, ge=1)
    model_name: str = MODEL_NAME

    @model_validator(mode="after")
    def _check_horizons(self) -> TrainConfig:
        if not self.horizons or any(h <= 0 for h in self.horizons):
            raise ValueError("horizons must be a non-empty list of positive hours")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons repeat: {self.horizons}")
        return self

    @property
    def purge_hours(self) -> int:
        """The gap kept between train/validation/test: the longest horizon."""
        return max(self.horizons)


def load_train_config(path: str | Path | None = None, **overrides: object) -> TrainConfig:
    """Read a :class:`TrainConfig` from YAML (``None``: the defaults), then apply ``overrides``."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read training config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"training config {path} must be a mapping of settings")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid training config: {exc}") from exc
