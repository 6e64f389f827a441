"""The live lander lands as records arrive, follows a restarted broker onto its new log, and
reports each landed batch; nothing is lost or landed twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import polars as pl
import pytest

from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.lander import run_lander
from pipelines.simulator import HOUR_MS, simulate_candles
from warehouse.bronze import LandedBatch
from warehouse.catalog import BRONZE_CANDLES
from warehouse.lake import Lake, open_table, read_table
from warehouse.settings import Settings, load_settings
from warehouse.topics import CANDLES, TopicSpec

END_MS = 1_699_999_200_000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MARKETLAKE_HOME": str(tmp_path)})


def _produce(bootstrap: str, hours: int, *, end_ms: int) -> int:
    ensure_topics(bootstrap)
    producer = make_producer(bootstrap)
    try:
        messages = simulate_candles(["BTCUSDT", "ETHUSDT"], hours=hours, seed=5, end_ms=end_ms)
        return produce_messages(producer, CANDLES, "symbol", messages)
    finally:
        producer.close()


def _bronze_rows(lake: Lake) -> int:
    if open_table(lake.location(BRONZE_CANDLES)) is None:
        return 0
    return read_table(lake.location(BRONZE_CANDLES), columns=["symbol"]).height


def _wait_rows(lake: Lake, rows: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _bronze_rows(lake) < rows and time.monotonic() < deadline:
        time.sleep(0.2)


def test_lander_follows_a_restarted_broker_without_loss_or_duplicates(
    settings: Settings, broker_at: Callable[[Path], AbstractContextManager[str]]
) -> None:
    lake = Lake(settings.lake_uri)
    reported: list[tuple[str, int]] = []

    def report(spec: TopicSpec, batch: LandedBatch) -> None:
        reported.append((spec.table, batch.rows))

    stop = threading.Event()
    landed: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: landed.update(run_lander(settings, stop, topics=[CANDLES], report=report))
    )
    first_end = END_MS
    second_end = END_MS + 30 * HOUR_MS
    with broker_at(settings.broker_dir) as first:
        thread.start()
        sent = _produce(first, 20, end_ms=first_end)
        _wait_rows(lake, sent)
        assert _bronze_rows(lake) == sent == 40
    # a new broker: a new, empty log whose offsets start at 0 again
    with broker_at(settings.broker_dir) as second:
        # more records than the old log held: the new log passes the old offsets
        more = _produce(second, 30, end_ms=second_end)
        _wait_rows(lake, sent + more)
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    bronze = read_table(lake.location(BRONZE_CANDLES))
    assert bronze.height == sent + more == 100
    assert bronze.select("symbol", "open_time").is_duplicated().sum() == 0
    assert landed == {CANDLES: 100}
    assert sum(rows for table, rows in reported if table == BRONZE_CANDLES) == 100
    # every record of the second log landed, offsets 0.. of each partition once
    second_log = bronze.filter(pl.col("open_time").dt.epoch("ms") > first_end)
    per_partition = second_log.group_by("kafka_partition").agg(
        pl.col("kafka_offset").min().alias("lo"), pl.len().alias("n")
    )
    assert per_partition["lo"].to_list() == [0] * per_partition.height


def test_lander_reporting_failures_never_stop_the_landing(
    settings: Settings, broker_at: Callable[[Path], AbstractContextManager[str]]
) -> None:
    lake = Lake(settings.lake_uri)

    def broken(spec: TopicSpec, batch: LandedBatch) -> None:
        raise RuntimeError("the Dagster instance is gone")

    stop = threading.Event()
    with broker_at(settings.broker_dir) as bootstrap:
        thread = threading.Thread(
            target=run_lander, args=(settings, stop), kwargs={"topics": [CANDLES], "report": broken}
        )
        thread.start()
        sent = _produce(bootstrap, 5, end_ms=END_MS)
        _wait_rows(lake, sent)
        stop.set()
        thread.join(timeout=60)
    assert _bronze_rows(lake) == sent
