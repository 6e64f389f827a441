"""Moving the stored offsets of a topic: to a restarted broker's new log, or by an explicit reset.

Landing moves them itself when the embedded broker's log changed (:mod:`pipelines.offsets`);
``marketlake ingest --topic T --reset-offsets earliest|latest`` moves them when an external
cluster's log no longer holds them. Either way one empty commit carries the new app
transactions, checked against the versions read before, so a concurrent lander makes the move
fail cleanly instead of being overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from kafka import TopicPartition
from kafka.errors import KafkaError

from pipelines.kafka_io import make_consumer
from pipelines.offsets import scan_records, topic_partitions
from warehouse.bronze import (
    REJECTS_SCHEMA,
    REJECTS_TABLE,
    app_id,
    bronze_schema,
    log_app_id,
    stored_log_id,
    stored_offsets,
)
from warehouse.errors import BrokerError, ConfigError
from warehouse.lake import TableLocation, append_exactly_once, transaction_versions
from warehouse.topics import TopicSpec

ResetTo = Literal["earliest", "latest"]


def move_offsets(
    spec: TopicSpec,
    next_offsets: Mapping[int, int],
    *,
    bronze: TableLocation,
    rejects: TableLocation,
    expected: Mapping[int, int | None],
    log_id: int | None = None,
    expected_log_id: int | None = None,
    reason: str,
) -> int:
    """Move the stored offsets of ``spec.topic`` so landing resumes at ``next_offsets``.

    An empty commit carries the new app transactions (``next - 1`` per partition, and
    ``log_id`` when given), checked against the versions the caller read; the rejects table's
    markers of the topic move first, so a crash in between leaves the bronze offsets unmoved
    and the move is simply done again.

    Args:
        spec: the topic and its table.
        next_offsets: partition -> the first offset to land from now on.
        bronze: the topic's bronze table (created empty if it does not exist).
        rejects: the rejects table.
        expected: partition -> the last landed offset read before (``None``: none).
        log_id: the embedded broker log to record (default ``None``: none, external cluster).
        expected_log_id: the log id read before (default ``None``: none).
        reason: why, recorded in the commit metadata.

    Returns:
        The bronze table version of the commit.

    Raises:
        CommitConflictError: another writer moved the offsets first (nothing was written).
    """
    moved = {p: [expected.get(p), n - 1] for p, n in sorted(next_offsets.items())}
    metadata = {
        "marketlake.topic": spec.topic,
        "marketlake.reason": reason,
        "marketlake.moved_offsets": json.dumps(moved),
    }
    reject_ids = {p: app_id(REJECTS_TABLE, spec.topic, p) for p in next_offsets}
    markers = transaction_versions(rejects, list(reject_ids.values()))
    stale = {
        p: markers[app]
        for p, app in reject_ids.items()
        if markers[app] is not None and markers[app] != next_offsets[p] - 1
    }
    if stale:
        append_exactly_once(
            rejects,
            pa.Table.from_pylist([], schema=REJECTS_SCHEMA),
            transactions={reject_ids[p]: next_offsets[p] - 1 for p in stale},
            expected={reject_ids[p]: marker for p, marker in stale.items()},
            partition_by=["topic"],
            metadata=metadata,
        )
    transactions = {app_id(spec.table, spec.topic, p): n - 1 for p, n in next_offsets.items()}
    checked = {app_id(spec.table, spec.topic, p): expected.get(p) for p in next_offsets}
    if log_id is not None:
        transactions[log_app_id(spec.table, spec.topic)] = log_id
        checked[log_app_id(spec.table, spec.topic)] = expected_log_id
    return append_exactly_once(
        bronze,
        bronze_schema(spec).empty_table(),
        transactions=transactions,
        expected=checked,
        partition_by=["event_date"],
        metadata=metadata,
    )


@dataclass(frozen=True)
class OffsetReset:
    """What ``marketlake ingest --reset-offsets`` moved.

    Attributes:
        table: the bronze table.
        topic: the topic.
        to: ``earliest`` or ``latest``.
        before: partition -> the next offset to land before (``None``: nothing stored).
        after: partition -> the next offset to land now.
        table_version: the bronze commit that moved them.
    """

    table: str
    topic: str
    to: str
    before: dict[int, int | None]
    after: dict[int, int]
    table_version: int

    def describe(self) -> str:
        """One line: each partition's next offset, from -> to."""
        moves = ", ".join(
            f"partition {p}: {'none' if self.before.get(p) is None else self.before[p]} -> {o}"
            for p, o in sorted(self.after.items())
        )
        return (
            f"{self.table} <- {self.topic}: next offsets reset to {self.to} ({moves}); "
            f"table version {self.table_version}"
        )


def reset_offsets(
    bootstrap: str,
    spec: TopicSpec,
    *,
    bronze: TableLocation,
    rejects: TableLocation,
    to: ResetTo,
    log_id: int | None = None,
) -> OffsetReset:
    """Move the stored offsets of ``spec.topic`` to the log's beginning or its end.

    Args:
        bootstrap: Kafka bootstrap address.
        spec: the topic and its table.
        bronze: the topic's bronze table.
        rejects: the rejects table.
        to: ``earliest`` (land everything the log holds) or ``latest`` (only what arrives next;
            the end is read until a fetch comes back empty, not taken from the reported end).
        log_id: the embedded broker's log, recorded with the offsets (default ``None``:
            an external cluster).

    Returns:
        The offsets before and after, and the commit.

    Raises:
        ConfigError: ``to`` is neither ``earliest`` nor ``latest``.
        CommitConflictError: another writer moved the offsets meanwhile (nothing was written).
    """
    if to not in ("earliest", "latest"):
        raise ConfigError(f"--reset-offsets takes earliest or latest, not {to!r}")
    consumer = make_consumer(bootstrap)
    try:
        partitions = topic_partitions(consumer, spec.topic)
        stored = stored_offsets(bronze, spec.table, spec.topic, partitions)
        stored_log = stored_log_id(bronze, spec.table, spec.topic)
        assignment = [TopicPartition(spec.topic, p) for p in partitions]
        try:
            if to == "earliest":
                target = {
                    tp.partition: o for tp, o in consumer.beginning_offsets(assignment).items()
                }
            else:
                scanned = scan_records(consumer, consumer.end_offsets(assignment))
                target = {tp.partition: end for tp, (_, end) in scanned.items()}
        except KafkaError as exc:
            raise BrokerError(f"cannot read the offsets of {spec.topic}: {exc}") from exc
    finally:
        consumer.close()
    version = move_offsets(
        spec,
        target,
        bronze=bronze,
        rejects=rejects,
        expected=stored,
        log_id=log_id,
        expected_log_id=stored_log,
        reason=f"reset to {to}",
    )
    return OffsetReset(
        table=spec.table,
        topic=spec.topic,
        to=to,
        before={p: o + 1 if o is not None else None for p, o in stored.items()},
        after=target,
        table_version=version,
    )
