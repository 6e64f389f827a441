"""Sources that feed the live system, hour after hour, resuming from the lake.

``marketlake source simulate|replay|live`` (and ``marketlake up --source ...``) run one of them
until stopped:

- ``simulate``: continues each symbol from the lake's newest hour and close (GARCH-t model of
  :mod:`pipelines.simulator`), one hour per ``3600 / speed`` seconds; it never produces a bar
  that has not closed yet by the wall clock, so once it has caught up with the present it goes
  on at market speed. Each hour also gets simulated posts and each day a simulated Fear & Greed
  value (:mod:`pipelines.simulator_text`), so sentiment and the index move too.
- ``replay``: replays an OHLCV file at ``speed`` x market speed, skipping the hours the lake
  already holds.
- ``live``: closed klines from the exchange since the lake's newest hour, CoinGecko tickers and
  the Fear & Greed index, every ``every_s`` seconds (needs the internet).

Each source watches the broker: when it restarts (a new embedded broker, new log), the source
reconnects and resumes from the newest hour in the lake, so an hour lost with a crashed
in-memory broker is produced again and nothing the lake holds is produced twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipelines.broker import BrokerEndpoint, resolve_broker
from pipelines.kafka_io import (
    LIVE_PRODUCER_TIMEOUTS,
    ensure_topics,
    make_producer,
    produce_messages,
)
from pipelines.simulator import HOUR_MS, CandleStream, LastBar
from pipelines.simulator_text import FearGreedTrail, hour_posts
from warehouse.catalog import BRONZE_CANDLES
from warehouse.errors import BrokerError, ConfigError, MarketlakeError, SourceError
from warehouse.lake import Lake, open_table, read_table
from warehouse.settings import Settings
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TOPICS

log = logging.getLogger(__name__)

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RECONNECT_WAIT_S = 1.0


def lake_last_bars(lake: Lake, *, interval: str = "1h") -> dict[str, LastBar]:
    """symbol -> the newest ``interval`` bar landed in bronze (open time and close)."""
    location = lake.location(BRONZE_CANDLES)
    if open_table(location) is None:
        return {}
    frame = read_table(
        location,
        columns=["symbol", "interval", "open_time", "close"],
        filters=pl.col("interval") == interval,
    )
    if frame.is_empty():
        return {}
    newest = frame.sort("open_time").group_by("symbol").last()
    return {
        str(symbol): LastBar(int(open_time.timestamp() * 1000), float(close))
        for symbol, open_time, close in newest.select("symbol", "open_time", "close").iter_rows()
    }


@dataclass(frozen=True)
class SourceOptions:
    """How a live source runs.

    Attributes:
        speed: market hours per wall-clock hour (``3600``: one hour a second); default 1.
        symbols: symbols to produce; ``None`` (default): those the lake holds, else
            :data:`DEFAULT_SYMBOLS`.
        seed: random seed of the simulator (default 7).
        every_s: ``live``: seconds between polls of the APIs (default 60).
    """

    speed: float = 1.0
    symbols: tuple[str, ...] | None = None
    seed: int = 7
    every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ConfigError(f"--speed must be > 0, got {self.speed}")


class _Connection:
    """A producer bound to the current broker; reconnects when the broker changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bootstrap: str | None = None
        self.identity: BrokerEndpoint | None = None
        self.producer: KafkaProducer | None = None

    def current(self, stop: threading.Event) -> tuple[KafkaProducer, bool] | None:
        """The producer, and whether the broker is another one than the last producer's (a new
        log: what was sent to the old one may be lost); ``None`` once stopped."""
        while not stop.is_set():
            try:
                endpoint = resolve_broker(self.settings)
            except BrokerError as exc:
                log.warning("source waits for a broker: %s", exc)
                self.close()
                stop.wait(RECONNECT_WAIT_S)
                continue
            bootstrap = endpoint.bootstrap
            if bootstrap == self.bootstrap and self.producer is not None:
                return self.producer, False
            self.close()
            try:
                ensure_topics(bootstrap)
                self.producer = make_producer(bootstrap, **LIVE_PRODUCER_TIMEOUTS)
            except (BrokerError, KafkaError) as exc:
                log.warning("source cannot connect to %s: %s", bootstrap, exc)
                stop.wait(RECONNECT_WAIT_S)
                continue
            self.bootstrap = bootstrap
            changed = endpoint != self.identity
            self.identity = endpoint
            log.info("source connected to the broker at %s", bootstrap)
            return self.producer, changed
        return None

    def send(self, topic: str, messages: Sequence[Mapping[str, Any]]) -> bool:
        """Send and flush ``messages``; ``False`` (and a reconnect next time) on failure."""
        assert self.producer is not None
        try:
            produce_messages(self.producer, topic, TOPICS[topic].key_field, messages)
            return True
        except (BrokerError, KafkaError) as exc:
            log.warning("producing to %s failed (%s); reconnecting", topic, exc)
            self.close()
            return False

    def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(KafkaError):
                self.producer.close(timeout=2)
        self.producer = None
        self.bootstrap = None


