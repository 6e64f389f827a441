"""Gold assets: features and targets per (symbol, hour), recomputed incrementally."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from assets.automation import follows_upstream
from assets.silver import (
    ERROR,
    SILVER_CANDLES_KEY,
    SILVER_FEAR_GREED_KEY,
    SILVER_POSTS_KEY,
    WARN,
    table_checks,
)
from warehouse.catalog import GOLD_FEATURES
from warehouse.checks import duplicate_keys, freshness, null_keys
from warehouse.features import LOOKBACK_HOURS, feature_columns, feature_spec_markdown
from warehouse.refresh import refresh_gold_features

GOLD_FEATURES_KEY = dg.AssetKey(["gold", "features"])


class GoldConfig(dg.Config):
    """``full``: rebuild every row instead of only the hours whose inputs changed."""

    full: bool = False


@dg.asset(
    key=GOLD_FEATURES_KEY,
    deps=[SILVER_CANDLES_KEY, SILVER_POSTS_KEY, SILVER_FEAR_GREED_KEY],
    group_name="gold",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    # candles are required; posts and Fear & Greed may never have arrived (optional inputs)
    automation_condition=follows_upstream(required=[SILVER_CANDLES_KEY]),
)
def gold_features(context: AssetExecutionContext, config: GoldConfig) -> dg.MaterializeResult:
    """Compute the point-in-time features and forward targets of every (symbol, hour)."""
    report = refresh_gold_features(context.resources.lake.lake(), full=config.full)
    return dg.MaterializeResult(
        metadata={
            **report.to_dict(),
            "features": len(feature_columns()),
            "lookback_hours": LOOKBACK_HOURS,
            "feature_spec": dg.MetadataValue.md(feature_spec_markdown()),
        }
    )


GOLD_CHECKS = table_checks(
    GOLD_FEATURES_KEY,
    GOLD_FEATURES,
    {
        "no_duplicate_keys": (
            lambda f: duplicate_keys(f, ["symbol", "ts"]),
            ERROR,
            "One row per (symbol, ts).",
        ),
        "no_null_keys": (
            lambda f: null_keys(f, ["symbol", "ts"]),
            ERROR,
            "No row has a null symbol or ts.",
        ),
        "freshness": (
            lambda f: freshness(f["ts"].max() if f.height else None),
            WARN,
            "The newest row is at most 3 hours old (warns on replayed history).",
        ),
    },
    columns=["symbol", "ts"],
)
