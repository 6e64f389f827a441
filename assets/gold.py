"""Gold assets: features and targets per (symbol, hour)."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from assets.silver import SILVER_CANDLES_KEY
from warehouse.features import feature_spec_markdown
from warehouse.refresh import refresh_gold_features

GOLD_FEATURES_KEY = dg.AssetKey(["gold", "features"])


@dg.asset(
    key=GOLD_FEATURES_KEY,
    deps=[SILVER_CANDLES_KEY],
    group_name="gold",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
)
def gold_features(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Compute the point-in-time features and forward targets of every (symbol, hour)."""
    report = refresh_gold_features(context.resources.lake.lake())
    return dg.MaterializeResult(
        metadata={**report.to_dict(), "feature_spec": dg.MetadataValue.md(feature_spec_markdown())}
    )
