"""``marketlake broker stop``: land what the embedded broker still holds, then stop it.

The embedded broker keeps its log in memory, so stopping it drops every record not landed yet.
Before it stops, each topic is read from where landing starts (:func:`pipelines.offsets.
landing_start`) until a fetch comes back empty (end offsets are only a lower bound on this
broker); what is found is landed. When another process is landing the same table at the same
time (a live lander), its commits make ours conflict: then the stop waits for the lag to reach
0. Records still unlanded after that make the stop refuse, unless it is forced. What counts is
what the broker held when the stop began: a live source producing meanwhile cannot hold the stop
forever (what it sends after that goes with the broker; the sources resume from the lake).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.errors import KafkaError

from pipelines.broker import BrokerInfo, broker_status, stop_broker
from pipelines.ingest import IngestOptions, land_topic
from pipelines.kafka_io import make_consumer
from pipelines.offsets import landing_start, scan_records, topic_partitions
from warehouse.catalog import BRONZE_REJECTS
from warehouse.errors import BrokerError, CommitConflictError, MarketlakeError
from warehouse.lake import Lake
from warehouse.settings import Settings
from warehouse.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)

DRAIN_WAIT_S = 30.0
"""How long a stop waits for another lander to land what it holds."""

TAIL_S = 2.0
"""How long a stop reads beyond the reported end offsets for records that are already there."""


@dataclass(frozen=True)
class BrokerStop:
    """What ``marketlake broker stop`` did.

    Attributes:
        stopped: whether a broker was running (and is stopped now).
        landed: topic -> records landed before stopping (topics with none left out).
        dropped: topic -> records still unlanded when a forced stop went ahead.
        failures: topic -> why landing it failed (a forced stop went ahead anyway).
    """

    stopped: bool
    landed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unlanded:
    """Records a broker holds beyond where landing starts.

    Attributes:
        counts: partition -> records found.
        ends: partition -> the offset after the last record found (the start where none).
    """

    counts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    def by_topic(self) -> dict[str, int]:
        """topic -> records, for the topics holding some."""
        topics: dict[str, int] = {}
        for tp, count in self.counts.items():
            if count:
                topics[tp.topic] = topics.get(tp.topic, 0) + count
        return topics


def unlanded_records(
    bootstrap: str,
    lake: Lake,
    *,
    log_id: int | None,
    specs: Iterable[TopicSpec],
    until: Mapping[TopicPartition, int] | None = None,
) -> Unlanded:
    """Records each topic holds beyond where landing starts.

    Without ``until``: what is below the reported end offsets, then beyond them until a fetch
    comes back empty (at most :data:`TAIL_S`: a live source may never stop sending).

    Args:
        bootstrap: the broker.
        lake: the lake holding the bronze tables.
        log_id: the broker's log id (``None``: an external cluster).
        specs: the topics to look at; those the broker does not have are skipped.
        until: partition -> offset where counting stops (exclusive; default ``None``: see
            above).
    """
    consumer = make_consumer(bootstrap)
    try:
        existing = consumer.topics()
        starts: dict[TopicPartition, int] = {}
        for spec in specs:
            if spec.topic in existing:
                partitions = topic_partitions(consumer, spec.topic)
                location = lake.location(spec.table)
                start = landing_start(consumer, location, spec, partitions, log_id=log_id)
                starts.update(start.tp_offsets())
        if until is not None:
            scanned = scan_records(consumer, starts, until=until, poll_timeout_ms=300, max_s=None)
            return Unlanded(
                counts={tp: count for tp, (count, _) in scanned.items()},
                ends={tp: end for tp, (_, end) in scanned.items()},
            )
        # every record below the reported end offsets is there; beyond them (the rest of the
        # embedded broker's last batch, and what a live source sends) read until a fetch is
        # empty, for at most TAIL_S
        try:
            reported = consumer.end_offsets(list(starts))
        except KafkaError as exc:
            raise BrokerError(f"cannot read the end offsets at {bootstrap}: {exc}") from exc
        head = scan_records(consumer, starts, until=reported, poll_timeout_ms=300, max_s=None)
        tail_starts = {tp: max(offset, reported[tp]) for tp, offset in starts.items()}
        tail = scan_records(consumer, tail_starts, poll_timeout_ms=300, max_s=TAIL_S)
    finally:
        consumer.close()
    return Unlanded(
        counts={tp: head[tp][0] + tail[tp][0] for tp in starts},
        ends={tp: max(head[tp][1], tail[tp][1]) for tp in starts},
    )


def land_unlanded(
    info: BrokerInfo, lake: Lake, *, wait_s: float = DRAIN_WAIT_S
) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Land every record the broker holds beyond the stored offsets when this is called.

    Landing stops at the offsets found then: records arriving meanwhile are not waited for (a
    live source keeps producing).

    Args:
        info: the running embedded broker.
        lake: the lake.
        wait_s: how long to keep landing, or to wait for another lander whose commits conflict
            with ours (default :data:`DRAIN_WAIT_S`).

    Returns:
        (topic -> records landed, topic -> records still unlanded, topic -> why landing failed).
    """
    specs = {spec.topic: spec for spec in TOPICS.values()}
    snapshot = unlanded_records(info.bootstrap, lake, log_id=info.log_id, specs=specs.values())
    left = snapshot.by_topic()
    landed: dict[str, int] = {}
    failures: dict[str, str] = {}
    other_lander: set[str] = set()
    deadline = time.monotonic() + wait_s
    while left:
        for topic in sorted(set(left) - set(failures) - other_lander):
            spec = specs[topic]
            try:
                report = land_topic(
                    info.bootstrap,
                    spec,
                    bronze=lake.location(spec.table),
                    rejects=lake.location(BRONZE_REJECTS),
                    options=IngestOptions(
                        poll_timeout_ms=300,
                        broker_retries=1,
                        stop_offsets={
                            tp.partition: end
                            for tp, end in snapshot.ends.items()
                            if tp.topic == topic
                        },
                    ),
                    log_id=info.log_id,
                )
            except CommitConflictError as exc:
                log.warning("%s: another lander is committing (%s); waiting for it", topic, exc)
                other_lander.add(topic)
                continue
            except MarketlakeError as exc:
                failures[topic] = str(exc)
                continue
            if report.records:
                landed[topic] = landed.get(topic, 0) + report.records
        left = unlanded_records(
            info.bootstrap, lake, log_id=info.log_id, specs=specs.values(), until=snapshot.ends
        ).by_topic()
        if set(left) <= set(failures) or time.monotonic() >= deadline:
            break
        if set(left) <= other_lander:
            time.sleep(0.5)
    return landed, left, failures


