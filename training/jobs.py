"""Training jobs that start from the lake: read the gold table at a version, train, register."""

from __future__ import annotations

import subprocess
from pathlib import Path

from training.config import TrainConfig
from training.train import TrainingResult, train_price_model
from warehouse.catalog import GOLD_FEATURES
from warehouse.errors import DataError
from warehouse.features import feature_columns
from warehouse.lake import Lake, open_table, read_table


def code_version() -> str | None:
    """The git commit of the working tree, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def train_from_lake(
    lake: Lake,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifacts: Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train on the current version of ``gold/features`` and record that version in MLflow."""
    location = lake.location(GOLD_FEATURES)
    table = open_table(location)
    if table is None:
        raise DataError("gold/features does not exist: run `marketlake materialize` first")
    version = table.version()
    gold = read_table(location, version=version)
    return train_price_model(
        gold,
        config,
        feature_candidates=feature_columns(),
        tracking_uri=tracking_uri,
        artifacts=artifacts,
        gold_version=version,
        code_version=code_version(),
        progress=progress,
    )
