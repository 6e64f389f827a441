"""Producing into and landing from Kafka, as the CLI and the demo call them (with progress bars).

Every kind of source goes through :func:`produce_to_topic` (files, live API snapshots, API
backfills, the simulator), and every topic is landed by the same :func:`ingest_topic`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipelines.broker import resolve_bootstrap, resolve_broker
from pipelines.ingest import IngestOptions, IngestReport, land_topic
from pipelines.kafka_io import ensure_topics, make_producer, produce_messages
from pipelines.simulator import simulate_candles
from pipelines.sources.alternative_me import FearGreedClient
from pipelines.sources.binance import BinanceClient
from pipelines.sources.candle_files import iter_candle_messages, read_candle_file
from pipelines.sources.coingecko import CoinGeckoClient, tickers_from_markets
from pipelines.sources.fear_greed_files import read_fear_greed_file
from pipelines.sources.post_files import read_posts
from warehouse.bronze import LandedBatch
from warehouse.catalog import BRONZE_REJECTS
from warehouse.errors import ConfigError, SourceError
from warehouse.lake import Lake
from warehouse.settings import Settings
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS, topic_spec

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "candles": CANDLES,
    "tickers": TICKERS,
    "posts": POSTS,
    "fear-greed": FEAR_GREED,
}
"""``marketlake produce`` kinds and their topics."""

COINGECKO_IDS: dict[str, str] = {
    "BTC": "bitcoin",
    "ETH": "ethereum",
    "BNB": "binancecoin",
    "SOL": "solana",
    "XRP": "ripple",
    "ADA": "cardano",
    "DOGE": "dogecoin",
    "LTC": "litecoin",
    "BCH": "bitcoin-cash",
    "ETC": "ethereum-classic",
    "DOT": "polkadot",
    "LINK": "chainlink",
    "TRX": "tron",
    "AVAX": "avalanche-2",
    "SHIB": "shiba-inu",
    "XLM": "stellar",
    "XMR": "monero",
    "ATOM": "cosmos",
}
"""CoinGecko coin ids of the base assets we trade (``BTCUSDT`` -> ``bitcoin``)."""


def produce_to_topic(
    settings: Settings,
    topic: str,
    messages: Iterable[Mapping[str, Any]],
    *,
    total: int | None,
    speed: float | None = None,
) -> int:
    """Send ``messages`` to ``topic`` keyed by the topic's key field, with a progress bar.

    Args:
        settings: where the broker is.
        topic: one of :data:`warehouse.topics.TOPICS`.
        messages: the messages (plain dicts).
        total: how many there are, for the progress bar (``None``: unknown).
        speed: replay at this many times market speed, pacing by the event-time field
            (``None``: as fast as the broker takes them).

    Returns:
        How many messages were sent.
    """
    bootstrap = resolve_bootstrap(settings)
    ensure_topics(bootstrap)
    spec = topic_spec(topic)
    if speed is not None:
        if speed <= 0:
            raise ConfigError(f"--speed must be > 0, got {speed}")
        messages = paced(messages, spec.event_time_field, speed=speed)
    producer = make_producer(bootstrap)
    try:
        with tqdm(total=total, unit="msg", desc=f"produce {topic}", leave=False) as bar:
            return produce_messages(producer, topic, spec.key_field, _counted(messages, bar))
    finally:
        producer.close()


def paced(
    messages: Iterable[Mapping[str, Any]],
    time_field: str,
    *,
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Mapping[str, Any]]:
    """Yield ``messages`` no faster than their event times allow at ``speed`` x market speed.

    Messages are sorted by ``time_field`` first (files list candles symbol by symbol).
    """
    ordered = sorted(messages, key=lambda m: m[time_field])
    if not ordered:
        return
    first_event = ordered[0][time_field]
    started = time.monotonic()
    for message in ordered:
        due = (message[time_field] - first_event) / 1000 / speed
        wait = due - (time.monotonic() - started)
        if wait > 0:
            sleep(wait)
        yield message


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


def produce_candle_file(
    settings: Settings, path: Path, *, symbol: str | None, speed: float | None = None
) -> int:
    """Replay a real OHLCV file (any of the supported layouts) into ``market.candles``."""
    frame = read_candle_file(path, symbol=symbol)
    messages = iter_candle_messages(frame)
    return produce_to_topic(settings, CANDLES, messages, total=frame.height, speed=speed)


def read_ticker_file(path: Path) -> list[dict[str, Any]]:
    """Ticker messages of a saved CoinGecko ``/coins/markets`` response (a JSON array)."""
    import json

    if not path.is_file():
        raise SourceError(f"ticker file {path} does not exist")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(payload, list):
        raise SourceError(f"{path}: expected a /coins/markets array, got {type(payload).__name__}")
    return tickers_from_markets(payload, source=f"file:{path.name}")


def produce_file(
    settings: Settings,
    kind: str,
    path: Path,
    *,
    symbol: str | None = None,
    speed: float | None = None,
) -> int:
    """Replay a file of any kind (see :data:`KINDS`) into its topic.

    Args:
        settings: where the broker is.
        kind: ``candles`` (OHLCV CSV in three layouts, Binance kline JSON), ``tickers`` (a saved
            CoinGecko ``/coins/markets`` response), ``posts`` (tweet, news-tweet and headline
            CSVs) or ``fear-greed`` (alternative.me JSON or CSV).
        path: the file.
        symbol: the symbol of a candle file without a symbol column.
        speed: replay at this many times market speed (``None``: as fast as possible).
    """
    if kind == "candles":
        return produce_candle_file(settings, path, symbol=symbol, speed=speed)
    readers: dict[str, Callable[[Path], Sequence[Mapping[str, Any]]]] = {
        "tickers": read_ticker_file,
        "posts": read_posts,
        "fear-greed": read_fear_greed_file,
    }
    if kind not in readers:
        raise ConfigError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    messages = readers[kind](path)
    return produce_to_topic(settings, KINDS[kind], messages, total=len(messages), speed=speed)


def live_messages(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """One snapshot from the real API: CoinGecko ``/coins/markets`` or alternative.me ``/fng/``."""
    endpoints = settings.sources
    if kind == "tickers":
        with CoinGeckoClient(endpoints.coingecko_url, api_key=endpoints.coingecko_api_key) as api:
            return api.markets()
    if kind == "fear-greed":
        with FearGreedClient(endpoints.alternative_me_url) as api:
            return api.index(limit=1)
    raise ConfigError(f"--live is available for tickers and fear-greed, not {kind!r}")


def produce_live(
    settings: Settings,
    kind: str,
    *,
    follow: bool = False,
    every_s: float = 60.0,
    stop: threading.Event | None = None,
) -> int:
    """Produce live API snapshots of ``kind``; with ``follow``, one every ``every_s`` seconds.

    A failed snapshot in follow mode is logged and retried at the next tick (the client has
    already retried with backoff); without ``follow`` it raises :class:`SourceError`.
    """
    stop = stop or threading.Event()
    sent = 0
    while True:
        try:
            messages = live_messages(settings, kind)
            sent += produce_to_topic(settings, KINDS[kind], messages, total=len(messages))
        except SourceError as exc:
            if not follow:
                raise
            log.warning("live %s snapshot failed: %s; next try in %.0f s", kind, exc, every_s)
        if not follow or stop.wait(every_s):
            return sent


def parse_since(text: str) -> int:
    """``YYYY-MM-DD`` (or any ISO 8601 time; no offset = UTC) to epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def backfill(
    settings: Settings,
    source: str,
    symbols: Sequence[str],
    *,
    since_ms: int,
    interval: str = "1h",
) -> int:
    """Page candle history from ``since_ms`` to now out of Binance or CoinGecko into Kafka.

    Args:
        settings: the broker and the API roots.
        source: ``binance`` (``/api/v3/klines``) or ``coingecko`` (``market_chart/range``,
            for the assets of :data:`COINGECKO_IDS`).
        symbols: exchange pairs, e.g. ``["BTCUSDT", "ETHUSDT"]``.
        since_ms: first open time wanted, epoch ms.
        interval: candle interval (default ``1h``).
    """
    endpoints = settings.sources
    sent = 0
    for symbol in (s.upper() for s in symbols):
        if source == "binance":
            with BinanceClient(endpoints.binance_url) as binance:
                stream = binance.backfill(symbol, interval, start_ms=since_ms)
                sent += produce_to_topic(settings, CANDLES, stream, total=None)
        elif source == "coingecko":
            coin = _coingecko_id(symbol)
            with CoinGeckoClient(
                endpoints.coingecko_url, api_key=endpoints.coingecko_api_key
            ) as cg:
                candles = cg.candles(coin, symbol=symbol, start_ms=since_ms, interval=interval)
            sent += produce_to_topic(settings, CANDLES, candles, total=len(candles))
        else:
            raise ConfigError(f"unknown backfill source {source!r}; use binance or coingecko")
    return sent


