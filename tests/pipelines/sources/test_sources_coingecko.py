"""The CoinGecko client against recorded real responses, and the candle-building rules."""

from __future__ import annotations

import json

import pytest

from pipelines.sources.coingecko import (
    CHUNK_DAYS,
    DAY_MS,
    CoinGeckoClient,
    candles_from_market_chart,
    tickers_from_markets,
)
from pipelines.sources.http import HttpOptions
from warehouse.errors import SourceError
from warehouse.topics import validate_candle, validate_ticker

FAST = HttpOptions(timeout_s=2.0, retries=2, backoff_s=0.01, min_interval_s=0.0)
HOUR = 3_600_000
T0 = 1_711_843_200_000  # 2024-03-31 00:00 UTC


def test_markets_top100_become_valid_tickers(loopback_api, api_samples) -> None:
    sample = api_samples / "coingecko_coins_markets_usd_top100_2025-11-02.json"
    loopback_api.script("/api/v3/coins/markets", loopback_api.recorded(sample))
    with CoinGeckoClient(f"{loopback_api.base_url}/api/v3", FAST) as client:
        tickers = client.markets()
    for ticker in tickers:
        validate_ticker(ticker)
    # 100 coins; wrapped-solana and binance-peg-weth repeat SOL and WETH and are dropped
    assert len(tickers) == 98
    assert len({t["symbol"] for t in tickers}) == 98
    btc = tickers[0]
    assert btc == {
        "symbol": "BTCUSDT",
        "price": 110233.0,
        "market_cap": 2200733039793.0,
        "volume_24h": 33136655635.0,
        "change_24h_pct": 0.24464,
        "ts": 1762089894319,  # last_updated 2025-11-02T13:24:54.319Z
        "source": "coingecko",
    }
    [query] = loopback_api.calls("/api/v3/coins/markets")
    assert query == {
        "vs_currency": "usd",
        "order": "market_cap_desc",
        "per_page": "100",
        "page": "1",
    }


def test_markets_sends_ids_and_the_demo_key(loopback_api, api_samples) -> None:
    sample = api_samples / "coingecko_coins_markets_jkorf_2024-04-07.json"
    loopback_api.script("/coins/markets", loopback_api.recorded(sample))
    with CoinGeckoClient(loopback_api.base_url, FAST, api_key="demo-key") as client:
        tickers = client.markets(ids=["bitcoin", "ethereum"], symbol_suffix="")
    assert tickers[0]["symbol"] == "BTC"
    assert loopback_api.calls("/coins/markets")[0]["ids"] == "bitcoin,ethereum"


def test_a_coin_without_price_is_skipped() -> None:
    coins = [
        {"id": "a", "symbol": "aaa", "current_price": None, "last_updated": None},
        {"id": "b", "symbol": "bbb", "current_price": 2.5, "last_updated": None},
    ]
    [ticker] = tickers_from_markets(coins, fetched_ms=T0)
    assert ticker["symbol"] == "BBBUSDT" and ticker["ts"] == T0 and ticker["market_cap"] is None
    validate_ticker(ticker)


def test_recorded_market_chart_builds_daily_candles(loopback_api, api_samples) -> None:
    sample = api_samples / "coingecko_market_chart_range_jkorf_2024-03.json"
    chart = json.loads(sample.read_text())
    candles = candles_from_market_chart(chart, symbol="btcusdt", interval="1d")
    for candle in candles:
        validate_candle(candle)
    assert [c["open_time"] for c in candles] == [T0, T0 + DAY_MS]
    second = candles[1]
    # open = the previous day's last price; close = the bucket's last price
    assert second["open"] == pytest.approx(69702.3087473573)
    assert second["close"] == pytest.approx(68887.7495158568)
    assert second["high"] == pytest.approx(71246.9514406015)
    assert second["low"] == pytest.approx(68887.7495158568)
    # base volume = last 24 h quote volume * (1 d / 24 h) / close
    assert second["volume"] == pytest.approx(30137418199.6431 / 68887.7495158568)


