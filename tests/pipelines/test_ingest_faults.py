"""Faults around ingestion: the broker is down (then back), messages gain a field."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.broker import free_port, port_open, tansu_binary
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from warehouse.bronze import REJECTS_TABLE
from warehouse.errors import BrokerError
from warehouse.lake import Lake, read_table
from warehouse.topics import CANDLES, TOPICS


def _start_tansu(port: int) -> subprocess.Popen[bytes]:
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "tansu did not start"
        time.sleep(0.05)
    return process


def test_no_broker_fails_with_a_clear_error_after_retries(lake_dir: Path) -> None:
    lake = Lake(str(lake_dir))
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerError, match=f"no Kafka broker answers at {address} after 3 attempts"):
        land_topic(
            address,
            TOPICS[CANDLES],
            bronze=lake.location("bronze/candles"),
            rejects=lake.location(REJECTS_TABLE),
            options=IngestOptions(broker_retries=2, retry_backoff_s=0.05),
        )


def test_ingest_retries_while_the_broker_is_down_and_resumes_when_it_is_back(
    lake_dir: Path,
) -> None:
    lake = Lake(str(lake_dir))
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    spec = replace(TOPICS[CANDLES], topic="test.faults.down")
    stop = threading.Event()
    landed: list[int] = []
    reports: list[IngestReport | BaseException] = []

    def follow() -> None:
        try:
            reports.append(
                land_topic(
                    bootstrap,
                    spec,
                    bronze=lake.location(spec.table),
                    rejects=lake.location(REJECTS_TABLE),
                    options=IngestOptions(
                        follow=True, poll_timeout_ms=200, broker_retries=30, retry_backoff_s=0.2
                    ),
                    on_batch=lambda batch: landed.append(batch.rows),
                    stop=stop,
                )
            )
        except BaseException as exc:
            reports.append(exc)

    worker = threading.Thread(target=follow)
    worker.start()
    time.sleep(1.5)  # the ingest is retrying against a closed port
    assert worker.is_alive() and not landed
    broker = _start_tansu(port)
    try:
        ensure_topics(bootstrap, [spec])
        producer = make_producer(bootstrap)
        sent = produce_messages(
            producer, spec.topic, "symbol", simulate_candles(["BTCUSDT"], hours=300)
        )
        producer.close()
        deadline = time.monotonic() + 30
        while sum(landed) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(timeout=30)
        broker.kill()
        broker.wait()
    assert sum(landed) == sent
    assert isinstance(reports[0], IngestReport) and reports[0].rows == sent
    assert read_table(lake.location(spec.table)).height == sent


def test_an_extra_field_is_ignored_and_counted(broker: str, lake_dir: Path) -> None:
    spec = replace(TOPICS[CANDLES], topic=f"test.faults.extra.{uuid.uuid4().hex[:6]}")
    ensure_topics(broker, [spec])
    old = list(simulate_candles(["BTCUSDT"], hours=50, seed=1))
    new = [{**m, "exchange": "binance", "trades": 17} for m in old[:20]]  # the producer evolved
    producer = make_producer(broker)
    sent = produce_messages(producer, spec.topic, "symbol", [*old, *new])
    producer.close()
    lake = Lake(str(lake_dir))
    report = land_topic(
        broker,
        spec,
        bronze=lake.location(spec.table),
        rejects=lake.location(REJECTS_TABLE),
        options=IngestOptions(poll_timeout_ms=300),
    )
    assert report.rows == sent and report.rejects == 0 and report.extra_fields == 20
    table = read_table(lake.location(spec.table))
    assert "exchange" not in table.columns and table.height == sent
