"""Sensors: request a bounded ingest run when a Kafka topic holds offsets bronze has not landed.

One sensor and one job per topic (``candles_lag_sensor`` -> ``ingest_candles`` ...), built by
:func:`lag_sensors` for ``pipelines/definitions.py`` (running by default). The run key names the
table and the offset each partition starts from, so a lag that has not moved never requests a
second run; the run lands at most :data:`MAX_RUN_RECORDS` records. While the live lander of
``marketlake up`` runs (``up.json``), the sensors skip: it lands bronze itself.

The embedded broker reports a partition's end offset as the first offset of its last producer
batch + 1, so once a bounded run stops inside that batch the reported end is not beyond the
stored offsets although records wait there. When the reported offsets show no lag, the sensor
therefore reads from the stored offsets itself (:func:`records_beyond`, at most
:data:`PROBE_TIMEOUT_S`) before it says the topic is caught up.
"""

# No `from __future__ import annotations` here: Dagster reads the context and config
# annotations at definition time and does not resolve string annotations.

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster import SensorEvaluationContext
from kafka import TopicPartition
from kafka.errors import KafkaError

from assets.bronze import (
    BRONZE_CANDLES_KEY,
    BRONZE_FEAR_GREED_KEY,
    BRONZE_POSTS_KEY,
    BRONZE_TICKERS_KEY,
)
from pipelines.kafka_io import make_consumer
from pipelines.resources import KafkaResource, LakeResource
from pipelines.up_state import running_component
from warehouse.errors import BrokerError, MarketlakeError, OffsetsLostError
from warehouse.settings import load_settings
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS

if TYPE_CHECKING:  # dagster exports no public name for what define_asset_job returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

MAX_RUN_RECORDS = 1_000_000
"""Upper bound of one sensor-requested run; the next evaluation requests the rest."""

PROBE_TIMEOUT_S = 2.0
"""How long an evaluation that sees no lag in the reported end offsets waits for a record at
the stored offsets (the whole wait only when there is none)."""


def lag_run_key(table: str, ranges: dict[int, tuple[int, int]]) -> str:
    """Run key of an ingest run: the table and, per partition, the offset range it was asked for.

    ``partition@start..end``: ``start`` is the stored offset + 1, ``end`` the broker's end
    offset when the sensor looked, or one past the first record the sensor found at ``start``
    when the broker reported no more (exclusive; a lower bound on the embedded broker). The run
    lands from ``start`` until caught up, at most ``MAX_RUN_RECORDS`` records.
    """
    return table + ":" + ",".join(f"{p}@{s}..{e}" for p, (s, e) in sorted(ranges.items()))


def records_beyond(
    bootstrap: str, topic: str, next_offsets: Mapping[int, int], *, timeout_s: float
) -> dict[int, int]:
    """The partitions of ``topic`` holding a record at or after their ``next_offsets``.

    Args:
        bootstrap: the Kafka bootstrap address.
        topic: the topic.
        next_offsets: partition -> the first offset not landed yet.
        timeout_s: the longest wait for a first record.

    Returns:
        partition -> the offset of the first such record + 1, for the partitions seen in the
        first fetch that returned any; empty when none came within ``timeout_s``.

    Raises:
        BrokerError: the broker did not answer.
    """
    if not next_offsets:
        return {}
    consumer = make_consumer(
        bootstrap, max_poll_records=500, fetch_max_bytes=4 << 20, max_partition_fetch_bytes=1 << 20
    )
    try:
        assignment = [TopicPartition(topic, p) for p in sorted(next_offsets)]
        consumer.assign(assignment)
        for tp in assignment:
            consumer.seek(tp, next_offsets[tp.partition])
        found: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while not found and (left := deadline - time.monotonic()) > 0:
            polled = consumer.poll(timeout_ms=max(1, int(left * 1000)))
            for tp, records in polled.items():
                # a reset after a lost log may hand back offsets below the stored ones
                ahead = [r.offset for r in records if r.offset >= next_offsets[tp.partition]]
                if ahead:
                    found[tp.partition] = min(ahead) + 1
        return found
    except KafkaError as exc:
        raise BrokerError(f"cannot read {topic} at {bootstrap}: {exc}") from exc
    finally:
        consumer.close()


