"""Sensors: request a bounded ingest run when a Kafka topic holds offsets bronze has not landed.

One sensor and one job per topic (``candles_lag_sensor`` -> ``ingest_candles`` ...). The run key
names the table and the offset each partition starts from, so a lag that has not moved never
requests a second run; the run lands at most :data:`MAX_RUN_RECORDS` records.
"""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import json

import dagster as dg
from dagster import SensorEvaluationContext

from assets.bronze import (
    BRONZE_CANDLES_KEY,
    BRONZE_FEAR_GREED_KEY,
    BRONZE_POSTS_KEY,
    BRONZE_TICKERS_KEY,
)
from pipelines.resources import KafkaResource, LakeResource
from warehouse.errors import MarketlakeError
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS

MAX_RUN_RECORDS = 1_000_000
"""Upper bound of one sensor-requested run; the next evaluation requests the rest."""


def lag_run_key(table: str, ranges: dict[int, tuple[int, int]]) -> str:
    """Run key of an ingest run: the table and, per partition, the offset range it was asked for.

    ``partition@start..end``: ``start`` is the stored offset + 1, ``end`` the broker's end
    offset when the sensor looked (exclusive; a lower bound on the embedded broker). The run
    lands from ``start`` until caught up, at most ``MAX_RUN_RECORDS`` records.
    """
    return table + ":" + ",".join(f"{p}@{s}..{e}" for p, (s, e) in sorted(ranges.items()))


def lag_run_request(
    topic: str, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """A run request for ``topic`` when Kafka holds offsets beyond the stored ones."""
    spec = TOPICS[topic]
    try:
        lag = kafka.lag(spec, lake.lake())
    except MarketlakeError as exc:
        return dg.SkipReason(f"cannot read the lag of {spec.topic}: {exc}")
    behind = {p: end - start for p, (start, end) in lag.items() if end > start}
    if not behind:
        return dg.SkipReason(f"{spec.topic} is caught up")
    next_offsets = {p: start for p, (start, _) in lag.items()}
    end_offsets = {p: end for p, (_, end) in lag.items()}
    key = lag_run_key(spec.table, dict(lag))
    asset = "__".join(spec.table.split("/"))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                run_config={"ops": {asset: {"config": {"max_records": MAX_RUN_RECORDS}}}},
                tags={
                    "marketlake/table": spec.table,
                    "marketlake/start_offsets": json.dumps(next_offsets),
                    "marketlake/end_offsets": json.dumps(end_offsets),
                    "marketlake/lag": str(sum(behind.values())),
                },
            )
        ],
        cursor=key,
    )


ingest_candles_job = dg.define_asset_job(
    "ingest_candles", selection=dg.AssetSelection.assets(BRONZE_CANDLES_KEY)
)
ingest_tickers_job = dg.define_asset_job(
    "ingest_tickers", selection=dg.AssetSelection.assets(BRONZE_TICKERS_KEY)
)
ingest_posts_job = dg.define_asset_job(
    "ingest_posts", selection=dg.AssetSelection.assets(BRONZE_POSTS_KEY)
)
ingest_fear_greed_job = dg.define_asset_job(
    "ingest_fear_greed", selection=dg.AssetSelection.assets(BRONZE_FEAR_GREED_KEY)
)


@dg.sensor(job=ingest_candles_job, minimum_interval_seconds=30)
def candles_lag_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Request an ingest run of market.candles when Kafka holds new offsets."""
    return lag_run_request(CANDLES, kafka, lake)


@dg.sensor(job=ingest_tickers_job, minimum_interval_seconds=30)
def tickers_lag_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Request an ingest run of market.tickers when Kafka holds new offsets."""
    return lag_run_request(TICKERS, kafka, lake)


@dg.sensor(job=ingest_posts_job, minimum_interval_seconds=30)
def posts_lag_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Request an ingest run of social.posts when Kafka holds new offsets."""
    return lag_run_request(POSTS, kafka, lake)


@dg.sensor(job=ingest_fear_greed_job, minimum_interval_seconds=60)
def fear_greed_lag_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """Request an ingest run of market.fear_greed when Kafka holds new offsets."""
    return lag_run_request(FEAR_GREED, kafka, lake)
