"""Jobs that start from the lake: train, walk-forward evaluation, batch prediction, live accuracy.

Lightning is imported only by the jobs that train (inside them), so the prediction jobs stay light.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from training.config import MODEL_NAME, TrainConfig
from training.dataset import datetime_bounds
from training.predictions import (
    PREDICTION_SCHEMA,
    LiveAccuracy,
    batch_predictions,
    live_accuracy,
    served_live_accuracy,
    store_predictions,
)
from training.registry import CHAMPION, load_registered
from warehouse.catalog import GOLD_FEATURES, GOLD_PREDICTIONS, GOLD_SERVED_PREDICTIONS
from warehouse.errors import DataError
from warehouse.features import feature_columns
from warehouse.lake import Lake, open_table, read_table

WALK_FORWARD_EXPERIMENT = "marketlake-walk-forward"

if TYPE_CHECKING:
    from training.train import TrainingResult
    from training.walk_forward import WalkForwardConfig, WalkForwardResult


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


def read_gold(lake: Lake, *, version: int | None = None) -> tuple[pl.DataFrame, int]:
    """The gold feature table at ``version`` (``None``: the latest) and that version.

    Raises:
        DataError: the table does not exist yet.
    """
    location = lake.location(GOLD_FEATURES)
    table = open_table(location, version=version)
    if table is None:
        raise DataError("gold/features does not exist: run `marketlake materialize` first")
    version = table.version()
    return read_table(location, version=version), version


def train_from_lake(
    lake: Lake,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifacts: Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train on the current version of ``gold/features`` and record that version in MLflow."""
    from training.train import train_price_model

    gold, version = read_gold(lake)
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


@dataclass(frozen=True)
class PredictionReport:
    """What a batch prediction run wrote."""

    model_name: str
    model_version: int
    rows: int
    first_ts: str | None
    last_ts: str | None
    table_version: int | None
    gold_version: int

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def predict_from_lake(
    lake: Lake,
    *,
    tracking_uri: str,
    model_name: str = MODEL_NAME,
    selector: str = CHAMPION,
    since: datetime | None = None,
) -> PredictionReport:
    """Predict the gold hours the model ``selector`` has not predicted yet; store them idempotently.

    Args:
        lake: the lake holding ``gold/features`` and ``gold/predictions``.
        tracking_uri: the MLflow registry.
        model_name: the registered model; default ``marketlake-price``.
        selector: alias or version number; default ``champion``.
        since: the first hour to predict; ``None`` (default) continues from the earliest gold
            hour, over all symbols, after the last hour already stored for that symbol and this
            model version (everything on the first run). Hours of other symbols from there on
            are predicted again and replace their stored rows, so a symbol whose candles land
            late is never skipped and no prediction is stored twice.
    """
    loaded = load_registered(tracking_uri, model_name, selector)
    gold, gold_version = read_gold(lake)
    location = lake.location(GOLD_PREDICTIONS)
    rows = None
    if since is None and open_table(location) is not None:
        stored = read_table(
            location,
            columns=["model_name", "model_version", "symbol", "ts"],
            filters=(pl.col("model_name") == model_name)
            & (pl.col("model_version") == loaded.version),
        )
        since = first_unpredicted_hour(gold, stored)
        if since is None and not stored.is_empty():
            rows = pl.DataFrame(schema=PREDICTION_SCHEMA)  # every gold hour is predicted
    if rows is None:
        rows = batch_predictions(
            loaded.predictor,
            gold,
            model_name=model_name,
            model_version=loaded.version,
            since=since,
        )
    version = store_predictions(location, rows)
    bounds = None if rows.is_empty() else datetime_bounds(rows["ts"])
    return PredictionReport(
        model_name=model_name,
        model_version=loaded.version,
        rows=rows.height,
        first_ts=None if bounds is None else bounds[0].isoformat(),
        last_ts=None if bounds is None else bounds[1].isoformat(),
        table_version=version,
        gold_version=gold_version,
    )


