"""Silver assets: cleaned, deduplicated, resampled tables."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from assets.bronze import BRONZE_CANDLES_KEY
from warehouse.refresh import refresh_silver_candles

SILVER_CANDLES_KEY = dg.AssetKey(["silver", "candles"])


@dg.asset(
    key=SILVER_CANDLES_KEY,
    deps=[BRONZE_CANDLES_KEY],
    group_name="silver",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
)
def silver_candles(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Deduplicate bronze candles, resample to 1h, sort and flag gaps."""
    report = refresh_silver_candles(context.resources.lake.lake())
    return dg.MaterializeResult(metadata=report.to_dict())
