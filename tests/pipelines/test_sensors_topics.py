"""The four lag sensors on the embedded broker: each requests one bounded ingest run of its own
bronze asset, naming the offset ranges it saw, and is quiet once the run has landed them; and
each skips while the live lander of `marketlake up` lands bronze itself.

Every test sends to a fresh topic name (the topic's spec is swapped in ``TOPICS``, which the
sensors, the bronze assets and the landing code all read at call time), so messages other tests
send to the shared session broker never show up here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from kafka import TopicPartition

import pipelines.sensors as sensors
from assets.bronze import bronze_candles, bronze_fear_greed, bronze_posts, bronze_tickers
from pipelines.kafka_io import ensure_topics, make_consumer, make_producer, produce_messages
from pipelines.resources import KafkaResource, LakeResource
from pipelines.simulator import simulate_candles
from pipelines.sources.alternative_me import fear_greed_from_payload
from pipelines.sources.coingecko import tickers_from_markets
from pipelines.sources.post_files import read_posts
from pipelines.up_state import UpState, write_up_state
from warehouse.lake import Lake, read_table
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS, TopicSpec

DAY_S = 1_714_521_600  # 2024-05-01 00:00 UTC


def candle_messages(tmp: Path, round_: int) -> list[dict[str, Any]]:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    end_ms = (DAY_S + 3600 * (10 + 3 * round_)) * 1000
    return list(simulate_candles(symbols, hours=3, seed=round_, end_ms=end_ms))


def ticker_messages(tmp: Path, round_: int) -> list[dict[str, Any]]:
    coins = [
        {
            "id": coin,
            "symbol": symbol,
            "current_price": price * (1 + round_ / 100),
            "market_cap": price * 1e7,
            "total_volume": price * 1e5,
            "price_change_percentage_24h": 1.5,
            "last_updated": f"2024-05-01T1{round_}:00:00.000Z",
        }
        for coin, symbol, price in [
            ("bitcoin", "btc", 60_000.0),
            ("ethereum", "eth", 3_000.0),
            ("solana", "sol", 140.0),
            ("ripple", "xrp", 0.5),
        ]
    ]
    return tickers_from_markets(coins)


def post_messages(tmp: Path, round_: int) -> list[dict[str, Any]]:
    path = tmp / f"headlines-{round_}.csv"
    rows = [
        f"2024-05-0{round_ + 1}T0{i}:30:00Z,Bitcoin and ETH move {round_}-{i},Markets wait"
        for i in range(5)
    ]
    path.write_text("timestamp,title,subheadline\n" + "\n".join(rows) + "\n")
    return read_posts(path)


def fear_greed_messages(tmp: Path, round_: int) -> list[dict[str, Any]]:
    days = range(3 * round_, 3 * round_ + 3)
    payload = {
        "name": "Fear and Greed Index",
        "data": [
            {
                "value": str(40 + d),
                "value_classification": "Fear",
                "timestamp": str(DAY_S + d * 86_400),
            }
            for d in days
        ],
        "metadata": {"error": None},
    }
    return fear_greed_from_payload(payload)


@dataclass(frozen=True)
class Case:
    """One topic: its sensor, the job the sensor targets, its bronze asset and its messages."""

    topic: str
    sensor: dg.SensorDefinition
    job: Any
    asset: dg.AssetsDefinition
    messages: Callable[[Path, int], list[dict[str, Any]]]


CASES = [
    # three symbols over three partitions, keyed by symbol
    Case(
        CANDLES,
        sensors.lag_sensor(CANDLES),
        sensors.ingest_candles_job,
        bronze_candles,
        candle_messages,
    ),
    # a CoinGecko /coins/markets snapshot, keyed by symbol
    Case(
        TICKERS,
        sensors.lag_sensor(TICKERS),
        sensors.ingest_tickers_job,
        bronze_tickers,
        ticker_messages,
    ),
    # a headlines file, keyed by post id
    Case(POSTS, sensors.lag_sensor(POSTS), sensors.ingest_posts_job, bronze_posts, post_messages),
    # an alternative.me /fng/ payload: one partition, keyed by source
    Case(
        FEAR_GREED,
        sensors.lag_sensor(FEAR_GREED),
        sensors.ingest_fear_greed_job,
        bronze_fear_greed,
        fear_greed_messages,
    ),
]


@pytest.fixture
def fresh_topic(broker: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], TopicSpec]:
    """Swap a topic's spec for one with a fresh Kafka topic name (created on the broker)."""

    def make(topic: str) -> TopicSpec:
        spec = replace(TOPICS[topic], topic=f"test.sensors.{topic}.{uuid.uuid4().hex[:8]}")
        ensure_topics(broker, [spec])
        monkeypatch.setitem(TOPICS, topic, spec)
        return spec

    return make


