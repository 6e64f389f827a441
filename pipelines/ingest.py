"""The micro-batch consumer: land what a Kafka topic holds into bronze Delta, exactly once.

Offsets live in the Delta log only (kafka-delta-ingest's design): the consumer is assigned every
partition, seeks each to where landing starts (:func:`pipelines.offsets.landing_start`: the
table's stored offset + 1, or the beginning of a restarted embedded broker's new log), fetches a
bounded batch, and lands it in one commit that also moves the stored offsets (and records the
embedded broker's log id). "Caught up" means a fetch came back empty (and no partition is behind
the broker's reported end offset): the embedded broker under-reports end offsets, so they are
only ever a lower bound here.

A fetch thread reads the next batch while the current one is decoded and committed (decoding and
the Delta write run in native code, outside the GIL). A crash loses at most fetched, uncommitted
batches, which the restart fetches again from the stored offsets. In ``follow`` mode the same
loop never stops at "caught up": it lands whatever arrived every ``follow_batch_s`` seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipelines.fetch import BatchFetcher, backoff
from pipelines.kafka_io import make_consumer
from pipelines.offset_moves import move_offsets
from pipelines.offsets import landing_start, topic_partitions
from warehouse.bronze import (
    REJECTS_TABLE,
    LandedBatch,
    RecordColumns,
    land_batch,
    offset_ranges,
)
from warehouse.errors import BrokerError, OffsetsLostError
from warehouse.lake import TableLocation
from warehouse.topics import TopicSpec

log = logging.getLogger(__name__)

LAG_TIMEOUT_MS = 2_000
"""The longest wait for the end offsets a report's lag is computed from."""


@dataclass(frozen=True)
class IngestOptions:
    """Bounds of one landing run.

    Attributes:
        batch_records: records per Delta commit (default 50,000).
        max_records: stop after this many records (``None``: until caught up).
        poll_timeout_ms: how long one fetch waits for data before it counts as empty
            (default 1,000).
        empty_polls: consecutive empty fetches that mean "caught up" (default 2).
        follow: keep running after "caught up", landing new records as they arrive
            (default ``False``; stop it with the ``stop`` event of :func:`land_topic`).
        follow_batch_s: in follow mode, land what was fetched at least this often (default 0.5 s).
        broker_retries: attempts to reach an unreachable broker before giving up (default 5).
        retry_backoff_s: first wait between those attempts; doubles each time, capped at 30 s
            (default 1 s).
        prefetch: fetch the next batch while the current one is committed (default ``True``).
        stop_offsets: partition -> offset where landing it stops (exclusive); the run ends when
            every partition reached its own (default ``None``: until caught up).
    """

    batch_records: int = 50_000
    max_records: int | None = None
    poll_timeout_ms: int = 1_000
    empty_polls: int = 2
    follow: bool = False
    follow_batch_s: float = 0.5
    broker_retries: int = 5
    retry_backoff_s: float = 1.0
    prefetch: bool = True
    stop_offsets: Mapping[int, int] | None = None


