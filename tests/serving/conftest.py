"""Serving fixtures: one small price model trained and registered once per session; a second
one beside it for the tests that follow the champion."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from training.config import TrainConfig
from training.registry import LoadedModel, load_registered
from training.train import train_price_model

GOLD_START = datetime(2024, 1, 1, tzinfo=UTC)
GOLD_SYMBOLS = ("AAAUSDT", "BBBUSDT")


def synthetic_gold(hours: int, seed: int = 0) -> pl.DataFrame:
    """Two symbols of random features and 1 h targets, hourly from GOLD_START."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in GOLD_SYMBOLS:
        returns = 0.01 * rng.normal(size=hours)
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": [GOLD_START + timedelta(hours=i) for i in range(hours)],
                    "return_1h": rng.normal(size=hours),
                    "rsi_14h": rng.normal(size=hours),
                    "target_return_1h": returns,
                    "target_direction_1h": (returns > 0).astype(np.int8),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


@pytest.fixture(scope="session")
def gold_frame() -> Callable[..., pl.DataFrame]:
    """:func:`synthetic_gold`: ``gold_frame(hours, seed=0)``."""
    return synthetic_gold


SMALL_MODEL = TrainConfig(horizons=(1,), sequence_length=6, hidden_size=8, max_epochs=1)
"""A 1 h model trained one epoch: seconds to train."""


def train_small_model(tracking_uri: str, artifacts: Path, *, seed: int = 0) -> int:
    """Train :data:`SMALL_MODEL` on ``synthetic_gold(300, seed)`` (features return_1h, rsi_14h)
    and register it; returns the new version (the champion if it is the first)."""
    result = train_price_model(
        synthetic_gold(300, seed=seed),
        SMALL_MODEL,
        feature_candidates=["return_1h", "rsi_14h"],
        tracking_uri=tracking_uri,
        artifacts=artifacts,
        progress=False,
    )
    return result.model_version


@pytest.fixture(scope="session")
def train_small() -> Callable[..., int]:
    """:func:`train_small_model`: ``train_small(tracking_uri, artifacts, *, seed=0)``."""
    return train_small_model


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tracking URI of a registry holding a 1 h model (features return_1h, rsi_14h) trained
    one epoch and registered as the champion."""
    tmp = tmp_path_factory.mktemp("serving-model")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    train_small_model(uri, tmp / "art")
    return uri


@pytest.fixture(scope="session")
def two_model_registry(model_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database file of a registry holding version 1 (the model of :func:`model_registry`)
    and version 2 (trained on other data: other numbers). Copy it before changing aliases."""
    tmp = tmp_path_factory.mktemp("two-models")
    db = tmp / "mlflow.db"
    shutil.copyfile(sqlite_path(model_registry), db)
    assert train_small_model(f"sqlite:///{db}", tmp / "art", seed=1) == 2
    return db


@pytest.fixture
def registry_copy(two_model_registry: Path, tmp_path: Path) -> str:
    """The tracking URI of a private copy of :func:`two_model_registry` (versions 1 and 2, the
    champion as training left it): a test may move its aliases freely."""
    db = tmp_path / "registry.db"
    shutil.copyfile(two_model_registry, db)
    return f"sqlite:///{db}"


def sqlite_path(tracking_uri: str) -> Path:
    """The database file of a ``sqlite:///`` tracking URI."""
    return Path(tracking_uri.removeprefix("sqlite:///"))


@pytest.fixture(scope="session")
def registered_model(model_registry: str) -> LoadedModel:
    """The champion of :func:`model_registry`, loaded from MLflow."""
    return load_registered(model_registry, TrainConfig().model_name)


@pytest.fixture(scope="session")
def fear_greed_days() -> pl.DataFrame:
    """Two days of silver Fear & Greed rows (40 "Fear", then 71 "Greed")."""
    return pl.DataFrame(
        {
            "date": [date(2023, 11, 13), date(2023, 11, 14)],
            "ts": [datetime(2023, 11, 13, tzinfo=UTC), datetime(2023, 11, 14, tzinfo=UTC)],
            "value": [40, 71],
            "classification": ["Fear", "Greed"],
            "source": ["alternative.me", "alternative.me"],
        }
    )
