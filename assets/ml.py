"""ML assets: the price model trained on gold features, tracked and registered in MLflow."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from assets.gold import GOLD_FEATURES_KEY
from training.config import load_train_config
from training.jobs import train_from_lake

PRICE_MODEL_KEY = dg.AssetKey(["ml", "price_model"])


class PriceModelConfig(dg.Config):
    """Run-time knobs of the training asset; everything else comes from the YAML config."""

    config_path: str | None = None
    max_epochs: int | None = None


@dg.asset(
    key=PRICE_MODEL_KEY,
    deps=[GOLD_FEATURES_KEY],
    group_name="ml",
    required_resource_keys={"lake", "mlflow"},
    kinds={"pytorch", "mlflow"},
)
def price_model(context: AssetExecutionContext, config: PriceModelConfig) -> dg.MaterializeResult:
    """Train the LSTM-with-attention price model, evaluate it, register it, promote if better."""
    train_config = load_train_config(config.config_path, max_epochs=config.max_epochs)
    result = train_from_lake(
        context.resources.lake.lake(),
        train_config,
        tracking_uri=context.resources.mlflow.uri(),
        artifacts=context.resources.mlflow.artifacts(),
        progress=False,
    )
    summary = result.to_dict()
    return dg.MaterializeResult(
        metadata={
            "run_id": result.run_id,
            "model_version": result.model_version,
            "promoted": result.promoted,
            "champion_version": result.champion_version or -1,
            "val_direction_accuracy": result.val_score,
            "samples": summary["samples"],
            "test": dg.MetadataValue.json(summary["test"]),
        }
    )
