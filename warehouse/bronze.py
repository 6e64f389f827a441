"""Bronze: Kafka records, validated and typed, plus the rejects table for everything that fails.

The landing step (``pipelines.ingest``) reads raw records and calls :func:`land_batch`, which
splits a batch into good rows and rejects, and commits both exactly once: each commit carries an
app transaction per Kafka partition, ``(f"{table}-{topic}-{partition}", last_offset)``, and a
restart resumes from those stored versions + 1. Rejects are committed first, with their own
markers, so a crash between the two commits never duplicates a reject either. Records from the
embedded broker also record its log identity, ``(f"{table}-{topic}-log", log_id)``, in the same
commit: the stored offsets are only meaningful on that log (see :mod:`pipelines.offsets`).

Decoding is bulk: the values of a batch are parsed together as NDJSON by Arrow and checked
with Polars expressions that are stricter than the per-record validators of
:mod:`warehouse.topics` (:mod:`warehouse.bronze_bulk`); every record the bulk checks do not
accept is decoded again by the per-record validator, which gives the reject reason. The result
is the same as :func:`decode_batch_per_record` for every batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.bronze_bulk import INDEX, bulk_decode, parse_schema
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
class RecordColumns:
    """A fetched batch of one topic, column by column (cheaper than one object per record)."""

    topic: str
    partitions: list[int]
    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]

    def __len__(self) -> int:
        return len(self.offsets)

    def record(self, index: int) -> RawRecord:
        """The record at ``index`` as a :class:`RawRecord`."""
        return RawRecord(
            self.topic,
            self.partitions[index],
            self.offsets[index],
            self.timestamps[index],
            self.keys[index],
            self.values[index],
        )

    @classmethod
    def from_records(cls, records: Sequence[RawRecord]) -> RecordColumns:
        """Columns of ``records`` (all of one topic; an empty sequence gives empty columns)."""
        return cls(
            records[0].topic if records else "",
            [r.partition for r in records],
            [r.offset for r in records],
            [r.timestamp_ms for r in records],
            [r.key for r in records],
            [r.value for r in records],
        )


@dataclass(frozen=True)
class DecodedBatch:
    """A batch split into typed bronze rows and rejects (with the reason of each)."""

    rows: pa.Table
    rejects: pa.Table
    extra_fields: int = 0
    """Good records that carried fields outside the topic schema (ignored, counted)."""


@dataclass(frozen=True)
class LandedBatch:
    """What one committed batch changed."""

    rows: int
    rejects: int
    bytes: int
    table_version: int
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    """partition -> (first offset, last offset) landed by this batch."""
    extra_fields: int = 0
    max_kafka_timestamp_ms: int | None = None


def bronze_schema(spec: TopicSpec) -> pa.Schema:
    """The bronze table schema of a topic: the message fields then the Kafka bookkeeping."""
    return pa.schema(list(spec.schema) + [pa.field(name, kind) for name, kind in KAFKA_FIELDS])


def app_id(table: str, topic: str, partition: int) -> str:
    """The Delta app-transaction id that stores the last landed offset of one partition."""
    return f"{table}-{topic}-{partition}"


def log_app_id(table: str, topic: str) -> str:
    """The Delta app-transaction id that stores the broker log the offsets of a topic belong to."""
    return f"{table}-{topic}-log"


def _parse_message(record: RawRecord) -> dict[str, object]:
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
    return message


def decode_record(spec: TopicSpec, record: RawRecord) -> dict[str, object]:
    """Decode and validate one record; raise :class:`SchemaError` with the reason it fails."""
    return spec.validate(_parse_message(record))


def _decode_indices(
    spec: TopicSpec, batch: RecordColumns, indices: Sequence[int], now_ms: int
) -> tuple[list[dict[str, object]], list[dict[str, object]], int]:
    """Per-record decoding of ``indices``: (rows with :data:`INDEX`, rejects, extra-field count)."""
    names = set(spec.schema.names)
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    extra = 0
    for index in indices:
        record = batch.record(index)
        try:
            message = _parse_message(record)
            row = spec.validate(message)
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
        if any(k not in names and v is not None for k, v in message.items()):
            extra += 1
        row[INDEX] = index
        rows.append(row)
    return rows, rejects, extra


def _with_kafka_columns(
    spec: TopicSpec, rows: pa.Table, batch: RecordColumns, now_ms: int
) -> pa.Table:
    """Add the Kafka bookkeeping of each row (looked up by :data:`INDEX`) and the event date."""
    index = rows.column(INDEX)
    kafka = pa.table(
        {
            "kafka_partition": pa.array(batch.partitions, pa.int32()),
            "kafka_offset": pa.array(batch.offsets, pa.int64()),
            "kafka_timestamp": pa.array(batch.timestamps, pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
        }
    ).take(index)
    count = rows.num_rows
    table = rows.select(spec.schema.names).cast(spec.schema) if count else spec.schema.empty_table()
    table = table.append_column("kafka_topic", pa.array([batch.topic] * count, pa.string()))
    for name in kafka.column_names:
        table = table.append_column(name, kafka.column(name))
    ingested = pa.array([now_ms] * count, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    table = table.append_column("ingested_at", ingested)
    event_date = pc.cast(table.column(spec.event_time_field), pa.date32())
    table = table.append_column(pa.field("event_date", pa.date32()), event_date)
    return table.cast(bronze_schema(spec))


def _rows_table(spec: TopicSpec, rows: list[dict[str, object]]) -> pa.Table:
    schema = pa.schema([*parse_schema(spec), pa.field(INDEX, pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def decode_batch_per_record(
    spec: TopicSpec, records: Sequence[RawRecord] | RecordColumns, *, now_ms: int
) -> DecodedBatch:
    """Split ``records`` into bronze rows and rejects, one record at a time (the reference)."""
    batch = records if isinstance(records, RecordColumns) else RecordColumns.from_records(records)
    rows, rejects, extra = _decode_indices(spec, batch, range(len(batch)), now_ms)
    table = _with_kafka_columns(spec, _rows_table(spec, rows), batch, now_ms)
    return DecodedBatch(table, pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA), extra)


def decode_batch(
    spec: TopicSpec, records: Sequence[RawRecord] | RecordColumns, *, now_ms: int
) -> DecodedBatch:
    """Split ``records`` into bronze rows and rejects; nothing is dropped.

    Bulk-parses and checks the batch (see the module docstring); records the bulk checks do not
    accept, and whole batches Arrow cannot parse, go through the per-record validator. The result
    equals :func:`decode_batch_per_record` (rows in record order).
    """
    batch = records if isinstance(records, RecordColumns) else RecordColumns.from_records(records)
    bulk = bulk_decode(spec, batch.values, now_ms=now_ms)
    if bulk is None:
        return decode_batch_per_record(spec, batch, now_ms=now_ms)
    rows, rejects, extra = _decode_indices(spec, batch, bulk.recheck, now_ms)
    frames = [bulk.rows] if bulk.rows.width else []
    if rows:
        frames.append(pl.DataFrame(pl.from_arrow(_rows_table(spec, rows))))
    if frames:
        good = pl.concat(frames, how="vertical_relaxed").sort(INDEX).to_arrow()
    else:
        good = _rows_table(spec, [])
    table = _with_kafka_columns(spec, good, batch, now_ms)
    return DecodedBatch(
        table,
        pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA),
        extra + bulk.extra_fields,
    )


def stored_offsets(
    location: TableLocation, table: str, topic: str, partitions: Sequence[int]
) -> dict[int, int | None]:
    """The last landed offset of each partition according to the table's Delta log."""
    ids = {partition: app_id(table, topic, partition) for partition in partitions}
    versions = transaction_versions(location, list(ids.values()))
    return {partition: versions[ids[partition]] for partition in partitions}