@dataclass
class IngestReport:
    """What a landing run did, for the CLI and the Dagster run metadata."""

    topic: str
    table: str
    rows: int = 0
    rejects: int = 0
    bytes: int = 0
    batches: int = 0
    extra_fields: int = 0
    table_version: int | None = None
    start_offsets: dict[int, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)
    lag: dict[int, int] = field(default_factory=dict)
    """partition -> records the broker reports beyond ``end_offsets`` (a lower bound)."""
    last_kafka_timestamp_ms: int | None = None
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return self.rows + self.rejects

    @property
    def reject_rate(self) -> float:
        return self.rejects / self.records if self.records else 0.0

    def add(self, landed: LandedBatch) -> None:
        """Count one committed batch."""
        self.rows += landed.rows
        self.rejects += landed.rejects
        self.bytes += landed.bytes
        self.batches += 1
        self.extra_fields += landed.extra_fields
        self.table_version = landed.table_version
        if landed.max_kafka_timestamp_ms is not None:
            self.last_kafka_timestamp_ms = max(
                self.last_kafka_timestamp_ms or 0, landed.max_kafka_timestamp_ms
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "table": self.table,
            "records": self.records,
            "rows": self.rows,
            "rejects": self.rejects,
            "reject_rate": round(self.reject_rate, 6),
            "extra_fields": self.extra_fields,
            "bytes": self.bytes,
            "batches": self.batches,
            "table_version": self.table_version,
            "start_offsets": {str(p): o for p, o in sorted(self.start_offsets.items())},
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "lag": {str(p): n for p, n in sorted(self.lag.items())},
            "last_kafka_timestamp_ms": self.last_kafka_timestamp_ms,
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
    stop: threading.Event | None = None,
    log_id: int | None = None,
) -> IngestReport:
    """Land everything ``spec.topic`` holds beyond the stored offsets into ``bronze``.

    Args:
        bootstrap: Kafka bootstrap address.
        spec: the topic and its bronze table.
        bronze: the topic's bronze table location.
        rejects: the rejects table location.
        options: batch size, bounds, follow mode and retries.
        on_batch: called after each committed batch (progress bars, metrics).
        stop: set it to end a run early (follow mode ends only so); ``None``: never.
        log_id: the embedded broker's log identity, recorded with the offsets; when the table
            records another log (or offsets without one) landing continues from this log's
            beginning and logs a warning. ``None`` (default): an external cluster, whose log
            is checked against the stored offsets instead.

    Returns:
        The offsets, rows, rejects, bytes and lag landed.

    Raises:
        BrokerError: the broker stayed unreachable through every retry.
        CommitConflictError: another writer committed to the table first (nothing written).
        OffsetsLostError: (``log_id`` ``None``) the log no longer holds the stored offsets.
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    consumer = _connect(bootstrap, options)
    fetcher: BatchFetcher | None = None
    try:
        partitions = topic_partitions(consumer, spec.topic)
        start = landing_start(consumer, bronze, spec, partitions, log_id=log_id)
        stored = dict(start.stored)
        stored_log = start.stored_log_id
        if start.new_log:
            log.warning("%s", start.describe_new_log())
            move_offsets(
                spec,
                start.next_offsets,
                bronze=bronze,
                rejects=rejects,
                expected=start.stored,
                log_id=log_id,
                expected_log_id=start.stored_log_id,
                reason=f"new broker log {log_id} (was {start.stored_log_id})",
            )
            stored = {p: o - 1 for p, o in start.next_offsets.items()}
            stored_log = log_id
        report = IngestReport(topic=spec.topic, table=spec.table)
        report.start_offsets = dict(start.next_offsets)
        assignment = [TopicPartition(spec.topic, p) for p in partitions]
        consumer.assign(assignment)
        for tp in assignment:
            consumer.seek(tp, report.start_offsets[tp.partition])
        fetcher = BatchFetcher(consumer, spec.topic, assignment, options, stop)
        batches = fetcher.run_in_thread() if options.prefetch else fetcher.batches()
        for batch in batches:
            _check_ahead(spec, batch, stored)
            landed = land_batch(
                spec,
                batch,
                bronze=bronze,
                rejects=rejects,
                expected=stored,
                log_id=log_id,
                expected_log_id=stored_log,
            )
            stored_log = log_id
            for partition, (_, last_offset) in landed.offsets.items():
                stored[partition] = last_offset
            report.add(landed)
            if on_batch is not None:
                on_batch(landed)
        report.end_offsets = {p: (o if o is not None else -1) + 1 for p, o in stored.items()}
        report.lag = _lag(consumer, assignment, report.end_offsets)
    finally:
        stop.set()
        if fetcher is not None:
            fetcher.join()
        consumer.close()
    report.seconds = time.monotonic() - started
    return report


def _connect(bootstrap: str, options: IngestOptions) -> KafkaConsumer:
    """An assign-mode consumer, retrying with backoff while the broker is unreachable."""
    attempt = 0
    while True:
        try:
            if not _reachable(bootstrap):
                raise BrokerError(f"no Kafka broker accepts connections at {bootstrap}")
            return make_consumer(
                bootstrap, max_poll_records=options.batch_records, request_timeout_ms=15_000
            )
        except BrokerError as exc:
            attempt += 1
            if attempt > options.broker_retries:
                raise BrokerError(
                    f"no Kafka broker answers at {bootstrap} after {attempt} attempts; start it "
                    "(`marketlake broker start`) or fix MARKETLAKE_KAFKA_BOOTSTRAP"
                ) from exc
            backoff(bootstrap, attempt, options)


def _reachable(bootstrap: str, *, timeout_s: float = 2.0) -> bool:
    """Whether any bootstrap address accepts a TCP connection (fails fast, unlike a client)."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _check_ahead(spec: TopicSpec, batch: RecordColumns, stored: dict[int, int | None]) -> None:
    """Refuse a batch holding offsets already landed: the log was reset under a running ingest."""
    behind: dict[int, tuple[int, int]] = {}
    for partition, (first, _) in offset_ranges(batch).items():
        last = stored.get(partition)
        if last is not None and first <= last:
            behind[partition] = (first, last)
    if behind:
        details = "; ".join(
            f"partition {p}: offset {first}, stored last offset {last}"
            for p, (first, last) in sorted(behind.items())
        )
        raise OffsetsLostError(
            f"{spec.topic} handed back offsets {spec.table} has already landed ({details}): the "
            "log was replaced under a running ingest; nothing of this batch was written. Rerun "
            f"`marketlake ingest --topic {spec.topic}`, or move the stored offsets with "
            "`--reset-offsets earliest|latest`"
        )


def _lag(
    consumer: KafkaConsumer, assignment: Sequence[TopicPartition], next_offsets: dict[int, int]
) -> dict[int, int]:
    try:  # informational: a broker that went away must not hold the run for a request timeout
        ends = consumer.end_offsets(list(assignment), timeout_ms=LAG_TIMEOUT_MS)
    except KafkaError:
        return {}
    return {tp.partition: max(0, ends[tp] - next_offsets[tp.partition]) for tp in assignment}


def rejects_location(lake_uri: str, storage_options: dict[str, str]) -> TableLocation:
    """The location of the rejects table inside a lake."""
    return TableLocation(f"{lake_uri.rstrip('/')}/{REJECTS_TABLE}", storage_options)