def first_unpredicted_hour(gold: pl.DataFrame, stored: pl.DataFrame) -> datetime | None:
    """The earliest gold hour after its symbol's last stored prediction (``None``: none).

    Args:
        gold: gold rows (``symbol``, ``ts``).
        stored: the stored predictions of one model version (``symbol``, ``ts``).

    Returns:
        The first hour to predict from; a symbol with no stored prediction counts from its
        first gold hour. ``None`` when every symbol's gold ends at or before its last stored
        prediction.
    """
    last = stored.group_by("symbol").agg(pl.col("ts").max().alias("last_predicted"))
    pending = (
        gold.select("symbol", "ts")
        .join(last, on="symbol", how="left")
        .filter(pl.col("last_predicted").is_null() | (pl.col("ts") > pl.col("last_predicted")))
    )
    first = pending["ts"].min()
    return first if isinstance(first, datetime) else None


def live_accuracy_from_lake(lake: Lake) -> LiveAccuracy:
    """Score every stored prediction whose outcome the gold table now holds."""
    location = lake.location(GOLD_PREDICTIONS)
    if open_table(location) is None:
        raise DataError("gold/predictions does not exist: materialize ml/predictions first")
    gold, _ = read_gold(lake)
    return live_accuracy(read_table(location), gold)


def served_live_accuracy_from_lake(lake: Lake) -> LiveAccuracy | None:
    """:func:`served_live_accuracy` of ``gold/served_predictions`` against the latest gold.

    Returns:
        ``None`` when the service has not logged a prediction yet (no table).

    Raises:
        DataError: ``gold/features`` does not exist.
    """
    served = lake.location(GOLD_SERVED_PREDICTIONS)
    if open_table(served) is None:
        return None
    gold, _ = read_gold(lake)
    return served_live_accuracy(read_table(served), gold)


def walk_forward_from_lake(
    lake: Lake, config: WalkForwardConfig, *, progress: bool = False
) -> tuple[WalkForwardResult | None, int]:
    """Walk-forward evaluation on the current ``gold/features``; returns it and the version.

    The result is ``None`` when the table spans fewer hours than the folds need
    (``config.required_hours``): a young lake is not an error, and the caller says so.
    """
    from training.walk_forward import run_walk_forward

    gold, version = read_gold(lake)
    span = 0.0
    if gold.height:
        first, last = datetime_bounds(gold["ts"])
        span = (last - first) / timedelta(hours=1) + 1
    if span < config.required_hours:
        return None, version
    return run_walk_forward(gold, config, progress=progress), version


def log_walk_forward(
    result: WalkForwardResult,
    *,
    tracking_uri: str,
    artifacts: Path | None = None,
    gold_version: int | None = None,
) -> str:
    """Record a walk-forward report as an MLflow run of experiment ``marketlake-walk-forward``.

    Metrics are ``wf_{h}_{who}_{metric}`` for the pooled horizons; the whole report is the
    artifact ``walk_forward.json``. Returns the run id.
    """
    import math

    import mlflow

    from training.registry import configure_tracking

    configure_tracking(tracking_uri, artifacts)
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(WALK_FORWARD_EXPERIMENT)
    if experiment is None:
        location = (artifacts / "walk-forward").resolve().as_uri() if artifacts else None
        experiment_id = client.create_experiment(WALK_FORWARD_EXPERIMENT, location)
    else:
        experiment_id = experiment.experiment_id
    report = result.report
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags(
            {"gold_table_version": str(gold_version), "code_version": code_version() or "unknown"}
        )
        mlflow.log_params({"folds": len(report["folds"]), "test_hours": report["test_hours_total"]})
        for horizon, entry in report["horizons"].items():
            for who, metrics in [("model", entry["model"]), *entry["baselines"].items()]:
                mlflow.log_metrics(
                    {
                        f"wf_{horizon}_{who}_{k}": float(v)
                        for k, v in metrics.items()
                        if isinstance(v, int | float)
                        and not isinstance(v, bool)
                        and math.isfinite(v)
                    }
                )
        mlflow.log_dict(report, "walk_forward.json")
    return str(run.info.run_id)
