"""Bronze assets: Kafka topics landed into Delta, exactly once."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import dagster as dg
from dagster import AssetExecutionContext

from warehouse.catalog import BRONZE_CANDLES
from warehouse.topics import CANDLES, TOPICS

BRONZE_CANDLES_KEY = dg.AssetKey(["bronze", "candles"])


@dg.asset(
    key=BRONZE_CANDLES_KEY,
    group_name="bronze",
    required_resource_keys={"kafka", "lake"},
    pool=BRONZE_CANDLES,
    kinds={"kafka", "deltalake"},
)
def bronze_candles(context: AssetExecutionContext) -> dg.MaterializeResult:
    """Land market.candles into bronze/candles, exactly once, until the topic is caught up."""
    lake = context.resources.lake.lake()
    report = context.resources.kafka.land(TOPICS[CANDLES], lake)
    context.log.info(
        "landed %d rows and %d rejects in %d batches", report.rows, report.rejects, report.batches
    )
    return dg.MaterializeResult(
        metadata={
            "rows": report.rows,
            "rejects": report.rejects,
            "bytes": report.bytes,
            "batches": report.batches,
            "table_version": report.table_version if report.table_version is not None else -1,
            "start_offsets": report.to_dict()["start_offsets"],
            "end_offsets": report.to_dict()["end_offsets"],
            "seconds": report.seconds,
        }
    )
