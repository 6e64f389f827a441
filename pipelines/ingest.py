"""The micro-batch consumer: land what a Kafka topic holds into bronze Delta, exactly once.

Offsets live in the Delta log only (kafka-delta-ingest's design): the consumer is assigned every
partition, seeks each to the table's stored offset + 1, fetches a bounded batch, and lands it in
one commit that also moves the stored offsets. "Caught up" means a fetch came back empty (and no
partition is behind the broker's reported end offset): the embedded broker under-reports end
offsets, so they are only ever a lower bound here.

A fetch thread reads the next batch while the current one is decoded and committed (decoding and
the Delta write run in native code, outside the GIL). A crash loses at most fetched, uncommitted
batches, which the restart fetches again from the stored offsets. In ``follow`` mode the same
loop never stops at "caught up": it lands whatever arrived every ``follow_batch_s`` seconds.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pipelines.kafka_io import make_consumer
from warehouse.bronze import (
    REJECTS_TABLE,
    LandedBatch,
    RecordColumns,
    land_batch,
    stored_offsets,
)
from warehouse.errors import BrokerError, IngestError
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

    Returns:
        The offsets, rows, rejects, bytes and lag landed.

    Raises:
        BrokerError: the broker stayed unreachable through every retry.
        CommitConflictError: another writer committed to the table first (nothing written).
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    consumer = _connect(bootstrap, options)
    fetcher: _Fetcher | None = None
    try:
        partitions = _partitions(consumer, spec.topic)
        stored = stored_offsets(bronze, spec.table, spec.topic, partitions)
        report = IngestReport(topic=spec.topic, table=spec.table)
        report.start_offsets = {p: (o if o is not None else -1) + 1 for p, o in stored.items()}
        assignment = [TopicPartition(spec.topic, p) for p in partitions]
        consumer.assign(assignment)
        for tp in assignment:
            consumer.seek(tp, report.start_offsets[tp.partition])
        fetcher = _Fetcher(consumer, spec.topic, assignment, options, stop)
        batches = fetcher.run_in_thread() if options.prefetch else fetcher.batches()
        for batch in batches:
            landed = land_batch(spec, batch, bronze=bronze, rejects=rejects, expected=stored)
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
            _backoff(bootstrap, attempt, options)


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


def _backoff(bootstrap: str, attempt: int, options: IngestOptions) -> None:
    wait = min(30.0, options.retry_backoff_s * 2 ** (attempt - 1))
    log.warning(
        "Kafka broker at %s unreachable (attempt %d of %d); retrying in %.1f s",
        bootstrap,
        attempt,
        options.broker_retries,
        wait,
    )
    time.sleep(wait)


def _partitions(consumer: KafkaConsumer, topic: str) -> list[int]:
    deadline = time.monotonic() + 10
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() > deadline:
            raise IngestError(f"topic {topic!r} does not exist on the broker; produce to it first")
        time.sleep(0.2)


def _lag(
    consumer: KafkaConsumer, assignment: Sequence[TopicPartition], next_offsets: dict[int, int]
) -> dict[int, int]:
    try:
        ends = consumer.end_offsets(list(assignment))
    except KafkaError:
        return {}
    return {tp.partition: max(0, ends[tp] - next_offsets[tp.partition]) for tp in assignment}


_DONE = object()


class _Fetcher:
    """Fetches bounded batches from an assigned consumer, in this thread or a background one."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        topic: str,
        assignment: Sequence[TopicPartition],
        options: IngestOptions,
        stop: threading.Event,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.assignment = list(assignment)
        self.options = options
        self.stop = stop
        self.fetched = 0
        self.thread: threading.Thread | None = None

    def batches(self) -> Iterator[RecordColumns]:
        """Yield batches until caught up (not in follow mode), ``max_records``, or ``stop``."""
        limit = self.options.max_records
        while not self.stop.is_set() and (limit is None or self.fetched < limit):
            budget = self.options.batch_records
            if limit is not None:
                budget = min(budget, limit - self.fetched)
            batch = self._fetch(budget)
            if batch is None:
                return
            if len(batch):
                self.fetched += len(batch)
                yield batch

    def run_in_thread(self) -> Iterator[RecordColumns]:
        """Like :meth:`batches`, fetching one batch ahead in a background thread."""
        handoff: queue.Queue[object] = queue.Queue(maxsize=1)

        def work() -> None:
            try:
                for batch in self.batches():
                    if not self._put(handoff, batch):
                        return
                self._put(handoff, _DONE)
            except BaseException as exc:  # handed to the landing thread, raised there
                self._put(handoff, exc)

        self.thread = threading.Thread(target=work, name=f"fetch-{self.topic}", daemon=True)
        self.thread.start()
        while True:
            try:
                item = handoff.get(timeout=0.2)
            except queue.Empty:
                if self.thread.is_alive() or not handoff.empty():
                    continue
                return  # stopped while the fetcher had nothing to hand over
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, RecordColumns)
            yield item

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=30)

    def _put(self, handoff: queue.Queue[object], item: object) -> bool:
        while not self.stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self, budget: int) -> RecordColumns | None:
        """Fetch up to ``budget`` records; ``None`` means caught up (never in follow mode)."""
        options = self.options
        batch = RecordColumns(self.topic, [], [], [], [], [])
        empty = 0
        retries = 0
        opened = time.monotonic()
        while len(batch) < budget and not self.stop.is_set():
            polled = self.consumer.poll(
                timeout_ms=options.poll_timeout_ms, max_records=budget - len(batch)
            )
            if any(polled.values()):
                empty = 0
                for tp, records in polled.items():
                    batch.partitions.extend([tp.partition] * len(records))
                    batch.offsets.extend([r.offset for r in records])
                    batch.timestamps.extend([r.timestamp for r in records])
                    batch.keys.extend([r.key for r in records])
                    batch.values.extend([r.value for r in records])
                if options.follow and time.monotonic() - opened >= options.follow_batch_s:
                    break
                continue
            if len(batch):
                break  # land what we have; the next fetch decides whether we are caught up
            empty += 1
            if options.follow:
                opened = time.monotonic()
                continue
            if empty < options.empty_polls:
                continue
            try:
                behind = _behind_reported_end(self.consumer, self.assignment)
            except KafkaError as exc:
                retries += 1
                if retries > options.broker_retries:
                    raise BrokerError(
                        f"lost the Kafka broker while reading {self.topic}: {exc}; nothing "
                        "uncommitted was written, rerun `marketlake ingest` when it is back"
                    ) from exc
                _backoff(str(self.consumer.config["bootstrap_servers"]), retries, options)
                continue
            if not behind:
                return None
            if empty >= MAX_EMPTY_POLLS:
                log.warning(
                    "%d empty fetches while behind the reported end offsets; stopping", empty
                )
                return None
        return batch


def _behind_reported_end(consumer: KafkaConsumer, assignment: Sequence[TopicPartition]) -> bool:
    """Whether a partition is behind the broker's end offset (a lower bound on embedded Tansu)."""
    ends = consumer.end_offsets(list(assignment))
    return any(consumer.position(tp) < ends[tp] for tp in assignment)


def rejects_location(lake_uri: str, storage_options: dict[str, str]) -> TableLocation:
    """The location of the rejects table inside a lake."""
    return TableLocation(f"{lake_uri.rstrip('/')}/{REJECTS_TABLE}", storage_options)