def produce(broker: str, spec: TopicSpec, messages: Sequence[Mapping[str, Any]]) -> None:
    producer = make_producer(broker)
    try:
        assert produce_messages(producer, spec.topic, spec.key_field, messages) == len(messages)
    finally:
        producer.close()


def end_offsets(broker: str, spec: TopicSpec) -> dict[int, int]:
    """The broker's end offsets of every partition, read here independently of the sensor."""
    consumer = make_consumer(broker)
    try:
        partitions = sorted(consumer.partitions_for_topic(spec.topic) or [])
        ends = consumer.end_offsets([TopicPartition(spec.topic, p) for p in partitions])
    finally:
        consumer.close()
    return {tp.partition: end for tp, end in ends.items()}


def landed_next_offsets(lake: Lake, spec: TopicSpec) -> dict[int, int]:
    """Per partition, the offset after the last one bronze holds (0 where it holds none)."""
    rows = read_table(lake.location(spec.table)).filter(pl.col("kafka_topic") == spec.topic)
    last = dict(rows.group_by("kafka_partition").agg(pl.col("kafka_offset").max()).iter_rows())
    return {p: last[p] + 1 if p in last else 0 for p in range(spec.partitions)}


@pytest.fixture
def evaluate(
    broker: str, lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dg.SensorDefinition], dg.SensorResult | dg.SkipReason]]:
    """Evaluate a sensor against the session broker and this test's lake.

    An evaluation that finds no lag waits for a record for ``PROBE_TIMEOUT_S``; here a short
    wait, since the tests expect a run request only where the reported end offsets show the lag.
    """
    monkeypatch.setattr(sensors, "PROBE_TIMEOUT_S", 0.5)
    resources = {"kafka": KafkaResource(bootstrap=broker), "lake": LakeResource(uri=str(lake_dir))}
    with dg.DagsterInstance.ephemeral() as instance:

        def run(sensor: dg.SensorDefinition) -> dg.SensorResult | dg.SkipReason:
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return sensor(context)

        yield run


def run_request(result: dg.SensorResult | dg.SkipReason) -> dg.RunRequest:
    assert isinstance(result, dg.SensorResult), result
    [request] = result.run_requests or []
    assert result.cursor == request.run_key
    return request


def land(case: Case, request: dg.RunRequest, broker: str, lake_dir: Path) -> dict[str, Any]:
    """Run the sensor's job with the request's config and tags, as the daemon would."""
    resources = {"kafka": KafkaResource(bootstrap=broker), "lake": LakeResource(uri=str(lake_dir))}
    defs = dg.Definitions(assets=[case.asset], jobs=[case.job], resources=resources)
    job = defs.resolve_job_def(case.sensor.job_name)
    result = job.execute_in_process(run_config=request.run_config, tags=request.tags)
    assert result.success
    materialized = result.get_asset_materialization_events()
    assert {e.asset_key for e in materialized} == {case.asset.key}
    return {k: v.value for k, v in materialized[0].materialization.metadata.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.topic for c in CASES])
def test_sensor_requests_its_topic_run_with_offset_ranges_then_goes_quiet(
    case: Case,
    fresh_topic: Callable[[str], TopicSpec],
    evaluate: Callable[[dg.SensorDefinition], dg.SensorResult | dg.SkipReason],
    broker: str,
    lake_dir: Path,
    tmp_path: Path,
) -> None:
    spec = fresh_topic(case.topic)
    asset_op = "__".join(case.asset.key.path)
    assert case.sensor.job_name == f"ingest_{case.topic.split('.')[1]}"

    # an empty topic: nothing to land
    idle = evaluate(case.sensor)
    assert isinstance(idle, dg.SkipReason)
    assert "caught up" in (idle.skip_message or "")

    first = case.messages(tmp_path, 0)
    produce(broker, spec, first)
    ends = end_offsets(broker, spec)
    request = run_request(evaluate(case.sensor))
    # a fresh lake starts every partition at 0; the end is what the broker reports
    assert request.run_key == sensors.lag_run_key(spec.table, {p: (0, e) for p, e in ends.items()})
    assert request.run_key.startswith(f"{spec.table}:")
    assert request.run_config == {
        "ops": {asset_op: {"config": {"max_records": sensors.MAX_RUN_RECORDS}}}
    }
    assert request.tags["marketlake/table"] == spec.table
    assert json.loads(request.tags["marketlake/start_offsets"]) == {str(p): 0 for p in ends}
    assert json.loads(request.tags["marketlake/end_offsets"]) == {
        str(p): e for p, e in ends.items()
    }
    assert 0 < int(request.tags["marketlake/lag"]) <= len(first)

    landed = land(case, request, broker, lake_dir)
    assert (landed["rows"], landed["rejects"]) == (len(first), 0)
    lake = Lake(str(lake_dir))
    after_first = landed_next_offsets(lake, spec)
    assert sum(after_first.values()) == len(first)
    assert isinstance(evaluate(case.sensor), dg.SkipReason)

    # new messages: the next range starts where bronze stopped
    second = case.messages(tmp_path, 1)
    produce(broker, spec, second)
    request = run_request(evaluate(case.sensor))
    starts = json.loads(request.tags["marketlake/start_offsets"])
    assert starts == {str(p): o for p, o in after_first.items()}
    ranges = {
        int(p): (s, json.loads(request.tags["marketlake/end_offsets"])[p])
        for p, s in starts.items()
    }
    assert request.run_key == sensors.lag_run_key(spec.table, ranges)
    landed = land(case, request, broker, lake_dir)
    assert (landed["rows"], landed["rejects"]) == (len(second), 0)
    assert sum(landed_next_offsets(lake, spec).values()) == len(first) + len(second)
    assert isinstance(evaluate(case.sensor), dg.SkipReason)


