"""Exactly-once landing on the embedded broker and Delta on disk."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from kafka import KafkaProducer

from pipelines.ingest import IngestOptions, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from warehouse.bronze import REJECTS_TABLE, RawRecord, land_batch, stored_offsets
from warehouse.errors import CommitConflictError
from warehouse.lake import Lake, read_table, table_version
from warehouse.topics import CANDLES, TOPICS, TopicSpec


@pytest.fixture
def spec(broker: str) -> TopicSpec:
    """A fresh candles topic per test, so tests never see each other's offsets."""
    base = TOPICS[CANDLES]
    fresh = replace(base, topic=f"test.candles.{uuid.uuid4().hex[:8]}")
    ensure_topics(broker, [fresh])
    return fresh


def _produce(broker: str, spec: TopicSpec, hours: int, seed: int = 1) -> int:
    producer = make_producer(broker)
    try:
        messages = simulate_candles(["BTCUSDT", "ETHUSDT", "SOLUSDT"], hours=hours, seed=seed)
        return produce_messages(producer, spec.topic, "symbol", messages)
    finally:
        producer.close()


def _landed_offsets(lake: Lake, spec: TopicSpec) -> pl.DataFrame:
    bronze = read_table(lake.location(spec.table))
    rejects = (
        read_table(lake.location(REJECTS_TABLE))
        if (Path(lake.location(REJECTS_TABLE).uri) / "_delta_log").exists()
        else None
    )
    offsets = bronze.select(pl.col("kafka_partition").alias("p"), pl.col("kafka_offset").alias("o"))
    if rejects is not None:
        offsets = pl.concat(
            [offsets, rejects.select(pl.col("partition").alias("p"), pl.col("offset").alias("o"))]
        )
    return offsets


def _land(broker: str, spec: TopicSpec, lake: Lake, **options: int) -> object:
    return land_topic(
        broker,
        spec,
        bronze=lake.location(spec.table),
        rejects=lake.location(REJECTS_TABLE),
        options=IngestOptions(poll_timeout_ms=500, **options),
    )


def test_landing_twice_lands_every_offset_once(
    broker: str, spec: TopicSpec, lake_dir: Path
) -> None:
    lake = Lake(str(lake_dir))
    sent = _produce(broker, spec, hours=400)
    first = _land(broker, spec, lake, batch_records=500)
    second = _land(broker, spec, lake, batch_records=500)
    assert first.rows == sent and first.batches >= 3
    assert second.records == 0 and second.table_version is None
    offsets = _landed_offsets(lake, spec)
    assert offsets.height == sent
    assert offsets.unique().height == sent
    # offsets of each partition are contiguous from 0: nothing skipped
    per_partition = offsets.group_by("p").agg(pl.len(), pl.col("o").max())
    assert all(row["len"] == row["o"] + 1 for row in per_partition.iter_rows(named=True))


def test_resuming_after_committed_batches_neither_skips_nor_duplicates(
    broker: str, spec: TopicSpec, lake_dir: Path
) -> None:
    lake = Lake(str(lake_dir))
    sent = _produce(broker, spec, hours=300)
    partial = _land(broker, spec, lake, batch_records=200, max_records=450)
    assert partial.records == 450
    more = _produce(broker, spec, hours=50, seed=2)  # new data arrives while we were stopped
    rest = _land(broker, spec, lake, batch_records=200)
    assert partial.records + rest.records == sent + more
    offsets = _landed_offsets(lake, spec)
    assert offsets.height == offsets.unique().height == sent + more


def test_bad_records_are_quarantined_with_the_reason_while_good_ones_land(
    broker: str, spec: TopicSpec, lake_dir: Path
) -> None:
    lake = Lake(str(lake_dir))
    good = _produce(broker, spec, hours=20)
    raw = KafkaProducer(bootstrap_servers=broker)
    bad_values = [b"not json", b"\xff\xfe", b"[1, 2]", b'{"symbol": "BTCUSDT"}']
    for value in bad_values:
        raw.send(spec.topic, key=b"BTCUSDT", value=value)
    raw.flush()
    raw.close()
    report = _land(broker, spec, lake)
    assert report.rows == good and report.rejects == len(bad_values)
    rejects = read_table(lake.location(REJECTS_TABLE))
    errors = sorted(rejects["error"].to_list())
    assert any("invalid JSON" in e for e in errors)
    assert any("invalid UTF-8" in e for e in errors)
    assert any("expected a JSON object" in e for e in errors)
    assert any("missing field" in e for e in errors)
    assert set(rejects["raw"].to_list()) == set(bad_values)


def test_a_stale_writer_fails_cleanly_and_writes_nothing(lake_dir: Path) -> None:
    spec = TOPICS[CANDLES]
    lake = Lake(str(lake_dir))
    record = RawRecord(
        spec.topic,
        0,
        0,
        1_700_000_000_000,
        b"X",
        b'{"symbol":"X","interval":"1h","open_time":1700000000000,"open":1,"high":1,'
        b'"low":1,"close":1,"volume":1,"source":"t"}',
    )
    bronze, rejects = lake.location(spec.table), lake.location(REJECTS_TABLE)
    land_batch(spec, [record], bronze=bronze, rejects=rejects, expected={0: None})
    # a second writer that read the offsets before the first one committed
    with pytest.raises(CommitConflictError, match="another writer committed first"):
        land_batch(spec, [record], bronze=bronze, rejects=rejects, expected={0: None})
    assert read_table(bronze).height == 1
    assert stored_offsets(bronze, spec.table, spec.topic, [0]) == {0: 0}


def test_a_crash_between_rejects_and_bronze_commits_duplicates_no_reject(lake_dir: Path) -> None:
    spec = TOPICS[CANDLES]
    lake = Lake(str(lake_dir))
    bronze, rejects = lake.location(spec.table), lake.location(REJECTS_TABLE)
    records = [
        RawRecord(spec.topic, 0, 0, 1, None, b"bad"),
        RawRecord(spec.topic, 0, 1, 1, None, b"{"),
    ]
    # the rejects commit lands, then the process dies before the bronze commit
    with pytest.raises(CommitConflictError):
        land_batch(spec, records, bronze=bronze, rejects=rejects, expected={0: 5})
    assert read_table(rejects).height == 2
    # restart: bronze has no stored offset, so the same records are fetched and landed again
    land_batch(spec, records, bronze=bronze, rejects=rejects, expected={0: None})
    assert read_table(rejects).height == 2
    assert stored_offsets(bronze, spec.table, spec.topic, [0]) == {0: 1}


def test_reported_table_version_is_the_committed_one(lake_dir: Path) -> None:
    spec = TOPICS[CANDLES]
    lake = Lake(str(lake_dir))
    bronze, rejects = lake.location(spec.table), lake.location(REJECTS_TABLE)
    value = (
        b'{"symbol":"X","interval":"1h","open_time":1700000000000,"open":1,"high":1,'
        b'"low":1,"close":1,"volume":1,"source":"t"}'
    )
    expected: int | None = None
    for offset in range(3):
        landed = land_batch(
            spec,
            [RawRecord(spec.topic, 0, offset, 1_700_000_000_000, b"X", value)],
            bronze=bronze,
            rejects=rejects,
            expected={0: expected},
        )
        expected = offset
        assert landed.table_version == offset == table_version(bronze)