def lag_run_request(
    topic: str, kafka: KafkaResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    """A run request for ``topic`` when Kafka holds offsets beyond where landing starts.

    After an embedded broker restart landing starts at the new log's beginning (the stored
    offsets belong to the dead log), and the run key names the log so it never repeats a key
    of the dead log. Offsets an external cluster no longer holds fail the evaluation with
    :class:`OffsetsLostError` (it says how to move them) instead of reporting "caught up".
    """
    spec = TOPICS[topic]
    log_id: int | None = None
    try:
        endpoint = kafka.endpoint()
        log_id = endpoint.log_id
        lag = kafka.lag(spec, lake.lake(), endpoint=endpoint)
        if all(end <= start for start, end in lag.values()):
            found = records_beyond(
                endpoint.bootstrap,
                spec.topic,
                {p: start for p, (start, _) in lag.items()},
                timeout_s=PROBE_TIMEOUT_S,
            )
            lag = {p: (start, max(end, found.get(p, end))) for p, (start, end) in lag.items()}
    except OffsetsLostError:
        raise
    except MarketlakeError as exc:
        return dg.SkipReason(f"cannot read the lag of {spec.topic}: {exc}")
    behind = {p: end - start for p, (start, end) in lag.items() if end > start}
    if not behind:
        return dg.SkipReason(f"{spec.topic} is caught up")
    next_offsets = {p: start for p, (start, _) in lag.items()}
    end_offsets = {p: end for p, (_, end) in lag.items()}
    key = lag_run_key(spec.table, dict(lag))
    if log_id is not None:
        key = f"{key};log={log_id}"
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


def ingest_job(name: str, bronze: dg.AssetKey) -> "UnresolvedAssetJobDefinition":
    """The job ``ingest_<name>``: one bounded landing run of the asset ``bronze``."""
    return dg.define_asset_job(f"ingest_{name}", selection=dg.AssetSelection.assets(bronze))


ingest_candles_job = ingest_job("candles", BRONZE_CANDLES_KEY)
ingest_tickers_job = ingest_job("tickers", BRONZE_TICKERS_KEY)
ingest_posts_job = ingest_job("posts", BRONZE_POSTS_KEY)
ingest_fear_greed_job = ingest_job("fear_greed", BRONZE_FEAR_GREED_KEY)

LAG_SENSORS: dict[str, tuple[str, "UnresolvedAssetJobDefinition", int]] = {
    CANDLES: ("candles", ingest_candles_job, 30),
    TICKERS: ("tickers", ingest_tickers_job, 30),
    POSTS: ("posts", ingest_posts_job, 30),
    FEAR_GREED: ("fear_greed", ingest_fear_greed_job, 60),
}
"""topic -> (sensor name ``<name>_lag_sensor``, the job it requests, seconds between looks)."""


def live_lander_skip(kafka: KafkaResource) -> dg.SkipReason | None:
    """A skip while the live lander of ``marketlake up`` runs (it lands bronze outside Dagster
    and reports each batch), so a sensor-requested run never races it; ``None`` otherwise.

    The lander is read from ``<home>/up.json`` (``kafka.home``, default ``MARKETLAKE_HOME``).
    """
    home = Path(kafka.home) if kafka.home else load_settings().home
    pid = running_component(home, "lander")
    if pid is None:
        return None
    return dg.SkipReason(
        f"bronze is landed by the live lander of `marketlake up` (pid {pid}); "
        "this sensor requests ingest runs again once it stops"
    )


def lag_sensor(
    topic: str, *, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING
) -> dg.SensorDefinition:
    """The sensor ``<name>_lag_sensor`` requesting an ``ingest_<name>`` run when ``topic`` has
    lag (see :data:`LAG_SENSORS`), quiet while the live lander runs."""
    name, job, interval_s = LAG_SENSORS[topic]

    @dg.sensor(
        name=f"{name}_lag_sensor",
        job=job,
        minimum_interval_seconds=interval_s,
        default_status=default_status,
        description=f"Request an ingest run of {topic} when Kafka holds new offsets "
        "(skips while the live lander of `marketlake up` runs).",
    )
    def sensor(
        context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource
    ) -> dg.SensorResult | dg.SkipReason:
        return live_lander_skip(kafka) or lag_run_request(topic, kafka, lake)

    return sensor


def lag_sensors(
    *, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING
) -> list[dg.SensorDefinition]:
    """The four lag sensors, one per topic, all starting in ``default_status``."""
    return [lag_sensor(topic, default_status=default_status) for topic in LAG_SENSORS]
