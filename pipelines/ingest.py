"""The micro-batch consumer: land what a Kafka topic holds into bronze Delta, exactly once.

Offsets live in the Delta log only (kafka-delta-ingest's design): the consumer is assigned every
partition, seeks each to the table's stored offset + 1, fetches a bounded batch, and lands it in
one commit that also moves the stored offsets. "Caught up" means a fetch came back empty (and no
partition is behind the broker's reported end offset): the embedded broker under-reports end
offsets, so they are only ever a lower bound here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from pipelines.kafka_io import make_consumer
from warehouse.bronze import REJECTS_TABLE, LandedBatch, RawRecord, land_batch, stored_offsets
from warehouse.errors import IngestError
from warehouse.lake import TableLocation
from warehouse.topics import TopicSpec

log = logging.getLogger(__name__)

MAX_EMPTY_POLLS = 10


@dataclass(frozen=True)
class IngestOptions:
    """Bounds of one landing run.

    Attributes:
        batch_records: records per Delta commit (default 50,000).
        max_records: stop after this many records (``None``: until caught up).
        poll_timeout_ms: how long one fetch waits for data before it counts as empty.
        empty_polls: consecutive empty fetches that mean "caught up" (default 2).
    """

    batch_records: int = 50_000
    max_records: int | None = None
    poll_timeout_ms: int = 1_000
    empty_polls: int = 2


@dataclass
class IngestReport:
    """What a landing run did, for the CLI and the Dagster run metadata."""

    topic: str
    table: str
    rows: int = 0
    rejects: int = 0
    bytes: int = 0
    batches: int = 0
    table_version: int | None = None
    start_offsets: dict[int, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return self.rows + self.rejects

    def to_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "table": self.table,
            "records": self.records,
            "rows": self.rows,
            "rejects": self.rejects,
            "bytes": self.bytes,
            "batches": self.batches,
            "table_version": self.table_version,
            "start_offsets": {str(p): o for p, o in sorted(self.start_offsets.items())},
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "seconds": round(self.seconds, 3),
        }


def land_topic(
    bootstrap: str,
    spec: TopicSpec,
    *,
    bronze: TableLocation,
    rejects: TableLocation,
    options: IngestOptions = IngestOptions(),
    on_batch: Callable[[LandedBatch], None] | None = None,
) -> IngestReport:
    """Land everything ``spec.topic`` holds beyond the stored offsets into ``bronze``.

    Args:
        bootstrap: Kafka bootstrap address.
        spec: the topic and its bronze table.
        bronze: the topic's bronze table location.
        rejects: the rejects table location.
        options: batch size and bounds.
        on_batch: called after each committed batch (progress bars, metrics).

    Returns:
        The offsets, rows, rejects and bytes landed.
    """
    started = time.monotonic()
    consumer = make_consumer(bootstrap, max_poll_records=options.batch_records)
    try:
        partitions = _partitions(consumer, spec.topic)
        stored = stored_offsets(bronze, spec.table, spec.topic, partitions)
        report = IngestReport(topic=spec.topic, table=spec.table)
        report.start_offsets = {p: (o if o is not None else -1) + 1 for p, o in stored.items()}
        assignment = [TopicPartition(spec.topic, p) for p in partitions]
        consumer.assign(assignment)
        for tp in assignment:
            consumer.seek(tp, report.start_offsets[tp.partition])
        while options.max_records is None or report.records < options.max_records:
            budget = options.batch_records
            if options.max_records is not None:
                budget = min(budget, options.max_records - report.records)
            batch = _fetch_batch(consumer, assignment, budget, options)
            if not batch:
                break
            landed = land_batch(spec, batch, bronze=bronze, rejects=rejects, expected=stored)
            for partition, (_, last_offset) in landed.offsets.items():
                stored[partition] = last_offset
            report.rows += landed.rows
            report.rejects += landed.rejects
            report.bytes += landed.bytes
            report.batches += 1
            report.table_version = landed.table_version
            if on_batch is not None:
                on_batch(landed)
        report.end_offsets = {p: (o if o is not None else -1) + 1 for p, o in stored.items()}
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report


def _partitions(consumer: KafkaConsumer, topic: str) -> list[int]:
    deadline = time.monotonic() + 10
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() > deadline:
            raise IngestError(f"topic {topic!r} does not exist on the broker; produce to it first")
        time.sleep(0.2)


def _fetch_batch(
    consumer: KafkaConsumer,
    assignment: Sequence[TopicPartition],
    budget: int,
    options: IngestOptions,
) -> list[RawRecord]:
    """Fetch up to ``budget`` records; an empty list means the topic is caught up."""
    batch: list[RawRecord] = []
    empty = 0
    while len(batch) < budget:
        polled = consumer.poll(timeout_ms=options.poll_timeout_ms, max_records=budget - len(batch))
        fetched = sum(len(records) for records in polled.values())
        if fetched:
            empty = 0
            for records in polled.values():
                batch.extend(
                    RawRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
                    for r in records
                )
            continue
        if batch:
            break  # land what we have; the next fetch decides whether we are caught up
        empty += 1
        if empty >= options.empty_polls and not _behind_reported_end(consumer, assignment):
            break
        if empty >= MAX_EMPTY_POLLS:
            log.warning("%d empty fetches while behind the reported end offsets; stopping", empty)
            break
    return batch


def _behind_reported_end(consumer: KafkaConsumer, assignment: Sequence[TopicPartition]) -> bool:
    """Whether a partition is behind the broker's end offset (a lower bound on embedded Tansu)."""
    ends = consumer.end_offsets(list(assignment))
    return any(consumer.position(tp) < ends[tp] for tp in assignment)


def rejects_location(lake_uri: str, storage_options: dict[str, str]) -> TableLocation:
    """The location of the rejects table inside a lake."""
    return TableLocation(f"{lake_uri.rstrip('/')}/{REJECTS_TABLE}", storage_options)