def test_sparse_points_cannot_make_hourly_candles(api_samples) -> None:
    chart = json.loads(
        (api_samples / "coingecko_market_chart_range_jkorf_2024-03.json").read_text()
    )
    with pytest.raises(SourceError, match="too sparse for 1h candles"):
        candles_from_market_chart(chart, symbol="BTCUSDT", interval="1h")


def chart_of(points: list[tuple[int, float]], volume: float = 24.0) -> dict:
    return {"prices": [list(p) for p in points], "total_volumes": [[t, volume] for t, _ in points]}


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        # one point per hour, mid-hour: open is the previous hour's price
        (
            [(T0 + 5 * 60_000, 10.0), (T0 + HOUR + 5 * 60_000, 12.0)],
            [(T0, 10.0, 10.0, 10.0, 10.0), (T0 + HOUR, 10.0, 12.0, 10.0, 12.0)],
        ),
        # 5-minute points inside one hour: first, max, min, last
        (
            [(T0, 10.0), (T0 + 300_000, 14.0), (T0 + 600_000, 9.0), (T0 + 900_000, 11.0)],
            [(T0, 10.0, 14.0, 9.0, 11.0)],
        ),
        # a gap longer than the interval: the bar after it opens at its own first price
        (
            [
                (T0, 10.0),
                (T0 + 600_000, 10.5),
                (T0 + 5 * HOUR, 20.0),
                (T0 + 5 * HOUR + 600_000, 21.0),
            ],
            [(T0, 10.0, 10.5, 10.0, 10.5), (T0 + 5 * HOUR, 20.0, 21.0, 20.0, 21.0)],
        ),
        # a duplicated timestamp counts once (chunks overlap at their edges)
        (
            [(T0, 10.0), (T0, 10.0), (T0 + 1_800_000, 11.0)],
            [(T0, 10.0, 11.0, 10.0, 11.0)],
        ),
    ],
)
def test_ohlc_derivation(points, expected) -> None:
    candles = candles_from_market_chart(chart_of(points), symbol="BTCUSDT", interval="1h")
    got = [(c["open_time"], c["open"], c["high"], c["low"], c["close"]) for c in candles]
    assert got == expected
    for candle in candles:
        validate_candle(candle)
        # 24 quote units a day -> 1 per hour -> 1 / close in base units
        assert candle["volume"] == pytest.approx(1.0 / candle["close"])


def test_the_open_last_bucket_is_dropped() -> None:
    points = [(T0, 10.0), (T0 + HOUR, 11.0), (T0 + 2 * HOUR + 60_000, 12.0)]
    candles = candles_from_market_chart(
        chart_of(points), symbol="BTCUSDT", complete_before_ms=T0 + 2 * HOUR + 120_000
    )
    assert [c["open_time"] for c in candles] == [T0, T0 + HOUR]


def test_candles_ask_in_chunks_of_at_most_90_days(loopback_api, api_samples) -> None:
    sample = api_samples / "coingecko_market_chart_range_jkorf_2024-03.json"
    path = "/coins/bitcoin/market_chart/range"
    loopback_api.script(path, loopback_api.recorded(sample))
    start = T0 - 200 * DAY_MS
    end = T0 + 2 * DAY_MS
    with CoinGeckoClient(loopback_api.base_url, FAST) as client:
        candles = client.candles(
            "bitcoin", symbol="BTCUSDT", start_ms=start, end_ms=end, interval="1d"
        )
    calls = loopback_api.calls(path)
    spans = [(int(c["from"]), int(c["to"])) for c in calls]
    assert spans[0][0] == start // 1000 and spans[-1][1] == end // 1000
    assert all(b - a <= CHUNK_DAYS * 86_400 for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert len(calls) == 3 and calls[0]["vs_currency"] == "usd"
    assert [c["open_time"] for c in candles] == [T0, T0 + DAY_MS]


@pytest.mark.parametrize(
    "chart",
    [
        {"market_caps": []},  # no prices array
        {"prices": [[T0, "x"]], "total_volumes": []},  # a non-numeric price
        {"prices": [[T0]], "total_volumes": []},  # a point without a value
    ],
)
def test_malformed_charts_are_source_errors(chart) -> None:
    with pytest.raises(SourceError):
        candles_from_market_chart(chart, symbol="BTCUSDT")
