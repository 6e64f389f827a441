"""The dashboard's system status: landing lag per topic, newest row per layer, data checks.

Plain Python, no Dagster (``pipelines.live_status`` computes the lag through a Dagster resource,
so the small part it needs is done here with the same pieces: the broker of
:func:`pipelines.broker.resolve_broker`, a consumer of :func:`pipelines.kafka_io.make_consumer`
and the offsets stored in the bronze Delta log).

* Lag of a topic: per partition, the broker's end offset minus the next offset to land (the
  stored offset + 1; the log's beginning for a partition never landed or for a restarted
  embedded broker, whose new log the lake has not seen). The embedded broker reports end offsets
  that can be low (STACK.md), so there the lag is a lower bound; never negative.
* Newest row per layer: the maximum event time of each layer's table, read when its version moves.
* Checks: those of :mod:`warehouse.checks` that the service can run on what it reads anyway
  (freshness of candles and gold, OHLC sanity and duplicate keys of the charted candles). The
  Dagster asset checks themselves are in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import polars as pl

from serving.board_model import CheckStatus, LayerStatus
from warehouse.bronze import stored_log_id, stored_offsets
from warehouse.catalog import (
    BRONZE_CANDLES,
    BRONZE_POSTS,
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    GOLD_SERVED_PREDICTIONS,
    SILVER_CANDLES,
    SILVER_POSTS,
)
from warehouse.checks import duplicate_keys, freshness, ohlc_sanity
from warehouse.errors import MarketlakeError
from warehouse.lake import Lake, open_table
from warehouse.settings import Settings
from warehouse.topics import TOPICS

LAYERS: tuple[tuple[str, str, str], ...] = (
    ("bronze", BRONZE_CANDLES, "open_time"),
    ("bronze", BRONZE_POSTS, "ts"),
    ("silver", SILVER_CANDLES, "ts"),
    ("silver", SILVER_POSTS, "ts"),
    ("gold", GOLD_FEATURES, "ts"),
    ("predictions", GOLD_PREDICTIONS, "ts"),
    ("served", GOLD_SERVED_PREDICTIONS, "served_at"),
)
"""(layer, table, event-time column) whose newest row the status shows."""

NO_BROKER = "no Kafka broker: start one with `marketlake up` or `marketlake broker start`"


def newest_row(lake: Lake, table: str, column: str) -> LayerStatus:
    """The newest ``column`` value of ``table`` and its Delta version (None: no table)."""
    layer = next((name for name, t, _ in LAYERS if t == table), table.split("/")[0])
    delta = open_table(lake.location(table))
    if delta is None:
        return LayerStatus(layer=layer, table=table, newest=None, version=None)
    dataset = delta.to_pyarrow_dataset()
    newest = None
    if column in dataset.schema.names:
        newest = pl.scan_pyarrow_dataset(dataset).select(pl.col(column).max()).collect().item()
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return LayerStatus(
        layer=layer,
        table=table,
        newest=newest if isinstance(newest, datetime) else None,
        version=delta.version(),
    )


def topic_lag(settings: Settings, lake: Lake) -> tuple[dict[str, int | str], str | None]:
    """Per topic, the records in Kafka not landed in bronze yet (or why that is unknown).

    Returns:
        ``(lag, note)``: ``note`` says why there is no lag at all (no broker), else None.
    """
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    from pipelines.broker import resolve_broker
    from pipelines.kafka_io import make_consumer

    try:
        endpoint = resolve_broker(settings)
        consumer = make_consumer(endpoint.bootstrap, request_timeout_ms=5000)
    except MarketlakeError:
        return {}, NO_BROKER
    lags: dict[str, int | str] = {}
    try:
        for topic, spec in TOPICS.items():
            try:
                partitions = sorted(consumer.partitions_for_topic(spec.topic) or [])
                if not partitions:
                    lags[topic] = "no such topic yet"
                    continue
                assigned = [TopicPartition(spec.topic, p) for p in partitions]
                ends = consumer.end_offsets(assigned)
                beginnings = consumer.beginning_offsets(assigned)
            except KafkaError as exc:
                lags[topic] = f"unknown: {type(exc).__name__}: {exc}"
                continue
            location = lake.location(spec.table)
            stored = stored_offsets(location, spec.table, spec.topic, partitions)
            new_log = endpoint.log_id is not None and (
                stored_log_id(location, spec.table, spec.topic) != endpoint.log_id
            )
            lag = 0
            for tp in assigned:
                last = stored[tp.partition]
                start = beginnings[tp] if new_log or last is None else last + 1
                lag += max(0, ends[tp] - start)
            lags[topic] = lag
    finally:
        consumer.close()
    return lags, None


def data_checks(
    candles: pl.DataFrame | None,
    layers: Mapping[str, LayerStatus],
    *,
    now: datetime | None = None,
) -> list[CheckStatus]:
    """The checks of :mod:`warehouse.checks` on the charted candles and the layers' newest rows.

    Args:
        candles: the charted silver candles (``symbol, ts, open, high, low, close``); None:
            no candles yet (their checks are left out).
        layers: the newest row per table (from :func:`newest_row`).
        now: the reference time of the freshness checks; default None: the wall clock.
    """
    out = []
    for table in (SILVER_CANDLES, GOLD_FEATURES):
        layer = layers.get(table)
        if layer is None or layer.version is None:
            continue
        outcome = freshness(layer.newest, now=now)
        out.append(
            CheckStatus(
                name=f"{table} freshness", passed=outcome.passed, description=outcome.description
            )
        )
    if candles is not None and not candles.is_empty():
        for outcome in (ohlc_sanity(candles), duplicate_keys(candles, ["symbol", "ts"])):
            out.append(
                CheckStatus(
                    name=f"{SILVER_CANDLES} {outcome.name}",
                    passed=outcome.passed,
                    description=outcome.description,
                )
            )
    return out