def _coingecko_id(symbol: str) -> str:
    for base, coin in COINGECKO_IDS.items():
        if symbol == base or (symbol.startswith(base) and symbol[len(base) :] in _QUOTES):
            return coin
    raise ConfigError(
        f"no CoinGecko id known for {symbol}; known bases: {', '.join(sorted(COINGECKO_IDS))}"
    )


_QUOTES = ("USDT", "USDC", "USD", "BUSD")


def ingest_topic(
    settings: Settings,
    topic: str,
    *,
    max_records: int | None = None,
    follow: bool = False,
    stop: threading.Event | None = None,
    progress: bool = True,
    on_batch: Callable[[LandedBatch], None] | None = None,
) -> IngestReport:
    """Land ``topic`` into its bronze table until caught up (or forever with ``follow``).

    The broker and its log id come from ``settings`` (:func:`pipelines.broker.resolve_broker`):
    on the embedded broker, offsets stored for a dead log are replaced by the running log's.

    Args:
        settings: the broker and the lake.
        topic: one of :data:`warehouse.topics.TOPICS`.
        max_records: stop after this many records (default ``None``: until caught up).
        follow: keep landing records as they arrive until ``stop`` (default ``False``).
        stop: set it to end the run after the current batch (default ``None``: never).
        progress: show a progress bar (default ``True``).
        on_batch: called after each committed batch, besides the progress bar (default
            ``None``: nothing).
    """
    spec = topic_spec(topic)
    lake = Lake(settings.lake_uri, settings.storage_options)
    endpoint = resolve_broker(settings)
    with tqdm(unit="msg", desc=f"ingest {topic}", leave=False, disable=not progress) as bar:

        def landed(batch: LandedBatch) -> None:
            bar.update(batch.rows + batch.rejects)
            if on_batch is not None:
                on_batch(batch)

        return land_topic(
            endpoint.bootstrap,
            spec,
            bronze=lake.location(spec.table),
            rejects=lake.location(BRONZE_REJECTS),
            options=IngestOptions(max_records=max_records, follow=follow),
            on_batch=landed,
            stop=stop,
            log_id=endpoint.log_id,
        )


def ingest_topics(
    settings: Settings,
    topics: Sequence[str],
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
) -> list[IngestReport]:
    """Land several topics: one after the other, or side by side (a thread each) in follow mode."""
    if not follow:
        return [ingest_topic(settings, topic) for topic in topics]
    stop = stop or threading.Event()
    reports: dict[str, IngestReport] = {}
    errors: list[BaseException] = []

    def run(topic: str) -> None:
        try:
            reports[topic] = ingest_topic(settings, topic, follow=True, stop=stop, progress=False)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(t,), name=f"ingest-{t}") for t in topics]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return [reports[t] for t in topics if t in reports]


__all__ = [
    "KINDS",
    "TOPICS",
    "backfill",
    "ingest_topic",
    "ingest_topics",
    "produce_candle_file",
    "produce_file",
    "produce_live",
    "produce_simulated_candles",
]
