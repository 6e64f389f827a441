"""Where landing starts: the offsets a bronze table stores, checked against the log they index.

The Delta log stores, per partition, the last landed offset of a topic, and for records from the
embedded broker also the identity of the broker's log (:func:`warehouse.bronze.log_app_id`). The
embedded broker keeps its log in memory: a restarted broker is a new log whose offsets start at 0
again, so the stored offsets must never be read against it. One function,
:func:`landing_start`, says where landing starts on each partition; landing, the sensors' lag and
``marketlake broker stop`` all call it.

- Embedded broker (a log id is known): when the table records another log id, or stores
  offsets without one (landed before log ids existed), the stored offsets belong to a dead log.
  Landing starts at the new log's beginning; its first commit moves the stored offsets there
  (:func:`pipelines.offset_moves.move_offsets`), so every record of the new log lands once and
  nothing of the dead log lands again.
- External cluster (no log id): a partition whose log no longer holds the stored offsets (the
  next offset is below the log's beginning after retention, or beyond its end after the topic was
  recreated) raises :class:`OffsetsLostError`; :func:`pipelines.offset_moves.reset_offsets` moves
  them explicitly. End offsets are only a lower bound on the embedded broker, so "beyond the end"
  is confirmed by reading the last landed offset before it counts as lost.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from warehouse.bronze import app_id, log_app_id
from warehouse.errors import BrokerError, IngestError, OffsetsLostError
from warehouse.lake import TableLocation, transaction_versions
from warehouse.topics import TopicSpec

HOLD_PROBE_S = 2.0
"""How long a check waits for the last landed record when the reported end is below it."""

SCAN_MAX_S = 10.0
"""The longest a scan for the real end of a log reads (a busy topic never comes back empty)."""


@dataclass(frozen=True)
class LandingStart:
    """Where landing ``topic`` into ``table`` starts.

    Attributes:
        table: the bronze table.
        topic: the Kafka topic.
        next_offsets: partition -> the first offset to land.
        stored: partition -> the last landed offset the table stores (``None``: none), as read.
        stored_log_id: the broker log the table records (``None``: none recorded).
        log_id: the running embedded broker's log (``None``: an external cluster).
    """

    table: str
    topic: str
    next_offsets: dict[int, int]
    stored: dict[int, int | None]
    stored_log_id: int | None
    log_id: int | None

    @property
    def new_log(self) -> bool:
        """Whether the stored offsets belong to a dead log of the embedded broker."""
        if self.log_id is None or self.stored_log_id == self.log_id:
            return False
        return self.stored_log_id is not None or any(o is not None for o in self.stored.values())

    def tp_offsets(self) -> dict[TopicPartition, int]:
        """:attr:`next_offsets` keyed by Kafka ``TopicPartition``."""
        return {TopicPartition(self.topic, p): o for p, o in self.next_offsets.items()}

    def describe_new_log(self) -> str:
        """What changed, for the warning that landing continues on a new log."""
        old = (
            f"log {self.stored_log_id}"
            if self.stored_log_id is not None
            else "no log id (landed before log ids were recorded)"
        )
        stored = {p: o for p, o in sorted(self.stored.items()) if o is not None}
        return (
            f"{self.table} <- {self.topic}: the embedded broker's log changed ({old} -> log "
            f"{self.log_id}); the stored last offsets {stored} belong to the dead log, landing "
            f"continues from the new log's beginning {dict(sorted(self.next_offsets.items()))}"
        )


def topic_partitions(consumer: KafkaConsumer, topic: str, *, wait_s: float = 10.0) -> list[int]:
    """The partitions of ``topic``, waiting up to ``wait_s`` for its metadata.

    Raises:
        IngestError: the topic does not exist on the broker.
    """
    deadline = time.monotonic() + wait_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() > deadline:
            raise IngestError(f"topic {topic!r} does not exist on the broker; produce to it first")
        time.sleep(0.2)


def landing_start(
    consumer: KafkaConsumer,
    location: TableLocation,
    spec: TopicSpec,
    partitions: Sequence[int],
    *,
    log_id: int | None,
    probe_timeout_s: float | None = None,
) -> LandingStart:
    """Where landing ``spec.topic`` into ``location`` starts on each partition (reads only).

    Args:
        consumer: a consumer of the broker; its assignment may change (a probe).
        location: the topic's bronze table.
        spec: the topic and its table.
        partitions: the partitions of the topic on the broker.
        log_id: the running embedded broker's log; ``None`` for an external cluster, whose log
            is checked against the stored offsets instead.
        probe_timeout_s: how long to wait for the last landed record when the reported end
            offset is below it (default ``None``: :data:`HOLD_PROBE_S`).

    Returns:
        The stored offset + 1 per partition, or the log's beginning where nothing is stored or
        the stored offsets belong to a dead log (:attr:`LandingStart.new_log`).

    Raises:
        OffsetsLostError: (external cluster) the log no longer holds the stored offsets.
        BrokerError: the broker did not answer.
    """
    ids = {p: app_id(spec.table, spec.topic, p) for p in partitions}
    log_app = log_app_id(spec.table, spec.topic)
    versions = transaction_versions(location, [*ids.values(), log_app])  # one read of the log
    start = LandingStart(
        table=spec.table,
        topic=spec.topic,
        next_offsets={},
        stored={p: versions[app] for p, app in ids.items()},
        stored_log_id=versions[log_app],
        log_id=log_id,
    )
    assignment = [TopicPartition(spec.topic, p) for p in partitions]
    try:
        beginnings = {tp.partition: o for tp, o in consumer.beginning_offsets(assignment).items()}
        if start.new_log:
            return replace(start, next_offsets=beginnings)
        next_offsets = {
            p: o + 1 if o is not None else beginnings[p] for p, o in start.stored.items()
        }
        if log_id is None:
            probe_s = HOLD_PROBE_S if probe_timeout_s is None else probe_timeout_s
            _check_log_holds(consumer, start, beginnings, probe_s)
    except KafkaError as exc:
        raise BrokerError(f"cannot read the offsets of {spec.topic}: {exc}") from exc
    return replace(start, next_offsets=next_offsets)


def _check_log_holds(
    consumer: KafkaConsumer,
    start: LandingStart,
    beginnings: Mapping[int, int],
    probe_timeout_s: float,
) -> None:
    """Raise :class:`OffsetsLostError` for partitions whose log lost the stored offsets."""
    held = {p: o for p, o in start.stored.items() if o is not None}
    if not held:
        return
    tps = {p: TopicPartition(start.topic, p) for p in held}
    ends = {tp.partition: o for tp, o in consumer.end_offsets(list(tps.values())).items()}
    beyond = {tps[p]: o for p, o in held.items() if o + 1 > ends[p]}
    unheld = _unheld(consumer, beyond, probe_timeout_s)
    lost = {p: o for p, o in held.items() if o + 1 < beginnings[p] or tps[p] in unheld}
    if not lost:
        return
    details = "; ".join(
        f"partition {p}: stored next offset {o + 1}, the log spans offsets "
        f"[{beginnings[p]}, {ends[p]})"
        for p, o in sorted(lost.items())
    )
    raise OffsetsLostError(
        f"{start.table} stores offsets that {start.topic} no longer holds ({details}): "
        "retention truncated the log or the topic was recreated, and landing does not guess "
        "where to continue. Move the stored offsets explicitly: `marketlake ingest --topic "
        f"{start.topic} --reset-offsets earliest` lands everything the log holds now, "
        "`--reset-offsets latest` only what arrives from now on"
    )


def _unheld(
    consumer: KafkaConsumer, last_offsets: Mapping[TopicPartition, int], timeout_s: float
) -> set[TopicPartition]:
    """The partitions whose log no longer holds their last landed offset.

    Each is read at that offset: a record there (or after it) means the log holds it; records
    before it (the consumer reset to the beginning) or none within ``timeout_s`` mean it does
    not.
    """
    if not last_offsets:
        return set()
    consumer.assign(list(last_offsets))
    for tp, offset in last_offsets.items():
        consumer.seek(tp, offset)
    undecided = set(last_offsets)
    unheld: set[TopicPartition] = set()
    deadline = time.monotonic() + timeout_s
    while undecided and (left := deadline - time.monotonic()) > 0:
        polled = consumer.poll(timeout_ms=max(1, int(left * 1000)), max_records=500)
        for tp, records in polled.items():
            if tp in undecided and records:
                undecided.discard(tp)
                consumer.pause(tp)
                if records[0].offset < last_offsets[tp]:
                    unheld.add(tp)
    consumer.resume(*last_offsets)
    return unheld | undecided


def scan_records(
    consumer: KafkaConsumer,
    start_offsets: Mapping[TopicPartition, int],
    *,
    until: Mapping[TopicPartition, int] | None = None,
    poll_timeout_ms: int = 500,
    empty_polls: int = 2,
    max_s: float | None = SCAN_MAX_S,
) -> dict[TopicPartition, tuple[int, int]]:
    """Read partitions from ``start_offsets`` until fetches come back empty (the real end).

    Args:
        consumer: a consumer of the broker; it is assigned the partitions read.
        start_offsets: partition (of any topic) -> first offset to read.
        until: partition -> offset where reading it stops (exclusive; default ``None``: the
            end of the log).
        poll_timeout_ms: how long one fetch waits for records (default 500).
        empty_polls: consecutive empty fetches that mean the end (default 2).
        max_s: read for at most this long, so a topic that never stops growing still ends
            (default :data:`SCAN_MAX_S`; ``None``: no limit, for reads bounded by ``until``).

    Returns:
        partition -> (records read at or after its start offset and before its ``until``
        offset, the offset after the last of them or the start offset when there is none).

    Raises:
        BrokerError: the broker did not answer.
    """
    bounds = dict(until or {})
    reading = {tp for tp, offset in start_offsets.items() if offset < bounds.get(tp, offset + 1)}
    counts = dict.fromkeys(start_offsets, 0)
    ends = dict(start_offsets)
    if not reading:
        return {tp: (0, ends[tp]) for tp in start_offsets}
    deadline = time.monotonic() + max_s if max_s is not None else float("inf")
    try:
        assigned = sorted(reading)
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, start_offsets[tp])
        empty = 0
        while reading and empty < empty_polls and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=poll_timeout_ms)
            empty = 0 if any(polled.values()) else empty + 1
            for tp, records in polled.items():
                stop = bounds.get(tp)
                offsets = [
                    r.offset
                    for r in records
                    if r.offset >= start_offsets[tp] and (stop is None or r.offset < stop)
                ]
                if offsets:
                    counts[tp] += len(offsets)
                    ends[tp] = max(ends[tp], max(offsets) + 1)
                if stop is not None and records and records[-1].offset >= stop - 1:
                    reading.discard(tp)
                    consumer.pause(tp)
        consumer.resume(*assigned)
    except KafkaError as exc:
        topics = sorted({tp.topic for tp in start_offsets})
        raise BrokerError(f"cannot read {', '.join(topics)}: {exc}") from exc
    return {tp: (counts[tp], ends[tp]) for tp in start_offsets}
