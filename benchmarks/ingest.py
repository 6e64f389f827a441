"""Ingest throughput and freshness on the embedded broker and Delta on local disk.

One run, one fresh embedded broker and one fresh lake:

1. produce ``--messages`` simulated candle messages (default 1,000,000) to a fresh topic;
2. (a) raw: a kafka-python consumer in assign mode reads them all back, no processing;
3. (b) ingest: ``land_topic`` lands them in bronze (bulk decode, Delta commits, offsets in the
   log), then the table is checked to hold every offset exactly once; (a) and (b) alternate
   ``--repeat`` times (default 2, a fresh table each time) and the best rate of each is kept,
   so a burst of other load on a shared machine does not decide the ratio;
4. freshness: ``land_topic`` in follow mode while a producer sends ``--rate`` messages a second
   for ``--seconds`` seconds; each row's produce -> visible-in-Delta latency is the time its
   commit returned minus its Kafka timestamp (set by the producer when it sends).

Prints both rates, the ratio b/a, the peak RSS of the process and the p50/p95 latency; ``--json``
prints one object with ``raw_msgs_per_s``, ``ingest_msgs_per_s``, ``ratio``, ``peak_rss_mb``,
``freshness_p50_s``, ``freshness_p95_s`` (and more).

    python benchmarks/ingest.py                      # 1,000,000 messages
    python benchmarks/ingest.py --messages 100000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import bench_env  # noqa: F401  (first: import path and tool homes)
import polars as pl
from kafka import TopicPartition

from pipelines.broker import start_broker, stop_broker
from pipelines.ingest import IngestOptions, land_topic
from pipelines.kafka_io import ensure_topics, make_consumer, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from warehouse.bronze import REJECTS_TABLE, LandedBatch
from warehouse.lake import Lake, read_table
from warehouse.topics import CANDLES, TOPICS, TopicSpec

SYMBOLS = [f"SYM{i:02d}USDT" for i in range(20)]
TARGETS = {"ratio": 0.8, "peak_rss_mb": 1536.0, "freshness_p95_s": 10.0}


def _produce(bootstrap: str, spec: TopicSpec, messages: int) -> float:
    hours = -(-messages // len(SYMBOLS))
    stream = simulate_candles(SYMBOLS, hours=hours, seed=11)
    limited = (m for i, m in zip(range(messages), stream, strict=False))
    producer = make_producer(bootstrap)
    started = time.perf_counter()
    try:
        produce_messages(producer, spec.topic, "symbol", limited)
    finally:
        producer.close()
    return time.perf_counter() - started


def raw_consume_rate(bootstrap: str, spec: TopicSpec, messages: int) -> float:
    """Messages per second a bare assign-mode kafka-python consumer reads (no processing)."""
    consumer = make_consumer(bootstrap)
    partitions = sorted(consumer.partitions_for_topic(spec.topic) or [])
    assignment = [TopicPartition(spec.topic, p) for p in partitions]
    consumer.assign(assignment)
    consumer.seek_to_beginning(*assignment)
    count = 0
    started = time.perf_counter()
    while count < messages:
        polled = consumer.poll(timeout_ms=1_000)
        count += sum(len(records) for records in polled.values())
    seconds = time.perf_counter() - started
    consumer.close()
    return count / seconds


def ingest_rate(bootstrap: str, spec: TopicSpec, lake: Lake, messages: int) -> float:
    """Messages per second ``land_topic`` lands into bronze; checks exactly-once afterwards."""
    started = time.perf_counter()
    report = land_topic(
        bootstrap,
        spec,
        bronze=lake.location(spec.table),
        rejects=lake.location(REJECTS_TABLE),
        options=IngestOptions(poll_timeout_ms=500),
    )
    seconds = time.perf_counter() - started
    landed = read_table(lake.location(spec.table), columns=["kafka_partition", "kafka_offset"])
    distinct = landed.unique().height
    if report.records != messages or landed.height != messages or distinct != messages:
        raise SystemExit(
            f"exactly-once check failed: produced {messages}, report {report.records}, "
            f"table {landed.height} rows, {distinct} distinct offsets"
        )
    return messages / seconds


def freshness(
    bootstrap: str, spec: TopicSpec, lake: Lake, *, rate: int, seconds: float
) -> list[float]:
    """Produce -> visible latencies (s) of every row landed by a follow-mode ingest."""
    visible: list[tuple[dict[int, tuple[int, int]], float]] = []

    def on_batch(landed: LandedBatch) -> None:
        visible.append((landed.offsets, time.time()))

    stop = threading.Event()
    options = IngestOptions(follow=True, poll_timeout_ms=100, follow_batch_s=0.25)
    worker = threading.Thread(
        target=land_topic,
        args=(bootstrap, spec),
        kwargs={
            "bronze": lake.location(spec.table),
            "rejects": lake.location(REJECTS_TABLE),
            "options": options,
            "on_batch": on_batch,
            "stop": stop,
        },
        daemon=True,
    )
    worker.start()
    producer = make_producer(bootstrap)
    total = int(rate * seconds)
    stream = simulate_candles(SYMBOLS[:4], hours=-(-total // 4), seed=5)
    started = time.perf_counter()
    for index, message in zip(range(total), stream, strict=False):
        producer.send(spec.topic, key=str(message["symbol"]), value=message)
        ahead = started + (index + 1) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    producer.close()
    deadline = time.time() + 30
    while (
        time.time() < deadline
        and sum(hi - lo + 1 for offsets, _ in visible for lo, hi in offsets.values()) < total
    ):
        time.sleep(0.1)
    stop.set()
    worker.join(timeout=30)
    rows = read_table(
        lake.location(spec.table), columns=["kafka_partition", "kafka_offset", "kafka_timestamp"]
    )
    seen = {
        (partition, offset): at
        for offsets, at in visible
        for partition, (lo, hi) in offsets.items()
        for offset in range(lo, hi + 1)
    }
    latencies = []
    for partition, offset, stamp in rows.iter_rows():
        at = seen.get((partition, offset))
        if at is not None:
            latencies.append(at - stamp.timestamp())
    return latencies


def run(messages: int, *, rate: int, seconds: float, repeat: int = 2) -> dict[str, object]:
    """The whole benchmark on a fresh broker and lake; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="marketlake-bench-ingest-") as folder:
        root = Path(folder)
        info = start_broker(root / "broker")
        try:
            bootstrap = info.bootstrap
            spec = replace(TOPICS[CANDLES], topic=f"bench.candles.{uuid.uuid4().hex[:6]}")
            live = replace(spec, topic=spec.topic + ".live", table="bronze/candles_live")
            ensure_topics(bootstrap, [spec, live])
            produce_s = _produce(bootstrap, spec, messages)
            raws, ingests = [], []
            for attempt in range(repeat):  # alternate, so a burst of other load hits both
                raws.append(raw_consume_rate(bootstrap, spec, messages))
                lake = Lake(str(root / f"lake{attempt}"))
                ingests.append(ingest_rate(bootstrap, spec, lake, messages))
            raw, ingest = max(raws), max(ingests)
            latencies = freshness(
                bootstrap, live, Lake(str(root / "lake")), rate=rate, seconds=seconds
            )
        finally:
            stop_broker(root / "broker")
    series = pl.Series(latencies, dtype=pl.Float64)
    return {
        "messages": messages,
        "produce_msgs_per_s": round(messages / produce_s, 1),
        "raw_msgs_per_s": round(raw, 1),
        "ingest_msgs_per_s": round(ingest, 1),
        "ratio": round(ingest / raw, 3),
        "raw_samples": [round(r, 1) for r in raws],
        "ingest_samples": [round(r, 1) for r in ingests],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "freshness_rows": len(latencies),
        "freshness_p50_s": round(float(series.quantile(0.5) or 0.0), 3),
        "freshness_p95_s": round(float(series.quantile(0.95) or 0.0), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--rate", type=int, default=2_000, help="follow-mode msgs/s (2,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="follow-mode seconds (10)")
    parser.add_argument("--repeat", type=int, default=2, help="raw/ingest passes, best kept (2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = run(args.messages, rate=args.rate, seconds=args.seconds, repeat=args.repeat)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            target = TARGETS.get(name)
            suffix = f"   (target {'>=' if name == 'ratio' else '<='} {target})" if target else ""
            print(f"{name:>20}: {value}{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
