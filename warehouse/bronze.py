"""Bronze: Kafka records, validated and typed, plus the rejects table for everything that fails.

The landing step (``pipelines.ingest``) reads raw records and calls :func:`land_batch`, which
splits a batch into good rows and rejects, and commits both exactly once: each commit carries an
app transaction per Kafka partition, ``(f"{table}-{topic}-{partition}", last_offset)``, and a
restart resumes from those stored versions + 1. Rejects are committed first, with their own
markers, so a crash between the two commits never duplicates a reject either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.errors import SchemaError
from warehouse.lake import TableLocation, append_exactly_once, transaction_versions
from warehouse.topics import MAX_MESSAGE_BYTES, TopicSpec

REJECTS_TABLE = "bronze/_rejects"

KAFKA_FIELDS = [
    ("kafka_topic", pa.string()),
    ("kafka_partition", pa.int32()),
    ("kafka_offset", pa.int64()),
    ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    ("ingested_at", pa.timestamp("ms", tz="UTC")),
    ("event_date", pa.date32()),
]

REJECTS_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.binary()),
        ("raw", pa.binary()),
        ("error", pa.string()),
        ("rejected_at", pa.timestamp("ms", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record as fetched: where it sits and its undecoded bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DecodedBatch:
    """A batch split into typed bronze rows and rejects (with the reason of each)."""

    rows: pa.Table
    rejects: pa.Table


@dataclass(frozen=True)
class LandedBatch:
    """What one committed batch changed."""

    rows: int
    rejects: int
    bytes: int
    table_version: int
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    """partition -> (first offset, last offset) landed by this batch."""


def bronze_schema(spec: TopicSpec) -> pa.Schema:
    """The bronze table schema of a topic: the message fields then the Kafka bookkeeping."""
    return pa.schema(list(spec.schema) + [pa.field(name, kind) for name, kind in KAFKA_FIELDS])


def app_id(table: str, topic: str, partition: int) -> str:
    """The Delta app-transaction id that stores the last landed offset of one partition."""
    return f"{table}-{topic}-{partition}"


def decode_record(spec: TopicSpec, record: RawRecord) -> dict[str, object]:
    """Decode and validate one record; raise :class:`SchemaError` with the reason it fails."""
    if record.value is None:
        raise SchemaError("empty value (tombstone)")
    if len(record.value) > MAX_MESSAGE_BYTES:
        raise SchemaError(f"message of {len(record.value)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"invalid UTF-8: {exc}") from None
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"invalid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise SchemaError(f"expected a JSON object, got {type(message).__name__}")
    return spec.validate(message)


def decode_batch(spec: TopicSpec, records: Sequence[RawRecord], *, now_ms: int) -> DecodedBatch:
    """Split ``records`` into bronze rows and rejects; nothing is dropped."""
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    for record in records:
        try:
            row = decode_record(spec, record)
        except SchemaError as exc:
            rejects.append(
                {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "kafka_timestamp": record.timestamp_ms,
                    "key": record.key,
                    "raw": record.value,
                    "error": str(exc),
                    "rejected_at": now_ms,
                }
            )
            continue
        row["kafka_topic"] = record.topic
        row["kafka_partition"] = record.partition
        row["kafka_offset"] = record.offset
        row["kafka_timestamp"] = record.timestamp_ms
        row["ingested_at"] = now_ms
        rows.append(row)
    schema = bronze_schema(spec)
    without_date = pa.schema([f for f in schema if f.name != "event_date"])
    table = pa.Table.from_pylist(rows, schema=without_date)
    event_date = pc.cast(table.column(spec.event_time_field), pa.date32())
    table = table.append_column(pa.field("event_date", pa.date32()), event_date)
    return DecodedBatch(rows=table, rejects=pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA))


def stored_offsets(
    location: TableLocation, table: str, topic: str, partitions: Sequence[int]
) -> dict[int, int | None]:
    """The last landed offset of each partition according to the table's Delta log."""
    ids = {partition: app_id(table, topic, partition) for partition in partitions}
    versions = transaction_versions(location, list(ids.values()))
    return {partition: versions[ids[partition]] for partition in partitions}


def land_batch(
    spec: TopicSpec,
    records: Sequence[RawRecord],
    *,
    bronze: TableLocation,
    rejects: TableLocation,
    expected: dict[int, int | None],
) -> LandedBatch:
    """Commit one batch of records to bronze (and its rejects) exactly once.

    Args:
        spec: the topic the records come from.
        records: the fetched records, in offset order per partition.
        bronze: the topic's bronze table.
        rejects: the shared rejects table.
        expected: partition -> last landed offset as read when the batch was fetched; the
            commit fails with :class:`CommitConflictError` if the table moved since.
    """
    now_ms = int(time.time() * 1000)
    decoded = decode_batch(spec, records, now_ms=now_ms)
    last: dict[int, int] = {}
    first: dict[int, int] = {}
    for record in records:
        last[record.partition] = max(last.get(record.partition, -1), record.offset)
        first[record.partition] = min(first.get(record.partition, record.offset), record.offset)
    if decoded.rejects.num_rows:
        _land_rejects(spec, decoded.rejects, rejects, last)
    version = append_exactly_once(
        bronze,
        decoded.rows,
        transactions={app_id(spec.table, spec.topic, p): o for p, o in last.items()},
        expected={app_id(spec.table, spec.topic, p): expected.get(p) for p in last},
        partition_by=["event_date"],
        metadata={"marketlake.topic": spec.topic, "marketlake.offsets": json.dumps(last)},
    )
    size = sum(len(r.value or b"") for r in records)
    return LandedBatch(
        rows=decoded.rows.num_rows,
        rejects=decoded.rejects.num_rows,
        bytes=size,
        table_version=version,
        offsets={p: (first[p], last[p]) for p in last},
    )


def _land_rejects(
    spec: TopicSpec, rejected: pa.Table, rejects: TableLocation, last: dict[int, int]
) -> None:
    """Append rejects not yet recorded (a retried batch skips those a crash left behind)."""
    ids = {p: app_id(REJECTS_TABLE, spec.topic, p) for p in last}
    stored = transaction_versions(rejects, list(ids.values()))
    keep = pa.array([True] * rejected.num_rows)
    for partition, stored_offset in ((p, stored[ids[p]]) for p in last):
        if stored_offset is None:
            continue
        already = pc.and_(
            pc.equal(rejected.column("partition"), partition),
            pc.less_equal(rejected.column("offset"), stored_offset),
        )
        keep = pc.and_(keep, pc.invert(already))
    fresh = rejected.filter(keep)
    append_exactly_once(
        rejects,
        fresh,
        transactions={ids[p]: max(o, stored[ids[p]] or -1) for p, o in last.items()},
        expected={ids[p]: stored[ids[p]] for p in last},
        partition_by=["topic"],
        metadata={"marketlake.topic": spec.topic},
    )