def run_simulated_source(
    settings: Settings,
    options: SourceOptions,
    stop: threading.Event,
    *,
    on_hour: Callable[[list[dict[str, object]]], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Produce simulated hourly candles until ``stop``; returns how many bars were sent.

    Args:
        settings: the lake (where to resume) and the broker.
        options: speed, symbols and seed.
        stop: set it to end the source (after the hour being sent).
        on_hour: called with each hour's bars once the broker acknowledged them.
        clock: wall clock in seconds (tests move it).
    """
    lake = Lake(settings.lake_uri, settings.storage_options)
    connection = _Connection(settings)
    period = 3600.0 / options.speed
    sent = 0
    stream: CandleStream | None = None
    text_rng = np.random.default_rng(options.seed)
    trail = FearGreedTrail(text_rng)
    pending: list[tuple[str, list[dict[str, object]]]] = []  # the hour being sent, by topic
    bars: list[dict[str, object]] = []
    due = time.monotonic()
    try:
        while not stop.is_set():
            current = connection.current(stop)
            if current is None:
                break
            _, new_broker = current
            if new_broker or stream is None:
                # a new log: what the old one held unlanded is gone, so continue from the lake
                # (an hour lost with it is produced again, none that the lake holds)
                stream = _resume(lake, options)
                pending = []
            if not pending:
                wait = max(due - time.monotonic(), _until_closed(stream.next_open_ms, clock))
                if wait > 0 and stop.wait(wait):
                    break
                bars = stream.next_hour()
                pending = [(CANDLES, bars), *_companions(bars, text_rng, trail)]
            # send topic by topic; after a failure on the same broker, resend only what is left
            while pending and connection.send(pending[0][0], pending[0][1]):
                sent += len(pending.pop(0)[1])
            if pending:
                continue
            if on_hour is not None:
                on_hour(bars)
            due = max(due + period, time.monotonic() - period)
    finally:
        connection.close()
    return sent


def _companions(
    bars: list[dict[str, object]], rng: np.random.Generator, trail: FearGreedTrail
) -> list[tuple[str, list[dict[str, object]]]]:
    """The posts of the hour and, when a day starts, its Fear & Greed value (simulated too)."""
    index = trail.add(int(bars[0]["open_time"]), float(bars[0]["close"]))  # type: ignore[call-overload, arg-type]
    extras: list[tuple[str, list[dict[str, object]]]] = [(POSTS, hour_posts(bars, rng))]
    return [*extras, (FEAR_GREED, [index])] if index else extras


def _resume(lake: Lake, options: SourceOptions) -> CandleStream:
    last = lake_last_bars(lake)
    symbols = list(options.symbols or sorted(last) or DEFAULT_SYMBOLS)
    stream = CandleStream(symbols, last, seed=options.seed + int(time.time()))
    log.info(
        "simulating %s from %s",
        ", ".join(symbols),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stream.next_open_ms / 1000)),
    )
    return stream


def _until_closed(open_ms: int, clock: Callable[[], float]) -> float:
    """Seconds until the bar opening at ``open_ms`` has closed by the wall clock (<= 0: now)."""
    return (open_ms + HOUR_MS) / 1000 - clock()


def run_replay_source(
    settings: Settings, path: Path, options: SourceOptions, stop: threading.Event
) -> int:
    """Replay the candles of ``path`` after the lake's newest hour at ``options.speed``."""
    from pipelines.sources.candle_files import iter_candle_messages, read_candle_file

    symbol = options.symbols[0] if options.symbols and len(options.symbols) == 1 else None
    frame = read_candle_file(path, symbol=symbol)
    messages = sorted(iter_candle_messages(frame), key=lambda m: int(m["open_time"]))
    lake = Lake(settings.lake_uri, settings.storage_options)
    connection = _Connection(settings)
    period = 3600.0 / options.speed
    sent = 0
    try:
        while not stop.is_set():
            current = connection.current(stop)
            if current is None:
                break
            last = lake_last_bars(lake)
            pending = [m for m in messages if _after(m, last)]
            if not pending:
                log.info("replay of %s finished: the lake holds every hour of it", path)
                break
            delivered = _replay(connection, pending, period, stop)
            sent += delivered
            if delivered == len(pending):
                break
    finally:
        connection.close()
    return sent


def _after(message: Mapping[str, Any], last: Mapping[str, LastBar]) -> bool:
    bar = last.get(str(message["symbol"]))
    return bar is None or int(message["open_time"]) > bar.open_time_ms


def _replay(
    connection: _Connection, messages: list[dict[str, Any]], period: float, stop: threading.Event
) -> int:
    """Send ``messages`` hour by hour, ``period`` seconds per market hour; stop on a failure."""
    sent = 0
    started = time.monotonic()
    first = int(messages[0]["open_time"])
    for hour, group in _by_hour(messages):
        wait = (hour - first) / HOUR_MS * period - (time.monotonic() - started)
        if wait > 0 and stop.wait(wait):
            return sent
        if not connection.send(CANDLES, group):
            return sent
        sent += len(group)
    return sent


def _by_hour(messages: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    group: list[dict[str, Any]] = []
    for message in messages:
        if group and int(message["open_time"]) != int(group[0]["open_time"]):
            yield int(group[0]["open_time"]), group
            group = []
        group.append(message)
    if group:
        yield int(group[0]["open_time"]), group


def run_live_source(settings: Settings, options: SourceOptions, stop: threading.Event) -> int:
    """Poll the exchange, CoinGecko and alternative.me every ``options.every_s`` seconds."""
    from pipelines.produce import KINDS, live_messages
    from pipelines.sources.binance import BinanceClient

    lake = Lake(settings.lake_uri, settings.storage_options)
    connection = _Connection(settings)
    sent = 0
    try:
        while not stop.is_set():
            if connection.current(stop) is None:
                break
            last = lake_last_bars(lake)
            symbols = list(options.symbols or sorted(last) or DEFAULT_SYMBOLS)
            now_ms = int(time.time() * 1000)
            try:
                with BinanceClient(settings.sources.binance_url) as binance:
                    for symbol in symbols:
                        start = last[symbol].open_time_ms + HOUR_MS if symbol in last else None
                        since = start if start is not None else now_ms - 48 * HOUR_MS
                        bars = list(binance.backfill(symbol, "1h", start_ms=since))
                        if bars and connection.send(CANDLES, bars):
                            sent += len(bars)
                for kind in ("tickers", "fear-greed"):
                    snapshot = live_messages(settings, kind)
                    if snapshot and connection.send(KINDS[kind], snapshot):
                        sent += len(snapshot)
            except (SourceError, MarketlakeError) as exc:
                log.warning("live source: %s; next try in %.0f s", exc, options.every_s)
            stop.wait(options.every_s)
    finally:
        connection.close()
    return sent
