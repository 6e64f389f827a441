"""The Kafka topics and their message schemas, written once: an Arrow schema and a validator.

Every message is a UTF-8 JSON object. Event times are integer milliseconds since the Unix epoch
(UTC). Producers build messages with these field names; the landing step validates each record
with :func:`validate_message` and turns the good ones into Arrow rows of :attr:`TopicSpec.schema`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from warehouse.errors import SchemaError

CANDLES = "market.candles"
TICKERS = "market.tickers"
POSTS = "social.posts"
FEAR_GREED = "market.fear_greed"

INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
"""Candle intervals accepted on ``market.candles`` and their length in milliseconds."""

MIN_EVENT_MS = 1_230_768_000_000  # 2009-01-01, the genesis block: nothing traded before
MAX_FUTURE_MS = 86_400_000  # an event may be at most one day ahead of the wall clock
MAX_MESSAGE_BYTES = 1_000_000
MAX_TEXT_CHARS = 20_000

TS_MS = pa.timestamp("ms", tz="UTC")

Record = dict[str, Any]


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, bronze table, message key, Arrow schema and validator."""

    topic: str
    table: str
    key_field: str
    event_time_field: str
    schema: pa.Schema
    validate: Callable[[Mapping[str, Any]], Record]
    partitions: int = 3


def _require(record: Mapping[str, Any], field: str) -> Any:
    if field not in record or record[field] is None:
        raise SchemaError(f"missing field '{field}'")
    return record[field]


