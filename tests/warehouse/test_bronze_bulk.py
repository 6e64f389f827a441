"""Bulk decoding (one NDJSON parse, Polars checks) agrees with the per-record validators."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest

from warehouse.bronze import RawRecord, decode_batch, decode_batch_per_record
from warehouse.bronze_bulk import bulk_decode
from warehouse.topics import CANDLES, FEAR_GREED, POSTS, TICKERS, TOPICS

NOW_MS = int(time.time() * 1000) // 3_600_000 * 3_600_000
CANDLE = {
    "symbol": "btcusdt",
    "interval": "1h",
    "open_time": NOW_MS - 3_600_000,
    "open": 100.0,
    "high": 110.0,
    "low": 95.0,
    "close": 105.0,
    "volume": 12.5,
    "source": "test",
}
TICKER = {"symbol": "ETHUSDT", "price": 2000.5, "market_cap": None, "ts": NOW_MS, "source": "t"}
POST = {
    "post_id": "p1",
    "platform": "twitter",
    "author": None,
    "text": "$BTC up",
    "ts": NOW_MS,
    "symbols": ["btcusdt"],
    "likes": 3,
    "source": "t",
}
FEAR = {"value": 40, "classification": "Fear", "ts": NOW_MS, "source": "alternative.me"}


def _json(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode()


MIXED: dict[str, list[bytes | None]] = {
    CANDLES: [
        _json(CANDLE),
        b"not json",  # invalid JSON
        b"\xff\xfe",  # invalid UTF-8
        None,  # tombstone
        b"[1, 2]",  # not an object
        _json({**CANDLE, "open": "100"}),  # mistyped field: Arrow cannot parse the batch
        _json({**CANDLE, "high": 90.0}),  # high < low
        b'{"symbol":"x","interval":"1h","open_time":1,"open":NaN}',  # NaN token, old time
        _json({**CANDLE, "symbol": " eth-usdt "}),  # padded symbol: valid, decided per record
        _json({**CANDLE, "extra": {"nested": 1}}),  # extra field: ignored, counted
        b'{\n"symbol": "SOLUSDT"}',  # newline in the value: decided per record
        _json({**CANDLE, "interval": "7m"}),  # unknown interval
        _json({**CANDLE, "open_time": NOW_MS + 10 * 86_400_000}),  # far future
        _json({**CANDLE, "symbol": "ÉTH"}),  # non-ASCII symbol: valid, decided per record
    ],
    TICKERS: [
        _json(TICKER),
        _json({**TICKER, "price": 0}),  # price <= 0
        _json({**TICKER, "volume_24h": -1.5}),  # optional numbers may be negative
        _json({**TICKER, "ts": 5}),  # before 2009
    ],
    POSTS: [
        _json(POST),
        _json({**POST, "text": "   "}),  # blank text
        _json({**POST, "text": "比特币"}),  # no ASCII: decided per record, valid
        _json({**POST, "symbols": None}),  # no symbols: []
        _json({**POST, "likes": -1}),  # negative count
        _json({**POST, "text": "x" * 20_001}),  # too long
    ],
    FEAR_GREED: [
        _json(FEAR),
        _json({**FEAR, "value": 101}),  # out of 0..100
        _json({**FEAR, "classification": ""}),  # empty classification
    ],
}


def _records(topic: str, values: list[bytes | None]) -> list[RawRecord]:
    return [RawRecord(topic, i % 2, i, NOW_MS, b"k", v) for i, v in enumerate(values)]


@pytest.mark.parametrize("topic", sorted(MIXED))
@pytest.mark.parametrize("arrow_parsable", [True, False])
def test_bulk_and_per_record_decoding_agree_on_mixed_batches(
    topic: str, arrow_parsable: bool
) -> None:
    spec = TOPICS[topic]
    values = MIXED[topic]
    if arrow_parsable:  # keep only values Arrow parses as a whole, so the bulk checks decide
        values = [v for v in values if v is None or b'"100"' not in v]
    records = _records(spec.topic, values)
    bulk = decode_batch(spec, records, now_ms=NOW_MS)
    reference = decode_batch_per_record(spec, records, now_ms=NOW_MS)
    assert bulk.rows.equals(reference.rows)
    assert bulk.rejects.equals(reference.rejects)
    assert bulk.extra_fields == reference.extra_fields
    assert bulk.rows.num_rows + bulk.rejects.num_rows == len(records)


def test_a_clean_batch_is_decided_by_the_bulk_checks_alone() -> None:
    spec = TOPICS[CANDLES]
    values: list[bytes | None] = [
        _json({**CANDLE, "open_time": NOW_MS - i * 3_600_000}) for i in range(1, 500)
    ]
    decoded = bulk_decode(spec, values, now_ms=NOW_MS)
    assert decoded is not None and decoded.recheck == [] and decoded.rows.height == 499
    assert decoded.rows["symbol"].unique().to_list() == ["BTCUSDT"]


def test_a_mistyped_field_sends_the_batch_to_the_per_record_path() -> None:
    values: list[bytes | None] = [_json(CANDLE), _json({**CANDLE, "open": True})]
    assert bulk_decode(TOPICS[CANDLES], values, now_ms=NOW_MS) is None
    decoded = decode_batch(TOPICS[CANDLES], _records(CANDLES, values), now_ms=NOW_MS)
    assert decoded.rows.num_rows == 1
    assert decoded.rejects.column("error").to_pylist() == [
        "field 'open' must be a number, got bool"
    ]


def test_extra_fields_are_ignored_and_counted() -> None:
    values: list[bytes | None] = [_json({**CANDLE, "exchange": "binance"}), _json(CANDLE)]
    decoded = decode_batch(TOPICS[CANDLES], _records(CANDLES, values), now_ms=NOW_MS)
    assert decoded.extra_fields == 1
    assert "exchange" not in decoded.rows.column_names
    assert decoded.rows.schema.field("open_time").type == pa.timestamp("ms", tz="UTC")
