"""Bronze assets: each Kafka topic landed into its Delta table, exactly once, with its checks.

One asset per topic (``bronze/candles``, ``bronze/tickers``, ``bronze/posts``,
``bronze/fear_greed``), each in the concurrency pool named after its table (one writer per
table), all built by :func:`bronze_asset` around the same landing code. Every materialization
reports offsets, rows, rejects, bytes, lag and the table version, and evaluates two checks:
the reject rate of the run and the freshness of what it landed.
"""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import time
from typing import Optional

import dagster as dg
from dagster import AssetExecutionContext

from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS, TopicSpec

MAX_REJECT_RATE = 0.05
"""The reject-rate check fails (as a warning) above 5 % of a run's records."""

MAX_FRESHNESS_S = 600.0
"""The freshness check fails (as a warning) when a run leaves lag behind, or when the newest
record it landed had waited more than 10 minutes in Kafka."""


class BronzeIngestConfig(dg.Config):
    """Bounds of one bronze run (the sensors pass ``max_records``)."""

    max_records: Optional[int] = None  # noqa: UP045 - Dagster config needs Optional


def bronze_key(spec: TopicSpec) -> dg.AssetKey:
    """The bronze asset key of a topic: its table path (``bronze/candles``)."""
    return dg.AssetKey(spec.table.split("/"))


def _key(topic: str) -> dg.AssetKey:
    return bronze_key(TOPICS[topic])


BRONZE_CANDLES_KEY = _key(CANDLES)
BRONZE_TICKERS_KEY = _key(TICKERS)
BRONZE_POSTS_KEY = _key(POSTS)
BRONZE_FEAR_GREED_KEY = _key(FEAR_GREED)


def check_results(key: dg.AssetKey, report: dict, now_s: float) -> list[dg.AssetCheckResult]:
    """The reject-rate and freshness checks of one ingest report (``IngestReport.to_dict()``)."""
    rate = float(report["reject_rate"])
    lag = sum(int(n) for n in dict(report["lag"]).values())
    newest = report["last_kafka_timestamp_ms"]
    age = None if newest is None else max(0.0, now_s - int(newest) / 1000)
    fresh = lag == 0 and (age is None or age <= MAX_FRESHNESS_S)
    return [
        dg.AssetCheckResult(
            asset_key=key,
            check_name="reject_rate",
            passed=rate <= MAX_REJECT_RATE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reject_rate": rate,
                "rejects": int(report["rejects"]),
                "records": int(report["records"]),
                "max_reject_rate": MAX_REJECT_RATE,
            },
        ),
        dg.AssetCheckResult(
            asset_key=key,
            check_name="freshness",
            passed=fresh,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "lag_records": lag,
                "newest_record_wait_s": -1.0 if age is None else round(age, 3),
                "max_wait_s": MAX_FRESHNESS_S,
            },
        ),
    ]


def bronze_asset(topic: str) -> dg.AssetsDefinition:
    """The bronze asset of ``topic``: land it until caught up (or ``max_records``)."""
    spec = TOPICS[topic]
    key = _key(topic)

    @dg.asset(
        key=key,
        group_name="bronze",
        required_resource_keys={"kafka", "lake"},
        pool=spec.table,
        kinds={"kafka", "deltalake"},
        description=f"{topic} landed into {spec.table}, exactly once, until caught up.",
        check_specs=[
            dg.AssetCheckSpec("reject_rate", asset=key, description="rejects <= 5 % of a run"),
            dg.AssetCheckSpec("freshness", asset=key, description="no lag left, no stale data"),
        ],
    )
    def _bronze(context: AssetExecutionContext, config: BronzeIngestConfig) -> dg.MaterializeResult:
        lake = context.resources.lake.lake()
        report = context.resources.kafka.land(TOPICS[topic], lake, max_records=config.max_records)
        context.log.info(
            "%s: landed %d rows and %d rejects in %d batches",
            topic,
            report.rows,
            report.rejects,
            report.batches,
        )
        summary = report.to_dict()
        return dg.MaterializeResult(
            metadata={
                "topic": topic,
                "rows": report.rows,
                "rejects": report.rejects,
                "reject_rate": report.reject_rate,
                "extra_fields": report.extra_fields,
                "bytes": report.bytes,
                "batches": report.batches,
                "table_version": report.table_version if report.table_version is not None else -1,
                "start_offsets": summary["start_offsets"],
                "end_offsets": summary["end_offsets"],
                "lag": summary["lag"],
                "seconds": report.seconds,
            },
            check_results=check_results(key, summary, time.time()),
        )

    return _bronze


bronze_candles = bronze_asset(CANDLES)
bronze_tickers = bronze_asset(TICKERS)
bronze_posts = bronze_asset(POSTS)
bronze_fear_greed = bronze_asset(FEAR_GREED)