def _text(record: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    value = _require(record, field) if required else record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SchemaError(f"field '{field}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise SchemaError(f"field '{field}' is empty")
    return value


def _number(
    record: Mapping[str, Any], field: str, *, required: bool = True, positive: bool = False
) -> float | None:
    value = _require(record, field) if required else record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"field '{field}' must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise SchemaError(f"field '{field}' is not finite ({value})")
    if positive and number <= 0:
        raise SchemaError(f"field '{field}' must be > 0, got {value}")
    return number


def _count(record: Mapping[str, Any], field: str) -> int | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SchemaError(f"field '{field}' must be a non-negative integer, got {value!r}")
    return value


def _event_ms(record: Mapping[str, Any], field: str) -> int:
    value = _require(record, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"field '{field}' must be integer milliseconds, got {value!r}")
    latest = int(time.time() * 1000) + MAX_FUTURE_MS
    if not MIN_EVENT_MS <= value <= latest:
        raise SchemaError(
            f"field '{field}' = {value} is out of range (2009-01-01 .. now + 1 day, in ms)"
        )
    return value


def validate_candle(record: Mapping[str, Any]) -> Record:
    """Validate one ``market.candles`` message and return its typed row."""
    interval = _text(record, "interval")
    if interval not in INTERVALS_MS:
        raise SchemaError(f"unknown interval {interval!r}; expected one of {sorted(INTERVALS_MS)}")
    row: Record = {
        "symbol": _symbol(record, "symbol"),
        "interval": interval,
        "open_time": _event_ms(record, "open_time"),
        "open": _number(record, "open", positive=True),
        "high": _number(record, "high", positive=True),
        "low": _number(record, "low", positive=True),
        "close": _number(record, "close", positive=True),
        "volume": _number(record, "volume"),
        "source": _text(record, "source"),
    }
    if row["volume"] < 0:
        raise SchemaError(f"field 'volume' must be >= 0, got {row['volume']}")
    if row["high"] < row["low"]:
        raise SchemaError(f"high {row['high']} < low {row['low']}")
    if (
        not row["low"] <= row["open"] <= row["high"]
        or not row["low"] <= row["close"] <= row["high"]
    ):
        raise SchemaError(
            f"open {row['open']} / close {row['close']} outside "
            f"[low {row['low']}, high {row['high']}]"
        )
    return row


def validate_ticker(record: Mapping[str, Any]) -> Record:
    """Validate one ``market.tickers`` message and return its typed row."""
    return {
        "symbol": _symbol(record, "symbol"),
        "price": _number(record, "price", positive=True),
        "market_cap": _number(record, "market_cap", required=False),
        "volume_24h": _number(record, "volume_24h", required=False),
        "change_24h_pct": _number(record, "change_24h_pct", required=False),
        "ts": _event_ms(record, "ts"),
        "source": _text(record, "source"),
    }


def validate_post(record: Mapping[str, Any]) -> Record:
    """Validate one ``social.posts`` message and return its typed row."""
    text = _text(record, "text")
    assert text is not None
    if len(text) > MAX_TEXT_CHARS:
        raise SchemaError(f"field 'text' has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    symbols = record.get("symbols") or []
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise SchemaError(f"field 'symbols' must be a list of strings, got {symbols!r}")
    return {
        "post_id": _text(record, "post_id"),
        "platform": _text(record, "platform"),
        "author": _text(record, "author", required=False),
        "text": text,
        "ts": _event_ms(record, "ts"),
        "symbols": [s.upper() for s in symbols],
        "likes": _count(record, "likes"),
        "reposts": _count(record, "reposts"),
        "replies": _count(record, "replies"),
        "followers": _count(record, "followers"),
        "source": _text(record, "source"),
    }


def validate_fear_greed(record: Mapping[str, Any]) -> Record:
    """Validate one ``market.fear_greed`` message and return its typed row."""
    value = _require(record, "value")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise SchemaError(f"field 'value' must be an integer in 0..100, got {value!r}")
    return {
        "value": value,
        "classification": _text(record, "classification"),
        "ts": _event_ms(record, "ts"),
        "source": _text(record, "source"),
    }


def _symbol(record: Mapping[str, Any], field: str) -> str:
    value = _text(record, field)
    assert value is not None
    symbol = value.strip().upper()
    if not symbol.replace("-", "").replace("_", "").isalnum() or len(symbol) > 32:
        raise SchemaError(f"field '{field}' is not a symbol: {value!r}")
    return symbol


TOPICS: dict[str, TopicSpec] = {
    CANDLES: TopicSpec(
        topic=CANDLES,
        table="bronze/candles",
        key_field="symbol",
        event_time_field="open_time",
        schema=pa.schema(
            [
                ("symbol", pa.string()),
                ("interval", pa.string()),
                ("open_time", TS_MS),
                ("open", pa.float64()),
                ("high", pa.float64()),
                ("low", pa.float64()),
                ("close", pa.float64()),
                ("volume", pa.float64()),
                ("source", pa.string()),
            ]
        ),
        validate=validate_candle,
    ),
    TICKERS: TopicSpec(
        topic=TICKERS,
        table="bronze/tickers",
        key_field="symbol",
        event_time_field="ts",
        schema=pa.schema(
            [
                ("symbol", pa.string()),
                ("price", pa.float64()),
                ("market_cap", pa.float64()),
                ("volume_24h", pa.float64()),
                ("change_24h_pct", pa.float64()),
                ("ts", TS_MS),
                ("source", pa.string()),
            ]
        ),
        validate=validate_ticker,
    ),
    POSTS: TopicSpec(
        topic=POSTS,
        table="bronze/posts",
        key_field="post_id",
        event_time_field="ts",
        schema=pa.schema(
            [
                ("post_id", pa.string()),
                ("platform", pa.string()),
                ("author", pa.string()),
                ("text", pa.string()),
                ("ts", TS_MS),
                ("symbols", pa.list_(pa.string())),
                ("likes", pa.int64()),
                ("reposts", pa.int64()),
                ("replies", pa.int64()),
                ("followers", pa.int64()),
                ("source", pa.string()),
            ]
        ),
        validate=validate_post,
    ),
    FEAR_GREED: TopicSpec(
        topic=FEAR_GREED,
        table="bronze/fear_greed",
        key_field="source",
        event_time_field="ts",
        schema=pa.schema(
            [
                ("value", pa.int64()),
                ("classification", pa.string()),
                ("ts", TS_MS),
                ("source", pa.string()),
            ]
        ),
        validate=validate_fear_greed,
        partitions=1,
    ),
}
"""Every topic of DESIGN.md, by name."""


def topic_spec(topic: str) -> TopicSpec:
    """Return the spec of ``topic``, or raise :class:`SchemaError` naming the known topics."""
    try:
        return TOPICS[topic]
    except KeyError:
        raise SchemaError(f"unknown topic {topic!r}; known topics: {', '.join(TOPICS)}") from None
