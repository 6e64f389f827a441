"""Kafka clients configured once: topic creation, the producer, and the assign-mode consumer."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.serializer import Serializer

from warehouse.errors import BrokerError
from warehouse.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)

CLIENT_ID = "marketlake"


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] = TOPICS.values()) -> None:
    """Create the topics that do not exist yet, with each spec's partition count."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=CLIENT_ID)
    except KafkaError as exc:
        raise BrokerError(f"no Kafka broker answers at {bootstrap}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(spec.topic, num_partitions=spec.partitions, replication_factor=1)
            for spec in specs
            if spec.topic not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


LIVE_PRODUCER_TIMEOUTS = {
    "request_timeout_ms": 4_000,
    "delivery_timeout_ms": 8_000,
    "max_block_ms": 8_000,
}
"""Timeouts of a long-running source's producer: a broker that died fails a send within 8 s
(instead of kafka-python's 2 minutes), so the source can move to the restarted broker."""


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer of JSON messages keyed by strings; batches for throughput.

    Args:
        bootstrap: the Kafka bootstrap address.
        overrides: more ``KafkaProducer`` settings (e.g. :data:`LIVE_PRODUCER_TIMEOUTS`).
    """
    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=CLIENT_ID,
            key_serializer=KeySerializer(),
            value_serializer=JsonSerializer(),
            linger_ms=20,
            batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024,
            **overrides,
        )
    except KafkaError as exc:
        raise BrokerError(f"no Kafka broker answers at {bootstrap}") from exc


def produce_messages(
    producer: KafkaProducer, topic: str, key_field: str, messages: Iterable[Mapping[str, Any]]
) -> int:
    """Send ``messages`` to ``topic`` keyed by ``key_field``; flush; return how many were sent."""
    sent = 0
    futures = []
    for message in messages:
        futures.append(producer.send(topic, key=str(message[key_field]), value=message))
        sent += 1
        if len(futures) >= 10_000:
            _check(futures)
            futures.clear()
    producer.flush()
    _check(futures)
    return sent


def _check(futures: list[Any]) -> None:
    for future in futures:
        try:
            future.get(timeout=60)
        except KafkaError as exc:
            raise BrokerError(f"a message was not acknowledged by the broker: {exc}") from exc


def make_consumer(bootstrap: str, **overrides: Any) -> KafkaConsumer:
    """An assign-mode consumer: no group, no auto-commit; offsets live in the Delta log."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": CLIENT_ID,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 50_000,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
    }
    config.update(overrides)
    try:
        return KafkaConsumer(**config)
    except KafkaError as exc:
        raise BrokerError(f"no Kafka broker answers at {bootstrap}") from exc


class KeySerializer(Serializer):
    """Message keys are UTF-8 strings (a symbol or a post id)."""

    def serialize(self, topic: str, headers: Any, data: str | None) -> bytes | None:
        return None if data is None else data.encode("utf-8")


class JsonSerializer(Serializer):
    """Message values are compact UTF-8 JSON objects; raw bytes pass through unchanged."""

    def serialize(self, topic: str, headers: Any, data: Mapping[str, Any] | bytes) -> bytes:
        if isinstance(data, bytes):
            return data
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