def test_a_run_cut_short_inside_the_last_producer_batch_is_requested_again(
    fresh_topic: Callable[[str], TopicSpec],
    evaluate: Callable[[dg.SensorDefinition], dg.SensorResult | dg.SkipReason],
    broker: str,
    lake_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The embedded broker reports a partition's end offset as the last producer batch's first
    # offset + 1, so after a bounded run stops inside that batch the reported end is behind the
    # stored offsets while records are still waiting; the sensor must look for them itself.
    monkeypatch.setattr(sensors, "PROBE_TIMEOUT_S", 30.0)  # the wait ends at the first record
    spec = fresh_topic(FEAR_GREED)
    messages = fear_greed_messages(tmp_path, 0) + fear_greed_messages(tmp_path, 1)
    produce(broker, spec, messages)
    lake = Lake(str(lake_dir))
    report = KafkaResource(bootstrap=broker).land(spec, lake, max_records=4)
    assert report.rows == 4
    request = run_request(evaluate(sensors.lag_sensor(FEAR_GREED)))
    assert json.loads(request.tags["marketlake/start_offsets"]) == {"0": 4}
    [(start, end)] = [
        tuple(int(o) for o in key.split("@")[1].split(".."))
        for key in request.run_key.split(":")[1].split(",")
    ]
    assert start == 4 and end > start

    land(CASES[3], request, broker, lake_dir)
    assert landed_next_offsets(lake, spec) == {0: len(messages)}
    monkeypatch.setattr(sensors, "PROBE_TIMEOUT_S", 1.0)  # nothing is waiting now
    assert isinstance(evaluate(sensors.lag_sensor(FEAR_GREED)), dg.SkipReason)


def finished_pid() -> int:
    """The pid of a process that has exited (what a crashed `up` leaves in up.json)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("case", CASES, ids=[c.topic for c in CASES])
def test_every_sensor_leaves_bronze_to_the_live_lander_while_it_runs(
    case: Case, tmp_path: Path
) -> None:
    pid = os.getpid()  # alive for the whole test
    write_up_state(tmp_path, UpState("http://api", "http://dagster", None, pids={"lander": pid}))
    # an address nobody listens on: the sensor must not even ask Kafka
    resources = {
        "kafka": KafkaResource(bootstrap="127.0.0.1:9", home=str(tmp_path)),
        "lake": LakeResource(uri=str(tmp_path / "lake")),
    }
    with dg.build_sensor_context(resources=resources) as context:
        result = case.sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == (
        f"bronze is landed by the live lander of `marketlake up` (pid {pid}); "
        "this sensor requests ingest runs again once it stops"
    )


@pytest.mark.parametrize(
    "pids",
    [
        # no `marketlake up` at all: no up.json
        None,
        # up.json left behind by a crashed `up`: its lander is gone
        {"lander": finished_pid()},
        # `up` runs, but without a lander
        {"api": os.getpid()},
    ],
    ids=["no up.json", "dead lander", "no lander"],
)
def test_without_a_live_lander_the_sensor_requests_runs(
    pids: dict[str, int] | None,
    fresh_topic: Callable[[str], TopicSpec],
    broker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sensors, "PROBE_TIMEOUT_S", 0.5)
    if pids is not None:
        write_up_state(tmp_path, UpState("http://api", "http://dagster", None, pids=pids))
    spec = fresh_topic(CANDLES)
    produce(broker, spec, candle_messages(tmp_path, 0))
    resources = {
        "kafka": KafkaResource(bootstrap=broker, home=str(tmp_path)),
        "lake": LakeResource(uri=str(tmp_path / "lake")),
    }
    with dg.build_sensor_context(resources=resources) as context:
        result = sensors.lag_sensor(CANDLES)(context)
    assert run_request(result).run_key.startswith(f"{spec.table}:")
