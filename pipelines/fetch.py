"""Fetching bounded batches from an assign-mode consumer, for :func:`pipelines.ingest.land_topic`.

A batch ends at its record budget, or (in follow mode) every ``follow_batch_s``. Outside follow
mode a fetch that comes back empty ``empty_polls`` times in a row, with no partition behind the
broker's reported end offset (a lower bound on the embedded broker), means "caught up"; so does
every partition reaching its ``stop_offsets`` entry, when the options give one for each.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from warehouse.bronze import RecordColumns
from warehouse.errors import BrokerError

if TYPE_CHECKING:
    from pipelines.ingest import IngestOptions

log = logging.getLogger(__name__)

MAX_EMPTY_POLLS = 10
HANDOVER_ON_STOP_S = 10.0
"""How long a fetcher stopped with records in hand waits to hand them to the landing loop."""
"""Empty fetches while behind the reported end offsets after which a run stops anyway."""


def backoff(bootstrap: str, attempt: int, options: IngestOptions) -> None:
    """Log and sleep before attempt ``attempt + 1``: ``retry_backoff_s`` doubled each time,
    capped at 30 s."""
    wait = min(30.0, options.retry_backoff_s * 2 ** (attempt - 1))
    log.warning(
        "Kafka broker at %s unreachable (attempt %d of %d); retrying in %.1f s",
        bootstrap,
        attempt,
        options.broker_retries,
        wait,
    )
    time.sleep(wait)


_DONE = object()


class BatchFetcher:
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
        self.bounds = dict(options.stop_offsets or {})
        self.done: set[int] = set()
        for tp in self.assignment:
            bound = self.bounds.get(tp.partition)
            if bound is not None and consumer.position(tp) >= bound:
                self._finish(tp)

    def batches(self) -> Iterator[RecordColumns]:
        """Yield batches until caught up (not in follow mode), ``max_records``, or ``stop``."""
        limit = self.options.max_records
        while not self.stop.is_set() and (limit is None or self.fetched < limit):
            if len(self.done) == len(self.assignment):
                return
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
        if isinstance(item, RecordColumns) and len(item):
            # stopped with records in hand: hand them over anyway, so that the landing loop
            # (which waits while this thread lives) commits them before the run ends
            try:
                handoff.put(item, timeout=HANDOVER_ON_STOP_S)
                return True
            except queue.Full:
                log.warning("%s: %d fetched records left for the next run", self.topic, len(item))
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
                for tp, polled_records in polled.items():
                    records = self._bounded(tp, polled_records)
                    batch.partitions.extend([tp.partition] * len(records))
                    batch.offsets.extend([r.offset for r in records])
                    batch.timestamps.extend([r.timestamp for r in records])
                    batch.keys.extend([r.key for r in records])
                    batch.values.extend([r.value for r in records])
                if options.follow and time.monotonic() - opened >= options.follow_batch_s:
                    break
                if len(self.done) == len(self.assignment):
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
                reading = [tp for tp in self.assignment if tp.partition not in self.done]
                behind = behind_reported_end(self.consumer, reading)
            except KafkaError as exc:
                retries += 1
                if retries > options.broker_retries:
                    raise BrokerError(
                        f"lost the Kafka broker while reading {self.topic}: {exc}; nothing "
                        "uncommitted was written, rerun `marketlake ingest` when it is back"
                    ) from exc
                backoff(str(self.consumer.config["bootstrap_servers"]), retries, options)
                continue
            if not behind:
                return None
            if empty >= MAX_EMPTY_POLLS:
                log.warning(
                    "%d empty fetches while behind the reported end offsets; stopping", empty
                )
                return None
        return batch

    def _bounded(self, tp: TopicPartition, records: list[Any]) -> list[Any]:
        """``records`` below the partition's stop offset; reaching it finishes the partition."""
        bound = self.bounds.get(tp.partition)
        if bound is None or not records:
            return records
        if records[-1].offset >= bound - 1:
            self._finish(tp)
        return [r for r in records if r.offset < bound]

    def _finish(self, tp: TopicPartition) -> None:
        self.done.add(tp.partition)
        self.consumer.pause(tp)


def behind_reported_end(consumer: KafkaConsumer, assignment: Sequence[TopicPartition]) -> bool:
    """Whether a partition is behind the broker's end offset (a lower bound on embedded Tansu)."""
    ends = consumer.end_offsets(list(assignment))
    return any(consumer.position(tp) < ends[tp] for tp in assignment)
