"""Silver assets: cleaned, deduplicated tables (candles, posts with sentiment, tickers, F&G).

A bronze table that does not exist yet (its topic was never landed) is not a failure: the asset
reports ``skipped`` in its metadata and its checks pass with the same note.
"""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

from collections.abc import Callable
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from assets.automation import follows_upstream
from assets.bronze import (
    BRONZE_CANDLES_KEY,
    BRONZE_FEAR_GREED_KEY,
    BRONZE_POSTS_KEY,
    BRONZE_TICKERS_KEY,
)
from training.sentiment import load_sentiment_model
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED, SILVER_POSTS, SILVER_TICKERS
from warehouse.checks import (
    CheckOutcome,
    duplicate_keys,
    freshness,
    gap_report,
    null_keys,
    ohlc_sanity,
    sentiment_coverage,
)
from warehouse.lake import open_table, read_table
from warehouse.refresh import (
    refresh_silver_candles,
    refresh_silver_fear_greed,
    refresh_silver_posts,
    refresh_silver_tickers,
)

SILVER_CANDLES_KEY = dg.AssetKey(["silver", "candles"])
SILVER_POSTS_KEY = dg.AssetKey(["silver", "posts"])
SILVER_TICKERS_KEY = dg.AssetKey(["silver", "tickers"])
SILVER_FEAR_GREED_KEY = dg.AssetKey(["silver", "fear_greed"])

TableCheck = Callable[[pl.DataFrame], CheckOutcome]


class SentimentConfig(dg.Config):
    """Which sentiment model scores new posts: ``auto`` (FinBERT if present), ``lexicon``, ..."""

    sentiment_model: str = "auto"
    batch_size: int = 256


@dg.asset(
    key=SILVER_CANDLES_KEY,
    deps=[BRONZE_CANDLES_KEY],
    group_name="silver",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    automation_condition=follows_upstream(),
)
def silver_candles(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Deduplicate bronze candles, resample to 1h, sort and flag gaps."""
    report = refresh_silver_candles(context.resources.lake.lake())
    return dg.MaterializeResult(metadata=report.to_dict())


@dg.asset(
    key=SILVER_POSTS_KEY,
    deps=[BRONZE_POSTS_KEY],
    group_name="silver",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    automation_condition=follows_upstream(),
)
def silver_posts(context: AssetExecutionContext, config: SentimentConfig) -> dg.MaterializeResult:
    """Deduplicate posts, normalise their symbols and score the new ones for sentiment."""
    model = load_sentiment_model(config.sentiment_model)
    context.log.info("scoring new posts with %s", model.name)
    report = refresh_silver_posts(
        context.resources.lake.lake(), model, batch_size=config.batch_size
    )
    return dg.MaterializeResult(metadata=report.to_dict())


@dg.asset(
    key=SILVER_TICKERS_KEY,
    deps=[BRONZE_TICKERS_KEY],
    group_name="silver",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    automation_condition=follows_upstream(),
)
def silver_tickers(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Deduplicate ticker snapshots and keep the latest one per symbol (silver/tickers_latest)."""
    report = refresh_silver_tickers(context.resources.lake.lake())
    return dg.MaterializeResult(metadata=report.to_dict())


@dg.asset(
    key=SILVER_FEAR_GREED_KEY,
    deps=[BRONZE_FEAR_GREED_KEY],
    group_name="silver",
    required_resource_keys={"lake"},
    kinds={"polars", "deltalake"},
    automation_condition=follows_upstream(),
)
def silver_fear_greed(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Keep one Fear & Greed value per day, the first published."""
    report = refresh_silver_fear_greed(context.resources.lake.lake())
    return dg.MaterializeResult(metadata=report.to_dict())


def _latest_ts(frame: pl.DataFrame) -> Any:
    return frame["ts"].max() if frame.height else None


def table_checks(
    key: dg.AssetKey,
    table: str,
    checks: dict[str, tuple[TableCheck, dg.AssetCheckSeverity, str]],
    *,
    columns: list[str] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """One asset check per entry: read ``table`` (only ``columns``; None: all) and check it.

    ERROR checks are blocking: when one fails, the assets downstream of ``key`` in the same run
    are not materialized (and the automation does not run them on that data later).
    """

    def build(
        name: str, check: TableCheck, severity: dg.AssetCheckSeverity, doc: str
    ) -> dg.AssetChecksDefinition:
        @dg.asset_check(
            asset=key,
            name=name,
            description=doc,
            required_resource_keys={"lake"},
            blocking=severity == dg.AssetCheckSeverity.ERROR,
        )
        def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            location = context.resources.lake.lake().location(table)
            if open_table(location) is None:
                return dg.AssetCheckResult(
                    passed=True,
                    description=f"{table} does not exist yet: nothing to check",
                    metadata={"skipped": f"{table} does not exist yet"},
                )
            outcome = check(read_table(location, columns=columns))
            return dg.AssetCheckResult(
                passed=outcome.passed,
                severity=severity,
                description=outcome.description,
                metadata=outcome.metadata,
            )

        return _check

    return [build(name, *spec) for name, spec in checks.items()]


ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN

SILVER_CHECKS = [
    *table_checks(
        SILVER_CANDLES_KEY,
        SILVER_CANDLES,
        {
            "no_duplicate_keys": (
                lambda f: duplicate_keys(f, ["symbol", "ts"]),
                ERROR,
                "No two bars share (symbol, ts).",
            ),
            "no_null_keys": (
                lambda f: null_keys(f, ["symbol", "ts"]),
                ERROR,
                "No bar has a null symbol or ts.",
            ),
            "ohlc_sanity": (ohlc_sanity, ERROR, "0 < low <= open, close <= high; volume >= 0."),
            "gap_report": (gap_report, WARN, "Gaps flagged in silver, per symbol (report only)."),
            "freshness": (
                lambda f: freshness(_latest_ts(f)),
                WARN,
                "The newest bar is at most 3 hours old (warns on replayed history).",
            ),
        },
    ),
    *table_checks(
        SILVER_POSTS_KEY,
        SILVER_POSTS,
        {
            "no_duplicate_keys": (
                lambda f: duplicate_keys(f, ["post_id"]),
                ERROR,
                "No two posts share a post_id.",
            ),
            "no_null_keys": (
                lambda f: null_keys(f, ["post_id", "ts"]),
                ERROR,
                "No post has a null post_id or ts.",
            ),
            "sentiment_coverage": (
                sentiment_coverage,
                ERROR,
                "At least 99% of posts carry a score and the model that made it.",
            ),
        },
    ),
    *table_checks(
        SILVER_TICKERS_KEY,
        SILVER_TICKERS,
        {
            "no_duplicate_keys": (
                lambda f: duplicate_keys(f, ["symbol", "ts"]),
                ERROR,
                "No two snapshots share (symbol, ts).",
            ),
            "no_null_keys": (
                lambda f: null_keys(f, ["symbol", "ts"]),
                ERROR,
                "No snapshot has a null symbol or ts.",
            ),
        },
    ),
    *table_checks(
        SILVER_FEAR_GREED_KEY,
        SILVER_FEAR_GREED,
        {
            "no_duplicate_keys": (
                lambda f: duplicate_keys(f, ["date"]),
                ERROR,
                "One value per day.",
            ),
            "no_null_keys": (
                lambda f: null_keys(f, ["date", "ts", "value"]),
                ERROR,
                "No row has a null date, ts or value.",
            ),
        },
    ),
]
