"""CoinGecko spot snapshots and price history, as ``market.tickers`` and ``market.candles``.

Endpoints (docs: https://docs.coingecko.com/reference/introduction), root
``https://api.coingecko.com/api/v3``; a demo key goes in the ``x-cg-demo-api-key`` header, a
pro key in ``x-cg-pro-api-key`` with root ``https://pro-api.coingecko.com/api/v3``. The public
API allows roughly 5-30 calls a minute; 429 answers carry ``Retry-After``.

``GET /coins/markets?vs_currency=usd&order=market_cap_desc&per_page=100&page=1[&ids=a,b]``
    An array of coins: ``id``, ``symbol`` (``"btc"``), ``current_price``, ``market_cap``,
    ``total_volume`` (24 h, in ``vs_currency``), ``price_change_percentage_24h``,
    ``last_updated`` (ISO 8601) and more. One coin -> one ticker message: ``symbol`` is the
    upper-cased coin symbol + ``symbol_suffix`` (``"USDT"`` by default, so that ``btc`` becomes
    ``BTCUSDT`` and joins with exchange candles), ``ts`` is ``last_updated``. Coins without a
    positive price are skipped; when two coins share a symbol (wrapped or bridged tokens), the
    first (larger market cap) is kept. Both are logged.

``GET /coins/{id}/market_chart/range?vs_currency=usd&from=<unix s>&to=<unix s>``
    ``{"prices": [[ms, price], ...], "market_caps": [...], "total_volumes": [[ms, vol], ...]}``.
    Granularity is automatic: 5-minutely within a day of now, hourly for ranges up to 90 days,
    daily (00:00 UTC) beyond; :meth:`CoinGeckoClient.candles` therefore asks in chunks of
    :data:`CHUNK_DAYS` days to get hourly points.

How candles are built from price points (:func:`candles_from_market_chart`): points are bucketed
by ``floor(ts / interval)``. ``close`` is the last price in the bucket; ``open`` is the last price
before the bucket when that point is at most one interval earlier (the price at the bar's
start, as on an exchange), else the first price in the bucket; ``high``/``low`` are the max/min
of ``open`` and every price in the bucket. CoinGecko's ``total_volumes`` is a trailing 24 h
volume in the quote currency, so the bar's base-asset volume is estimated as
``last 24 h volume in the bucket * (interval / 24 h) / close``: an average, not a traded figure.
Candles need points about as dense as the interval: a median spacing above 1.5 intervals
(hourly points jitter by minutes) is an error (ask for a shorter range or a longer interval).
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pipelines.sources.binance import interval_ms
from pipelines.sources.event_time import text_to_ms
from pipelines.sources.http import HttpClient, HttpOptions
from warehouse.errors import ConfigError, SourceError
from warehouse.topics import Record

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.coingecko.com/api/v3"
SOURCE = "coingecko"
DAY_MS = 86_400_000
CHUNK_DAYS = 90
SPARSE_FACTOR = 1.5
"""Points a median of more than this many intervals apart are too sparse for candles."""
DEFAULT_OPTIONS = HttpOptions(min_interval_s=2.5)
"""24 calls a minute at most: under the public API's limit."""


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _optional(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def tickers_from_markets(
    coins: Sequence[Any],
    *,
    symbol_suffix: str = "USDT",
    fetched_ms: int | None = None,
    source: str = SOURCE,
) -> list[Record]:
    """Turn a ``/coins/markets`` array into ``market.tickers`` messages (rules in the docstring).

    Args:
        coins: The response array.
        symbol_suffix: Appended to the upper-cased coin symbol. Defaults to ``"USDT"``.
        fetched_ms: ``ts`` for coins without ``last_updated``. ``None``: the wall clock.
        source: The ``source`` field. Defaults to ``"coingecko"``.
    """
    fallback_ms = int(time.time() * 1000) if fetched_ms is None else fetched_ms
    messages: list[Record] = []
    seen: dict[str, str] = {}
    for index, coin in enumerate(coins):
        if not isinstance(coin, dict) or not isinstance(coin.get("symbol"), str):
            raise SourceError(f"/coins/markets entry #{index} has no symbol: {coin!r:.200}")
        coin_id = str(coin.get("id", "?"))
        symbol = coin["symbol"].strip().upper() + symbol_suffix
        price = _positive(coin.get("current_price"))
        if price is None:
            log.warning("coingecko: %s has no positive price; skipped", coin_id)
            continue
        if symbol in seen:
            log.warning(
                "coingecko: %s repeats symbol %s of %s; skipped", coin_id, symbol, seen[symbol]
            )
            continue
        seen[symbol] = coin_id
        updated = coin.get("last_updated")
        messages.append(
            {
                "symbol": symbol,
                "price": price,
                "market_cap": _optional(coin.get("market_cap")),
                "volume_24h": _optional(coin.get("total_volume")),
                "change_24h_pct": _optional(coin.get("price_change_percentage_24h")),
                "ts": text_to_ms(updated) if isinstance(updated, str) else fallback_ms,
                "source": source,
            }
        )
    return messages


def _points(chart: Any, key: str) -> list[tuple[int, float]]:
    series = chart.get(key) if isinstance(chart, dict) else None
    if not isinstance(series, list):
        raise SourceError(f"market chart has no '{key}' array; keys: {sorted(chart or {})}")
    points: dict[int, float] = {}
    for index, point in enumerate(series):
        try:
            ts, value = int(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            raise SourceError(
                f"market chart '{key}' point #{index} is not [ms, value]: {point!r}"
            ) from None
        points[ts] = value
    return sorted(points.items())


def candles_from_market_chart(
    chart: Any,
    *,
    symbol: str,
    interval: str = "1h",
    complete_before_ms: int | None = None,
    source: str = SOURCE,
) -> list[Record]:
    """Build OHLCV candles from a ``market_chart/range`` response (method in the docstring).

    Args:
        chart: The response object with ``prices`` and ``total_volumes``.
        symbol: The ``symbol`` of the messages, e.g. ``"BTCUSDT"``.
        interval: Bucket length, one of ``INTERVALS_MS``. Defaults to ``"1h"``.
        complete_before_ms: Drop buckets ending after this (still open). ``None``: keep all.
        source: The ``source`` field. Defaults to ``"coingecko"``.

    Raises:
        SourceError: malformed arrays, or points sparser than the interval.
    """
    step = interval_ms(interval)
    prices = _points(chart, "prices")
    volumes = _points(chart, "total_volumes")
    if len(prices) >= 2:
        spacing = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(prices))
        if spacing > SPARSE_FACTOR * step:
            raise SourceError(
                f"{symbol}: CoinGecko price points are a median {spacing / 3_600_000:.1f} h apart, "
                f"too sparse for {interval} candles; ask for a range of at most {CHUNK_DAYS} days "
                "(hourly points) or a longer interval"
            )
    volume_at = dict(volumes)
    buckets: dict[int, list[tuple[int, float]]] = {}
    for ts, price in prices:
        buckets.setdefault(ts // step * step, []).append((ts, price))
    candles: list[Record] = []
    previous: tuple[int, float] | None = None
    for start in sorted(buckets):
        points = buckets[start]
        if previous is not None and start - previous[0] <= step:
            open_ = previous[1]
        else:
            open_ = points[0][1]
        previous = points[-1]
        if complete_before_ms is not None and start + step > complete_before_ms:
            continue
        close = points[-1][1]
        bucket_volumes = [volume_at[ts] for ts, _ in points if ts in volume_at]
        volume = bucket_volumes[-1] * step / DAY_MS / close if bucket_volumes and close else 0.0
        all_prices = [open_, *(p for _, p in points)]
        candles.append(
            {
                "symbol": symbol.upper(),
                "interval": interval,
                "open_time": start,
                "open": open_,
                "high": max(all_prices),
                "low": min(all_prices),
                "close": close,
                "volume": max(volume, 0.0),
                "source": source,
            }
        )
    return candles


class CoinGeckoClient:
    """The CoinGecko public API (v3).

    Args:
        base_url: API root. Defaults to ``https://api.coingecko.com/api/v3``.
        options: Timeouts, retries and rate limit. Defaults to :data:`DEFAULT_OPTIONS`.
        api_key: A demo key (sent as ``x-cg-demo-api-key``). ``None``: anonymous.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        options: HttpOptions | None = None,
        *,
        api_key: str | None = None,
    ) -> None:
        headers = {"x-cg-demo-api-key": api_key} if api_key else None
        self.http = HttpClient(base_url, options or DEFAULT_OPTIONS, headers=headers)

    def __enter__(self) -> CoinGeckoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    def markets(
        self,
        *,
        vs_currency: str = "usd",
        ids: Sequence[str] | None = None,
        per_page: int = 100,
        page: int = 1,
        symbol_suffix: str = "USDT",
    ) -> list[Record]:
        """Ticker messages for the top coins by market cap (or for ``ids``).

        Args:
            vs_currency: Quote currency of prices and volumes. Defaults to ``"usd"``.
            ids: CoinGecko coin ids (``"bitcoin"``). ``None``: the top ``per_page`` coins.
            per_page: Coins per page, 1..250. Defaults to 100.
            page: Page number from 1. Defaults to 1.
            symbol_suffix: See :func:`tickers_from_markets`. Defaults to ``"USDT"``.
        """
        if not 1 <= per_page <= 250 or page < 1:
            raise ConfigError(f"per_page must be 1..250 and page >= 1, got {per_page}, {page}")
        payload = self.http.get_json(
            "/coins/markets",
            {
                "vs_currency": vs_currency,
                "ids": ",".join(ids) if ids else None,
                "order": "market_cap_desc",
                "per_page": per_page,
                "page": page,
            },
        )
        if not isinstance(payload, list):
            raise SourceError(f"/coins/markets returned a {type(payload).__name__}, not an array")
        return tickers_from_markets(payload, symbol_suffix=symbol_suffix)

    def market_chart_range(
        self, coin_id: str, *, start_ms: int, end_ms: int, vs_currency: str = "usd"
    ) -> dict[str, Any]:
        """One raw ``/coins/{id}/market_chart/range`` response (times rounded down to seconds)."""
        payload = self.http.get_json(
            f"/coins/{coin_id}/market_chart/range",
            {"vs_currency": vs_currency, "from": start_ms // 1000, "to": end_ms // 1000},
        )
        if not isinstance(payload, dict):
            raise SourceError(
                f"/coins/{coin_id}/market_chart/range returned a {type(payload).__name__}"
            )
        return payload

    def candles(
        self,
        coin_id: str,
        *,
        symbol: str,
        start_ms: int,
        end_ms: int | None = None,
        interval: str = "1h",
        vs_currency: str = "usd",
    ) -> list[Record]:
        """Candles of ``coin_id`` from ``start_ms`` to ``end_ms``, built from price points.

        Asks in chunks of :data:`CHUNK_DAYS` days (hourly granularity), merges the points and
        buckets them (see the module docstring); the still-open last bucket is left out.

        Args:
            coin_id: CoinGecko id, e.g. ``"bitcoin"``.
            symbol: The messages' symbol, e.g. ``"BTCUSDT"``.
            start_ms: Range start, epoch ms. end_ms: range end; ``None`` = now.
            interval: Candle interval. Defaults to ``"1h"``.
            vs_currency: Quote currency. Defaults to ``"usd"``.
        """
        end = int(time.time() * 1000) if end_ms is None else end_ms
        merged: dict[str, list[Any]] = {"prices": [], "total_volumes": []}
        cursor = start_ms
        while cursor < end:
            chunk_end = min(end, cursor + CHUNK_DAYS * DAY_MS)
            chart = self.market_chart_range(
                coin_id, start_ms=cursor, end_ms=chunk_end, vs_currency=vs_currency
            )
            for key in merged:
                merged[key].extend(chart.get(key) or [])
            cursor = chunk_end
        return candles_from_market_chart(
            merged,
            symbol=symbol,
            interval=interval,
            complete_before_ms=min(end, int(time.time() * 1000)),
        )
