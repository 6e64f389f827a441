"""Sensors: request a bounded ingest run when a Kafka topic holds offsets bronze has not landed."""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import json

import dagster as dg
from dagster import SensorEvaluationContext

from assets.bronze import BRONZE_CANDLES_KEY
from pipelines.resources import KafkaResource, LakeResource
from warehouse.errors import MarketlakeError
from warehouse.topics import CANDLES, TOPICS

ingest_candles_job = dg.define_asset_job(
    "ingest_candles", selection=dg.AssetSelection.assets(BRONZE_CANDLES_KEY)
)


def lag_run_key(table: str, next_offsets: dict[int, int]) -> str:
    """Run key of an ingest run: the table and the offset each partition starts from."""
    return table + ":" + ",".join(f"{p}@{o}" for p, o in sorted(next_offsets.items()))


@dg.sensor(job=ingest_candles_job, minimum_interval_seconds=30)
def candles_lag_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Request an ingest run of market.candles when Kafka holds new offsets."""
    spec = TOPICS[CANDLES]
    try:
        lag = kafka.lag(spec, lake.lake())
    except MarketlakeError as exc:
        return dg.SkipReason(f"cannot read the lag of {spec.topic}: {exc}")
    behind = {p: end - start for p, (start, end) in lag.items() if end > start}
    if not behind:
        return dg.SkipReason(f"{spec.topic} is caught up")
    next_offsets = {p: start for p, (start, _) in lag.items()}
    key = lag_run_key(spec.table, next_offsets)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                tags={"marketlake/start_offsets": json.dumps(next_offsets)},
            )
        ],
        cursor=key,
    )
