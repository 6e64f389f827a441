"""Exactly once under crashes: SIGKILL the ingest process at random moments, many times.

A load of ~60,000 messages (a few of them bad) on a fresh topic of the session broker; an
ingest subprocess is killed with SIGKILL at a random moment, restarted, killed again ... then
allowed to finish. Every produced offset must then be in bronze or in the rejects table exactly
once. Then two ingests race on one table: one wins, the other fails cleanly, nothing doubles.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from kafka import KafkaProducer

from pipelines.ingest import IngestOptions, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from warehouse.bronze import REJECTS_TABLE
from warehouse.errors import CommitConflictError
from warehouse.lake import Lake, open_table, read_table
from warehouse.topics import CANDLES, TOPICS, TopicSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = 10
BAD_VALUES = [b"not json", b'{"symbol": "BTCUSDT"}', b"\xff"]

RUNNER = textwrap.dedent(
    """
    import sys
    from dataclasses import replace
    from pipelines.ingest import IngestOptions, land_topic
    from warehouse.bronze import REJECTS_TABLE
    from warehouse.lake import Lake
    from warehouse.topics import CANDLES, TOPICS

    bootstrap, topic, lake_uri = sys.argv[1:4]
    spec = replace(TOPICS[CANDLES], topic=topic)
    lake = Lake(lake_uri)
    report = land_topic(
        bootstrap, spec, bronze=lake.location(spec.table), rejects=lake.location(REJECTS_TABLE),
        options=IngestOptions(batch_records=500, poll_timeout_ms=300),
    )
    print("done", report.records, flush=True)
    """
)


def _fresh_spec(broker: str) -> TopicSpec:
    spec = replace(TOPICS[CANDLES], topic=f"test.crash.{uuid.uuid4().hex[:8]}")
    ensure_topics(broker, [spec])
    return spec


def _produce_load(broker: str, spec: TopicSpec, hours: int) -> int:
    producer = make_producer(broker)
    try:
        messages = simulate_candles(["BTCUSDT", "ETHUSDT", "SOLUSDT"], hours=hours, seed=4)
        sent = produce_messages(producer, spec.topic, "symbol", messages)
    finally:
        producer.close()
    raw = KafkaProducer(bootstrap_servers=broker)
    for value in BAD_VALUES:
        raw.send(spec.topic, key=b"BTCUSDT", value=value)
    raw.flush()
    raw.close()
    return sent + len(BAD_VALUES)


def _version(lake: Lake, spec: TopicSpec) -> int | None:
    table = open_table(lake.location(spec.table))
    return None if table is None else table.version()


def _landed(lake: Lake, spec: TopicSpec) -> pl.DataFrame:
    bronze = read_table(lake.location(spec.table), columns=["kafka_partition", "kafka_offset"])
    frames = [bronze.rename({"kafka_partition": "p", "kafka_offset": "o"})]
    if open_table(lake.location(REJECTS_TABLE)) is not None:
        rejects = read_table(lake.location(REJECTS_TABLE), columns=["topic", "partition", "offset"])
        rejects = rejects.filter(pl.col("topic") == spec.topic).drop("topic")
        frames.append(rejects.rename({"partition": "p", "offset": "o"}))
    return pl.concat(frames, how="vertical_relaxed")


def _assert_every_offset_once(landed: pl.DataFrame, produced: int) -> None:
    assert landed.height == produced
    assert landed.unique().height == produced
    per_partition = landed.group_by("p").agg(pl.len(), pl.col("o").max())
    assert all(row["len"] == row["o"] + 1 for row in per_partition.iter_rows(named=True))


def test_sigkill_at_random_moments_loses_and_doubles_nothing(broker: str, lake_dir: Path) -> None:
    spec = _fresh_spec(broker)
    produced = _produce_load(broker, spec, hours=20_000)  # 60,003 messages
    lake = Lake(str(lake_dir))
    command = [sys.executable, "-c", RUNNER, broker, spec.topic, str(lake_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random(7)
    versions: list[int | None] = [None]
    for _ in range(KILLS):
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL)
        # wait until this process has committed something, then kill it at a random moment of
        # the following batches (mid-fetch, mid-decode or mid-commit)
        deadline = time.monotonic() + 30
        while _version(lake, spec) == versions[-1] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        versions.append(_version(lake, spec))
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert len(set(versions)) == KILLS + 1, f"a kill found nothing left to land: {versions}"
    _assert_every_offset_once(_landed(lake, spec), produced)


def test_two_ingests_on_one_table_one_wins_the_other_fails_cleanly(
    broker: str, lake_dir: Path
) -> None:
    spec = _fresh_spec(broker)
    produced = _produce_load(broker, spec, hours=4_000)
    lake = Lake(str(lake_dir))
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def ingest() -> None:
        start.wait()
        try:
            outcomes.append(
                land_topic(
                    broker,
                    spec,
                    bronze=lake.location(spec.table),
                    rejects=lake.location(REJECTS_TABLE),
                    options=IngestOptions(batch_records=20_000, poll_timeout_ms=300),
                )
            )
        except CommitConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    conflicts = [o for o in outcomes if isinstance(o, CommitConflictError)]
    assert len(outcomes) == 2 and len(conflicts) <= 1
    assert all("nothing" in str(c) for c in conflicts)  # "... nothing was written"
    if not conflicts:  # the second started after the first had committed: it found nothing new
        assert sorted(o.records for o in outcomes) == [0, produced]  # type: ignore[attr-defined]
    # whoever lost, a rerun completes and every offset is there once
    land_topic(broker, spec, bronze=lake.location(spec.table), rejects=lake.location(REJECTS_TABLE))
    _assert_every_offset_once(_landed(lake, spec), produced)


@pytest.mark.parametrize("prefetch", [True, False])  # background fetch thread or inline
def test_both_fetch_modes_land_the_same_rows(broker: str, lake_dir: Path, prefetch: bool) -> None:
    spec = _fresh_spec(broker)
    produced = _produce_load(broker, spec, hours=700)
    lake = Lake(str(lake_dir))
    report = land_topic(
        broker,
        spec,
        bronze=lake.location(spec.table),
        rejects=lake.location(REJECTS_TABLE),
        options=IngestOptions(batch_records=500, poll_timeout_ms=300, prefetch=prefetch),
    )
    assert report.records == produced and report.rejects == len(BAD_VALUES)
    _assert_every_offset_once(_landed(lake, spec), produced)
