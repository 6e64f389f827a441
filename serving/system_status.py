"""The dashboard's system status: landing lag per topic, newest row per layer, data checks.

Plain Python, no Dagster (``pipelines.live_status`` computes the lag through a Dagster resource,
so the small part it needs is done here with the same pieces: the broker of
:func:`pipelines.broker.resolve_broker`, a consumer of :func:`pipelines.kafka_io.make_consumer`
and the offsets stored in the bronze Delta log).

* Lag of a topic: per partition, the broker's end offset minus the next offset to land (the
  stored offset + 1; the log's beginning for a partition never landed or for a restarted
  embedded broker, whose new log the lake has not seen). The embedded broker reports end offsets
  that can be low (STACK.md), so there the lag is a lower bound; never negative.
* Newest row per layer: the maximum event time of each layer's table, read when its version moves,
  from the Delta log's file statistics (only the files that can hold the newest rows are read;
  a table without statistics is scanned).
* Checks: those of :mod:`warehouse.checks` that the service can run on what it reads anyway
  (freshness of candles and gold, OHLC sanity and duplicate keys of the charted candles). The
  Dagster asset checks themselves are in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

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


def newest_row(
    lake: Lake, table: str, column: str, *, snapshot: DeltaTable | None = None
) -> LayerStatus:
    """The newest ``column`` value of ``table`` and its Delta version (None: no table).

    Args:
        lake: the lake.
        table: the table, e.g. ``bronze/candles``.
        column: its event-time column.
        snapshot: the table as the watcher already holds it (read at its version, nothing is
            opened); default None: open the table's latest version.
    """
    layer = next((name for name, t, _ in LAYERS if t == table), table.split("/")[0])
    delta = snapshot if snapshot is not None else open_table(lake.location(table))
    if delta is None:
        return LayerStatus(layer=layer, table=table, newest=None, version=None)
    newest = newest_value(delta, column)
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return LayerStatus(
        layer=layer,
        table=table,
        newest=newest if isinstance(newest, datetime) else None,
        version=delta.version(),
    )


def newest_value(delta: DeltaTable, column: str) -> Any:
    """The maximum of ``column`` in ``delta``, found from the log's file statistics where it can.

    For a timestamp column, each file's ``max.<column>`` statistic in the Delta log gives the
    newest value without reading data. Statistics can be truncated (Delta keeps timestamps to the
    millisecond), so the exact value is read from the rows within :data:`STATS_PRECISION` of
    it, in the files whose statistics say they can hold such rows: the other files are pruned
    from the log and never opened, so what is read does not grow with the table. The column of
    every file is read when a file has no statistics for it or it is not a timestamp.

    Returns:
        The maximum; None: no rows, no such column, or only nulls.
    """
    schema = pa.schema(delta.schema().to_arrow())
    if column not in schema.names:
        return None
    newest_stat = None
    if pa.types.is_timestamp(schema.field(column).type):
        known, newest_stat = _stats_max(pa.table(delta.get_add_actions(flatten=True)), column)
        if known and newest_stat is None:
            return None  # no files, or only nulls
    if newest_stat is None:
        rows = delta.to_pyarrow_dataset().to_table(columns=[column])
    else:
        since = newest_stat - STATS_PRECISION
        dataset = delta.to_pyarrow_dataset(file_pruning_predicate=[(column, ">=", since)])
        rows = dataset.to_table(columns=[column], filter=pc.field(column) >= pa.scalar(since))
    return pl.from_arrow(rows).select(pl.col(column).max()).item()  # type: ignore[union-attr]


STATS_PRECISION = timedelta(milliseconds=1)
"""How far below a file's true maximum its ``max`` statistic can be (Delta truncates to ms)."""


def _stats_max(actions: pa.Table, column: str) -> tuple[bool, datetime | None]:
    """Whether every file has statistics for ``column``, and their largest ``max`` (None: none).

    A file whose ``max`` is null holds only nulls in ``column`` when its null count equals its
    row count; otherwise its statistics are missing.
    """
    names = actions.column_names
    if actions.num_rows == 0:
        return True, None
    if f"max.{column}" not in names:
        return False, None
    maxes = actions[f"max.{column}"]
    missing = pc.is_null(maxes)
    if f"null_count.{column}" in names and "num_records" in names:
        only_nulls = pc.equal(actions[f"null_count.{column}"], actions["num_records"])
        missing = pc.and_(missing, pc.invert(pc.fill_null(only_nulls, False)))
    if pc.any(missing).as_py():
        return False, None
    newest = pc.max(maxes).as_py()
    return True, newest if isinstance(newest, datetime) else None


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
