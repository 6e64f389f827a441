"""A broker that restarts: the embedded broker's in-memory log starts again at offset 0.

Each test runs a private embedded broker in its own home (real topic names, nothing shared with
other tests), stops it and starts a new one in the same folder (a new log), and lands into Delta
on disk. Landing, the sensors' lag and ``broker stop`` must see exactly what the new log holds,
and bronze must hold every produced message once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from kafka import KafkaProducer
from kafka.errors import KafkaError

import pipelines.offsets as offsets
import pipelines.sensors as sensors
from pipelines.broker import BrokerInfo, broker_status, resolve_broker
from pipelines.broker_stop import stop_embedded_broker
from pipelines.cli import main
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.produce import ingest_topic
from pipelines.resources import KafkaResource, LakeResource
from pipelines.simulator import simulate_candles
from warehouse.bronze import LandedBatch, log_app_id, stored_log_id, stored_offsets
from warehouse.catalog import BRONZE_REJECTS
from warehouse.errors import BrokerError, CommitConflictError, OffsetsLostError
from warehouse.lake import Lake, read_table, transaction_versions
from warehouse.settings import Settings, load_settings
from warehouse.topics import CANDLES, TOPICS

SPEC = TOPICS[CANDLES]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
HOUR_MS = 3_600_000
END_MS = 1_714_521_600_000  # 2024-05-01 00:00 UTC


class Home:
    """A state folder with its lake and the embedded broker in ``<home>/broker``."""

    def __init__(
        self, root: Path, broker_at: Callable[[Path], AbstractContextManager[str]]
    ) -> None:
        self.root = root
        self.lake = Lake(str(root / "lake"))
        self.broker_at = broker_at
        self.stack = ExitStack()
        self.round = 0

    @property
    def settings(self) -> Settings:
        return load_settings()

    def start(self) -> BrokerInfo:
        """Start a broker (a new, empty log) and create the candles topic on it."""
        bootstrap = self.stack.enter_context(self.broker_at(self.root / "broker"))
        ensure_topics(bootstrap, [SPEC])
        info = broker_status(self.root / "broker")
        assert info is not None
        return info

    def restart(self) -> BrokerInfo:
        old = broker_status(self.root / "broker")
        self.stack.close()
        new = self.start()
        assert old is not None and new.log_id != old.log_id
        return new

    def produce(self, hours: int) -> list[dict[str, Any]]:
        """``hours`` new candles per symbol (never the same bar twice across calls)."""
        self.round += 1
        messages = list(
            simulate_candles(
                SYMBOLS, hours=hours, seed=self.round, end_ms=END_MS + self.round * 1_000 * HOUR_MS
            )
        )
        producer = make_producer(resolve_broker(self.settings).bootstrap)
        try:
            assert produce_messages(producer, SPEC.topic, SPEC.key_field, messages) == len(messages)
        finally:
            producer.close()
        return messages

    def land(self, *, log_id: int | None, max_records: int | None = None) -> IngestReport:
        return land_topic(
            resolve_broker(self.settings).bootstrap,
            SPEC,
            bronze=self.lake.location(SPEC.table),
            rejects=self.lake.location(BRONZE_REJECTS),
            options=IngestOptions(poll_timeout_ms=300, max_records=max_records),
            log_id=log_id,
        )

    def bronze(self) -> pl.DataFrame:
        return read_table(self.lake.location(SPEC.table))


@pytest.fixture
def home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    broker_at: Callable[[Path], AbstractContextManager[str]],
) -> Iterator[Home]:
    monkeypatch.setenv("MARKETLAKE_HOME", str(tmp_path))
    monkeypatch.setenv("MARKETLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.delenv("MARKETLAKE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setattr(sensors, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(offsets, "HOLD_PROBE_S", 0.5)
    state = Home(tmp_path, broker_at)
    try:
        yield state
    finally:
        state.stack.close()


def assert_landed_once(home: Home, produced: Sequence[Mapping[str, Any]]) -> None:
    """Bronze holds every produced candle exactly once, and nothing else."""
    bronze = home.bronze()
    keys = bronze.select("symbol", pl.col("open_time").dt.epoch("ms"))
    assert keys.height == keys.unique().height == len(produced)
    assert set(keys.iter_rows()) == {(m["symbol"], m["open_time"]) for m in produced}


def sensor_request(home: Home) -> dg.SensorResult | dg.SkipReason:
    return sensors.lag_run_request(
        CANDLES, KafkaResource(home=str(home.root)), LakeResource(uri=home.lake.uri)
    )


def test_a_broker_json_without_log_id_still_loads(tmp_path: Path) -> None:
    # written before log ids existed: the start time stands for the log
    state = {"bootstrap": "127.0.0.1:9", "pid": 1, "started_at": 1_714_521_600.25}
    assert BrokerInfo.from_state(state).log_id == 1_714_521_600_250
    assert BrokerInfo.from_state({**state, "log_id": 7}).log_id == 7


@pytest.mark.parametrize(
    ("old_hours", "new_hours"),
    [
        (40, 10),  # the new log stays below the dead log's offsets
        (10, 40),  # the new log passes them: its first records must not be skipped
    ],
)
def test_after_a_restart_landing_continues_on_the_new_log_exactly_once(
    home: Home, old_hours: int, new_hours: int, caplog: pytest.LogCaptureFixture
) -> None:
    first = home.start()
    old = home.produce(old_hours)
    assert home.land(log_id=first.log_id).rows == len(old)
    location = home.lake.location(SPEC.table)
    assert stored_log_id(location, SPEC.table, SPEC.topic) == first.log_id
    dead_offsets = stored_offsets(location, SPEC.table, SPEC.topic, range(SPEC.partitions))

    second = home.restart()
    new = home.produce(new_hours)
    # the sensor: every partition starts at the new log's beginning, the key names the log
    request = sensor_request(home)
    assert isinstance(request, dg.SensorResult), request
    [run] = request.run_requests or []
    assert json.loads(run.tags["marketlake/start_offsets"]) == {
        str(p): 0 for p in range(SPEC.partitions)
    }
    assert 0 < int(run.tags["marketlake/lag"]) <= len(new)
    assert run.run_key.endswith(f";log={second.log_id}")

    # landing: exactly the new log, with a warning naming the table, topic, logs and offsets
    with caplog.at_level(logging.WARNING, logger="pipelines.ingest"):
        report = home.land(log_id=second.log_id)
    assert report.rows == len(new) and report.rejects == 0
    assert report.start_offsets == dict.fromkeys(range(SPEC.partitions), 0)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "pipelines.ingest"]
    assert f"{SPEC.table} <- {SPEC.topic}" in warning
    assert f"log {first.log_id} -> log {second.log_id}" in warning
    assert str({p: o for p, o in dead_offsets.items() if o is not None}) in warning
    assert stored_log_id(location, SPEC.table, SPEC.topic) == second.log_id
    assert_landed_once(home, old + new)

    # caught up on the new log: nothing lands twice, the sensor is quiet
    assert home.land(log_id=second.log_id).records == 0
    assert isinstance(sensor_request(home), dg.SkipReason)
    more = home.produce(5)
    assert home.land(log_id=second.log_id).rows == len(more)
    assert_landed_once(home, old + new + more)


def test_the_new_logs_rejects_are_kept_although_the_dead_log_had_some_at_their_offsets(
    home: Home,
) -> None:
    def send_bad(values: list[bytes]) -> None:
        producer = KafkaProducer(bootstrap_servers=resolve_broker(home.settings).bootstrap)
        for value in values:
            producer.send(SPEC.topic, key=b"BTCUSDT", value=value, partition=0)
        producer.flush()
        producer.close()

    first = home.start()
    send_bad([b"not json", b"[1]", b"\xff"])
    assert home.land(log_id=first.log_id).rejects == 3
    second = home.restart()
    send_bad([b"still not json", b"[2]"])  # offsets 0 and 1 again, on partition 0
    assert home.land(log_id=second.log_id).rejects == 2
    rejects = read_table(home.lake.location(BRONZE_REJECTS))
    assert sorted(rejects["raw"].to_list()) == sorted(
        [b"not json", b"[1]", b"\xff", b"still not json", b"[2]"]
    )


def test_offsets_landed_without_a_log_id_belong_to_a_dead_log(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    home.start()
    old = home.produce(30)
    assert home.land(log_id=None).rows == len(old)  # a table landed before log ids existed
    second = home.restart()
    new = home.produce(8)
    landed: list[LandedBatch] = []
    with caplog.at_level(logging.WARNING, logger="pipelines.ingest"):
        report = ingest_topic(home.settings, CANDLES, progress=False, on_batch=landed.append)
    assert report.rows == len(new) == sum(batch.rows for batch in landed)
    assert any("no log id" in r.getMessage() for r in caplog.records)
    location = home.lake.location(SPEC.table)
    assert transaction_versions(location, [log_app_id(SPEC.table, SPEC.topic)]) == {
        log_app_id(SPEC.table, SPEC.topic): second.log_id
    }
    assert_landed_once(home, old + new)


def test_an_external_log_that_lost_the_offsets_fails_until_they_are_reset(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home.start()
    old = home.produce(30)
    assert home.land(log_id=None).rows == len(old)
    stored = stored_offsets(
        home.lake.location(SPEC.table), SPEC.table, SPEC.topic, range(SPEC.partitions)
    )
    home.restart()
    new = home.produce(5)
    # an external cluster (no log id) whose topic was recreated: the offsets are gone
    with pytest.raises(OffsetsLostError) as lost:
        home.land(log_id=None)
    message = str(lost.value)
    assert f"{SPEC.table} stores offsets that {SPEC.topic} no longer holds" in message
    for partition, offset in stored.items():
        if offset is not None:
            assert f"partition {partition}: stored next offset {offset + 1}" in message
    assert f"marketlake ingest --topic {SPEC.topic} --reset-offsets earliest" in message
    # the same address seen as an external cluster (no embedded broker in that home)
    bootstrap = resolve_broker(home.settings).bootstrap
    external = KafkaResource(bootstrap=bootstrap, home=str(home.root / "elsewhere"))
    with pytest.raises(OffsetsLostError):
        sensors.lag_run_request(CANDLES, external, LakeResource(uri=home.lake.uri))

    monkeypatch.setenv("MARKETLAKE_KAFKA_BOOTSTRAP", bootstrap)
    assert main(["ingest", "--reset-offsets", "earliest"]) == 2  # refuses without a topic
    assert "name it with --topic" in capsys.readouterr().err
    assert main(["ingest", "--topic", SPEC.topic, "--reset-offsets", "earliest"]) == 0
    out = capsys.readouterr().out
    for partition, offset in stored.items():
        if offset is not None:
            assert f"partition {partition}: {offset + 1} -> 0" in out
    assert f"{SPEC.topic}: landed {len(new)} rows" in out
    assert_landed_once(home, old + new)


def test_an_external_reset_to_latest_skips_what_the_log_holds(home: Home) -> None:
    from pipelines.offset_moves import reset_offsets

    home.start()
    old = home.produce(6)
    bootstrap = resolve_broker(home.settings).bootstrap
    moved = reset_offsets(
        bootstrap,
        SPEC,
        bronze=home.lake.location(SPEC.table),
        rejects=home.lake.location(BRONZE_REJECTS),
        to="latest",
    )
    # the real end, not the broker's reported end (a lower bound on the embedded broker)
    assert sum(moved.after.values()) == len(old)
    assert set(moved.before.values()) == {None}
    new = home.produce(3)
    assert home.land(log_id=None).rows == len(new)
    assert_landed_once(home, new)


def test_broker_stop_lands_what_is_unlanded_then_stops(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    info = home.start()
    first = home.produce(20)
    home.land(log_id=info.log_id, max_records=7)
    rest = home.produce(4)
    assert main(["broker", "stop"]) == 0
    out = capsys.readouterr().out
    assert f"{SPEC.topic}: landed {len(first) + len(rest) - 7} records before stopping" in out
    assert "broker stopped" in out
    assert broker_status(home.root / "broker") is None
    assert_landed_once(home, first + rest)


def test_broker_stop_refuses_while_records_cannot_be_landed_unless_forced(home: Home) -> None:
    home.start()
    produced = home.produce(5)
    # a bronze table landing cannot append to (another schema): the records stay unlanded
    write_deltalake(home.lake.location(SPEC.table).uri, pa.table({"unrelated": [1]}))
    with pytest.raises(BrokerError, match=rf"{SPEC.topic}: {len(produced)}\)") as refused:
        stop_embedded_broker(home.settings)
    assert "--force" in str(refused.value)
    assert broker_status(home.root / "broker") is not None  # still running
    stopped = stop_embedded_broker(home.settings, force=True)
    assert stopped.stopped and stopped.dropped == {SPEC.topic: len(produced)}
    assert broker_status(home.root / "broker") is None


def test_broker_stop_next_to_a_live_lander_and_source_lands_everything_once(home: Home) -> None:
    # whichever commits first, the other conflicts cleanly: the stop then waits for the lag;
    # a source still sending cannot hold the stop (the slowest test here: the broker takes
    # ~5 s to exit while clients are connected)
    info = home.start()
    stop = threading.Event()
    outcome: list[object] = []

    def live_lander() -> None:
        try:
            outcome.append(
                land_topic(
                    info.bootstrap,
                    SPEC,
                    bronze=home.lake.location(SPEC.table),
                    rejects=home.lake.location(BRONZE_REJECTS),
                    options=IngestOptions(follow=True, poll_timeout_ms=200, batch_records=50),
                    stop=stop,
                    log_id=info.log_id,
                )
            )
        except CommitConflictError as exc:
            outcome.append(exc)

    live = list(simulate_candles(["DOGEUSDT"], hours=2_000, seed=9, end_ms=END_MS))
    producer = make_producer(info.bootstrap)

    def live_source() -> None:
        for message in live:
            if stop.wait(0.02):
                return
            producer.send(SPEC.topic, key=message["symbol"], value=message)

    threads = [threading.Thread(target=live_lander), threading.Thread(target=live_source)]
    for thread in threads:
        thread.start()
    try:
        produced = home.produce(60)
        result = stop_embedded_broker(home.settings, wait_s=20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        with suppress(KafkaError):  # what it still buffers has no broker to go to
            producer.close(timeout=1)
    assert result.stopped and not result.dropped and not result.failures
    assert len(outcome) == 1  # the live lander ended: caught up, or beaten to a commit
    assert broker_status(home.root / "broker") is None
    bronze = home.bronze()
    landed_live = bronze.filter(pl.col("symbol") == "DOGEUSDT")
    assert landed_live.height > 0
    assert_landed_once(home, produced + live[: landed_live.height])