def stop_embedded_broker(
    settings: Settings, *, force: bool = False, wait_s: float = DRAIN_WAIT_S
) -> BrokerStop:
    """Land what the embedded broker of ``settings`` still holds, then stop it.

    Args:
        settings: the home (its ``broker/`` folder) and the lake.
        force: stop even when records are still unlanded (they are dropped) or landing failed
            (default ``False``: refuse).
        wait_s: how long to wait for another lander (default :data:`DRAIN_WAIT_S`).

    Returns:
        Whether a broker was running, and what was landed and dropped.

    Raises:
        BrokerError: records are still unlanded and ``force`` is not set (nothing stopped).
    """
    info = broker_status(settings.broker_dir)
    if info is None:
        stop_broker(settings.broker_dir)  # forget a stale broker.json
        return BrokerStop(stopped=False)
    lake = Lake(settings.lake_uri, settings.storage_options)
    try:
        landed, left, failures = land_unlanded(info, lake, wait_s=wait_s)
    except MarketlakeError as exc:
        if not force:
            raise BrokerError(
                f"cannot tell which records the embedded broker holds unlanded ({exc}); "
                "nothing was stopped: fix that, or `marketlake broker stop --force` to drop them"
            ) from exc
        landed, left, failures = {}, {}, {"*": str(exc)}
    if left and not force:
        counts = ", ".join(f"{topic}: {n}" for topic, n in sorted(left.items()))
        reasons = "".join(f"; {topic}: {why}" for topic, why in sorted(failures.items()))
        raise BrokerError(
            f"the embedded broker still holds records not landed in bronze ({counts}){reasons}. "
            "Its log lives in memory: stopping it drops them. Nothing was stopped: land them "
            "(`marketlake ingest --all`) and stop again, or `marketlake broker stop --force` "
            "to drop them"
        )
    if left:
        log.warning("stopping the embedded broker drops unlanded records: %s", left)
    stop_broker(settings.broker_dir)
    return BrokerStop(stopped=True, landed=landed, dropped=left, failures=failures)
