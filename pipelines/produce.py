"""Producing into and landing from Kafka, as the CLI and the demo call them (with progress bars)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipelines.broker import resolve_bootstrap
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from pipelines.sources.candle_files import iter_candle_messages, read_candle_file
from warehouse.catalog import BRONZE_REJECTS
from warehouse.lake import Lake
from warehouse.settings import Settings
from warehouse.topics import CANDLES, TOPICS, topic_spec


def produce_to_topic(
    settings: Settings, topic: str, messages: Iterable[Mapping[str, Any]], *, total: int | None
) -> int:
    """Send ``messages`` to ``topic`` keyed by the topic's key field, with a progress bar."""
    bootstrap = resolve_bootstrap(settings)
    ensure_topics(bootstrap)
    spec = topic_spec(topic)
    producer = make_producer(bootstrap)
    try:
        with tqdm(total=total, unit="msg", desc=f"produce {topic}", leave=False) as bar:
            return produce_messages(producer, topic, spec.key_field, _counted(messages, bar))
    finally:
        producer.close()


def _counted(messages: Iterable[Mapping[str, Any]], bar: tqdm) -> Iterable[Mapping[str, Any]]:
    for message in messages:
        bar.update(1)
        yield message


def produce_simulated_candles(
    settings: Settings, symbols: list[str], *, hours: int, seed: int
) -> int:
    """Produce ``hours`` simulated hourly candles per symbol (see ``pipelines.simulator``)."""
    messages = simulate_candles(symbols, hours=hours, seed=seed)
    return produce_to_topic(settings, CANDLES, messages, total=hours * len(symbols))


def produce_candle_file(settings: Settings, path: Path, *, symbol: str | None) -> int:
    """Replay a real OHLCV file (any of the supported layouts) into ``market.candles``."""
    frame = read_candle_file(path, symbol=symbol)
    return produce_to_topic(settings, CANDLES, iter_candle_messages(frame), total=frame.height)


def ingest_topic(settings: Settings, topic: str, *, max_records: int | None = None) -> IngestReport:
    """Land ``topic`` into its bronze table until caught up, with a progress bar."""
    spec = topic_spec(topic)
    lake = Lake(settings.lake_uri, settings.storage_options)
    bootstrap = resolve_bootstrap(settings)
    with tqdm(unit="msg", desc=f"ingest {topic}", leave=False) as bar:
        return land_topic(
            bootstrap,
            spec,
            bronze=lake.location(spec.table),
            rejects=lake.location(BRONZE_REJECTS),
            options=IngestOptions(max_records=max_records),
            on_batch=lambda landed: bar.update(landed.rows + landed.rejects),
        )


__all__ = ["TOPICS", "ingest_topic", "produce_candle_file", "produce_simulated_candles"]
