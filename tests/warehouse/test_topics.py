from __future__ import annotations

import time

import pytest

from warehouse.errors import SchemaError
from warehouse.topics import TOPICS, topic_spec, validate_candle, validate_fear_greed, validate_post

NOW_MS = int(time.time() * 1000) // 3_600_000 * 3_600_000

GOOD_CANDLE = {
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


def test_good_candle_is_normalised() -> None:
    row = validate_candle(GOOD_CANDLE)
    assert row["symbol"] == "BTCUSDT"
    assert row["open_time"] == GOOD_CANDLE["open_time"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"symbol": None}, "missing field 'symbol'"),  # missing key field
        ({"interval": "7m"}, "unknown interval"),  # interval outside the table
        ({"open": "100"}, "must be a number"),  # mistyped price
        ({"close": float("nan")}, "not finite"),  # NaN
        ({"high": float("inf")}, "not finite"),  # infinity
        ({"low": 0.0}, "must be > 0"),  # zero price
        ({"open": -1.0}, "must be > 0"),  # negative price
        ({"high": 90.0}, "high 90.0 < low 95.0"),  # inverted bar
        ({"close": 120.0}, "outside"),  # close above high
        ({"volume": -3.0}, "volume"),  # negative volume
        ({"open_time": 1000}, "out of range"),  # before 2009
        ({"open_time": NOW_MS + 10 * 86_400_000}, "out of range"),  # far future
        ({"open_time": 1.7e12}, "integer milliseconds"),  # float timestamp
        ({"open": True}, "must be a number"),  # bool is not a number
    ],
)
def test_bad_candles_name_the_reason(change: dict[str, object], reason: str) -> None:
    record = {**GOOD_CANDLE, **change}
    if change.get("symbol", "") is None:
        del record["symbol"]
    with pytest.raises(SchemaError, match=reason):
        validate_candle(record)


def test_post_and_fear_greed_validators() -> None:
    post = validate_post(
        {
            "post_id": "1",
            "platform": "twitter",
            "text": "$BTC to the moon",
            "ts": NOW_MS,
            "symbols": ["btcusdt"],
            "source": "test",
        }
    )
    assert post["symbols"] == ["BTCUSDT"]
    with pytest.raises(SchemaError, match=r"0\.\.100"):
        validate_fear_greed({"value": 101, "classification": "x", "ts": NOW_MS, "source": "t"})


def test_every_topic_has_a_bronze_table_and_unknown_topics_fail() -> None:
    assert set(TOPICS) == {"market.candles", "market.tickers", "social.posts", "market.fear_greed"}
    assert all(spec.table.startswith("bronze/") for spec in TOPICS.values())
    with pytest.raises(SchemaError, match="known topics"):
        topic_spec("market.nope")
