"""The Binance klines client against recorded real klines served on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.sources.binance import (
    KLINES_PATH,
    BinanceClient,
    candles_from_klines,
    parse_kline,
)
from pipelines.sources.http import HttpOptions
from warehouse.errors import ConfigError, SourceError
from warehouse.topics import validate_candle

FAST = HttpOptions(timeout_s=2.0, retries=2, backoff_s=0.01, min_interval_s=0.0)
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def klines(api_samples: Path) -> list[list]:
    """31 real daily BTCUSDT klines of December 2023."""
    return json.loads((api_samples / "binance_api_v3_klines_btcusdt_1d_2023-12.json").read_text())


def serve_klines(api, klines: list[list]) -> None:
    """Answer /api/v3/klines from the recorded klines the way Binance pages them."""

    def answer(query: dict[str, str]):
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", 2**62))
        limit = int(query.get("limit", 500))
        rows = [k for k in klines if start <= k[0] <= end][:limit]
        return api.reply(200, json.dumps(rows).encode())

    api.route(KLINES_PATH, answer)


def test_klines_become_valid_candle_messages(loopback_api, api_samples, klines) -> None:
    loopback_api.script(
        KLINES_PATH,
        loopback_api.recorded(api_samples / "binance_api_v3_klines_btcusdt_1d_2023-12.json"),
    )
    with BinanceClient(loopback_api.base_url, FAST) as client:
        candles = client.klines("btcusdt", "1d", start_ms=klines[0][0], limit=31)
    assert len(candles) == 31
    for candle in candles:
        validate_candle(candle)
    assert candles[0] == {
        "symbol": "BTCUSDT",
        "interval": "1d",
        "open_time": 1701388800000,
        "open": 37723.97,
        "high": 38999.0,
        "low": 37615.86,
        "close": 38682.52,
        "volume": 43415.66324,
        "source": "binance",
    }
    assert loopback_api.calls(KLINES_PATH) == [
        {"symbol": "BTCUSDT", "interval": "1d", "startTime": "1701388800000", "limit": "31"}
    ]


def test_backfill_pages_from_start_to_end(loopback_api, klines) -> None:
    serve_klines(loopback_api, klines)
    start, end = klines[2][0], klines[27][0]
    with BinanceClient(loopback_api.base_url, FAST) as client:
        candles = list(client.backfill("BTCUSDT", "1d", start_ms=start, end_ms=end, page_limit=10))
    assert [c["open_time"] for c in candles] == [k[0] for k in klines[2:28]]
    pages = loopback_api.calls(KLINES_PATH)
    assert [int(p["startTime"]) for p in pages] == [start, start + 10 * DAY_MS, start + 20 * DAY_MS]
    assert all(p["endTime"] == str(end) and p["limit"] == "10" for p in pages)


def test_backfill_stops_at_an_empty_page(loopback_api, klines) -> None:
    serve_klines(loopback_api, klines)
    with BinanceClient(loopback_api.base_url, FAST) as client:
        candles = list(
            client.backfill(
                "BTCUSDT",
                "1d",
                start_ms=klines[0][0],
                end_ms=klines[-1][0] + 5 * DAY_MS,
                page_limit=31,
            )
        )
    assert len(candles) == 31
    assert len(loopback_api.calls(KLINES_PATH)) == 2  # a full page, then an empty one


def test_backfill_keeps_exchange_gaps(loopback_api, klines) -> None:
    with_gap = klines[:10] + klines[13:]  # three days missing, as in an outage
    serve_klines(loopback_api, with_gap)
    with BinanceClient(loopback_api.base_url, FAST) as client:
        times = [
            c["open_time"]
            for c in client.backfill(
                "BTCUSDT", "1d", start_ms=klines[0][0], end_ms=klines[-1][0], page_limit=8
            )
        ]
    assert times == [k[0] for k in with_gap]


def test_the_unfinished_bar_is_left_out(klines) -> None:
    cut = klines[-1][6]  # close time of the last kline: treat it as "now"
    candles = candles_from_klines(klines, symbol="BTCUSDT", interval="1d", closed_before_ms=cut)
    assert len(candles) == 30
    assert candles[-1]["open_time"] == klines[-2][0]


def test_an_invalid_symbol_reports_binance_message(loopback_api) -> None:
    loopback_api.script(
        KLINES_PATH, loopback_api.reply(400, b'{"code":-1121,"msg":"Invalid symbol."}')
    )
    with BinanceClient(loopback_api.base_url, FAST) as client, pytest.raises(SourceError) as info:
        client.klines("NOPEUSDT", "1h")
    assert "Invalid symbol" in str(info.value) and "symbol=NOPEUSDT" in str(info.value)


def test_rate_limited_klines_are_retried(loopback_api, api_samples) -> None:
    loopback_api.script(
        KLINES_PATH,
        loopback_api.reply(429, b'{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "0"}),
        loopback_api.recorded(api_samples / "binance_api_v3_klines_btcusdt_1d_2023-12.json"),
    )
    with BinanceClient(loopback_api.base_url, FAST) as client:
        assert len(client.klines("BTCUSDT", "1d")) == 31


@pytest.mark.parametrize(
    ("interval", "limit"),
    [
        ("2h", 10),  # a Binance interval the topic does not accept
        ("1h", 0),  # limit below 1
        ("1h", 1001),  # limit above Binance's maximum
    ],
)
def test_bad_arguments_are_config_errors(interval, limit) -> None:
    with BinanceClient("http://127.0.0.1:9", FAST) as client, pytest.raises(ConfigError):
        client.raw_klines("BTCUSDT", interval, limit=limit)


@pytest.mark.parametrize(
    "row",
    [
        [1701388800000, "1", "2"],  # too short
        [1701388800000, "x", "2", "1", "1", "1", 1701475199999],  # non-numeric price
        {"open_time": 1701388800000},  # an object, not an array
    ],
)
def test_malformed_klines_are_source_errors(row) -> None:
    with pytest.raises(SourceError, match="kline #0"):
        parse_kline(row)