def stored_log_id(location: TableLocation, table: str, topic: str) -> int | None:
    """The broker log the stored offsets of ``topic`` belong to (``None``: none recorded)."""
    app = log_app_id(table, topic)
    return transaction_versions(location, [app])[app]


def offset_ranges(batch: RecordColumns) -> dict[int, tuple[int, int]]:
    """partition -> (first offset, last offset) of a batch."""
    frame = pl.DataFrame(
        {"p": batch.partitions, "o": batch.offsets}, schema={"p": pl.Int64, "o": pl.Int64}
    )
    ranges = frame.group_by("p").agg(pl.col("o").min().alias("lo"), pl.col("o").max().alias("hi"))
    return {int(p): (int(lo), int(hi)) for p, lo, hi in ranges.iter_rows()}


def land_batch(
    spec: TopicSpec,
    records: Sequence[RawRecord] | RecordColumns,
    *,
    bronze: TableLocation,
    rejects: TableLocation,
    expected: dict[int, int | None],
    log_id: int | None = None,
    expected_log_id: int | None = None,
) -> LandedBatch:
    """Commit one batch of records to bronze (and its rejects) exactly once.

    Args:
        spec: the topic the records come from.
        records: the fetched records, in offset order per partition.
        bronze: the topic's bronze table.
        rejects: the shared rejects table.
        expected: partition -> last landed offset as read when the batch was fetched; the
            commit fails with :class:`CommitConflictError` if the table moved since.
        log_id: the embedded broker log the records come from, recorded in the same commit
            (default ``None``: an external cluster, no log is recorded or checked).
        expected_log_id: with ``log_id``, the log id the table stored when the batch was
            fetched (default ``None``: none); checked like ``expected``.
    """
    batch = records if isinstance(records, RecordColumns) else RecordColumns.from_records(records)
    now_ms = int(time.time() * 1000)
    decoded = decode_batch(spec, batch, now_ms=now_ms)
    ranges = offset_ranges(batch)
    last = {p: hi for p, (_, hi) in ranges.items()}
    if decoded.rejects.num_rows:
        _land_rejects(spec, decoded.rejects, rejects, last)
    transactions = {app_id(spec.table, spec.topic, p): o for p, o in last.items()}
    checked = {app_id(spec.table, spec.topic, p): expected.get(p) for p in last}
    if log_id is not None:
        transactions[log_app_id(spec.table, spec.topic)] = log_id
        checked[log_app_id(spec.table, spec.topic)] = expected_log_id
    version = append_exactly_once(
        bronze,
        decoded.rows,
        transactions=transactions,
        expected=checked,
        partition_by=["event_date"],
        metadata={"marketlake.topic": spec.topic, "marketlake.offsets": json.dumps(last)},
    )
    sizes = pl.Series(batch.values, dtype=pl.Binary).bin.size().sum()
    return LandedBatch(
        rows=decoded.rows.num_rows,
        rejects=decoded.rejects.num_rows,
        bytes=int(sizes or 0),
        table_version=version,
        offsets=ranges,
        extra_fields=decoded.extra_fields,
        max_kafka_timestamp_ms=max(batch.timestamps) if len(batch) else None,
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
