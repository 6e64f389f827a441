"""Binance spot klines (OHLCV candles) from the public REST API, as ``market.candles`` messages.

Endpoint (no key needed), docs:
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints

``GET https://api.binance.com/api/v3/klines``

- ``symbol``: the pair, e.g. ``BTCUSDT``; ``interval``: ``1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h
  1d 3d 1w 1M`` (this project accepts the ones in :data:`warehouse.topics.INTERVALS_MS`);
- ``startTime`` / ``endTime``: epoch ms, inclusive bounds on the open time;
- ``limit``: 500 by default, at most 1000.

It answers a JSON array of klines, oldest first; each kline is an array::

    [open_time_ms, "open", "high", "low", "close", "volume (base asset)", close_time_ms,
     "quote volume", trades, "taker buy base volume", "taker buy quote volume", "ignore"]

A request weighs 2 of the 6000 weight an IP may use per minute; past it Binance answers 429
with ``Retry-After``, and 418 (a ban, ``Retry-After`` in minutes to days) if a client keeps
going. A kline whose close time is still ahead is the open, unfinished bar: it is not produced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from pipelines.sources.http import HttpClient, HttpOptions
from warehouse.errors import ConfigError, SourceError
from warehouse.topics import INTERVALS_MS, Record

DEFAULT_BASE_URL = "https://api.binance.com"
KLINES_PATH = "/api/v3/klines"
MAX_LIMIT = 1000
DEFAULT_OPTIONS = HttpOptions(min_interval_s=0.1)
"""At most 10 calls a second: 20 weight/s, well under the 100 weight/s the IP limit allows."""

Kline = tuple[int, float, float, float, float, float, int]
"""open_time ms, open, high, low, close, base volume, close_time ms."""


def parse_kline(row: Any, index: int = 0) -> Kline:
    """Read one raw kline array (see the module docstring) into typed values.

    Args:
        row: One element of the klines array.
        index: Its position, for the error message. Defaults to 0.

    Raises:
        SourceError: the row is not a kline array with numeric fields.
    """
    if not isinstance(row, list | tuple) or len(row) < 7:
        raise SourceError(
            f"kline #{index} is not an array of at least 7 fields "
            f"[open_time, open, high, low, close, volume, close_time]: {row!r:.200}"
        )
    try:
        return (
            int(row[0]),
            float(row[1]),
            float(row[2]),
            float(row[3]),
            float(row[4]),
            float(row[5]),
            int(row[6]),
        )
    except (TypeError, ValueError) as exc:
        raise SourceError(f"kline #{index} has a non-numeric field ({exc}): {row!r:.200}") from None


def interval_ms(interval: str) -> int:
    """The length of ``interval`` in ms; ConfigError naming the accepted ones when unknown."""
    try:
        return INTERVALS_MS[interval]
    except KeyError:
        raise ConfigError(
            f"unknown candle interval {interval!r}; expected one of {', '.join(INTERVALS_MS)}"
        ) from None


def candles_from_klines(
    rows: Sequence[Any],
    *,
    symbol: str,
    interval: str,
    source: str = "binance",
    closed_before_ms: int | None = None,
) -> list[Record]:
    """Turn raw Binance klines into ``market.candles`` messages.

    Args:
        rows: The klines array as Binance returns it.
        symbol: The pair, e.g. ``"BTCUSDT"`` (upper-cased).
        interval: The kline interval, e.g. ``"1h"``.
        source: The ``source`` field. Defaults to ``"binance"``.
        closed_before_ms: Drop klines whose close time is at or after this (the unfinished bar).
            ``None`` keeps every kline.

    Returns:
        One message per kline, in the order given.
    """
    interval_ms(interval)
    messages: list[Record] = []
    for index, row in enumerate(rows):
        open_time, open_, high, low, close, volume, close_time = parse_kline(row, index)
        if closed_before_ms is not None and close_time >= closed_before_ms:
            continue
        messages.append(
            {
                "symbol": symbol.upper(),
                "interval": interval,
                "open_time": open_time,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
                "source": source,
            }
        )
    return messages


class BinanceClient:
    """Binance spot market data over REST.

    Args:
        base_url: API root. Defaults to ``https://api.binance.com``.
        options: Timeouts, retries and rate limit. Defaults to :data:`DEFAULT_OPTIONS`.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, options: HttpOptions | None = None):
        self.http = HttpClient(base_url, options or DEFAULT_OPTIONS)

    def __enter__(self) -> BinanceClient:
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

    def raw_klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = MAX_LIMIT,
    ) -> list[Any]:
        """One ``/api/v3/klines`` call; the raw array (see the module docstring).

        Args:
            symbol: The pair, e.g. ``"BTCUSDT"``.
            interval: The kline interval, e.g. ``"1h"``.
            start_ms: First open time wanted (inclusive). ``None``: Binance picks (the latest).
            end_ms: Last open time wanted (inclusive). ``None``: up to now.
            limit: Klines per call, 1..1000. Defaults to 1000.
        """
        interval_ms(interval)
        if not 1 <= limit <= MAX_LIMIT:
            raise ConfigError(f"Binance klines limit must be in 1..{MAX_LIMIT}, got {limit}")
        payload = self.http.get_json(
            KLINES_PATH,
            {
                "symbol": symbol.upper(),
                "interval": interval,
                "startTime": start_ms,
                "endTime": end_ms,
                "limit": limit,
            },
        )
        if not isinstance(payload, list):
            raise SourceError(
                f"{self.http.base_url}{KLINES_PATH} for {symbol} returned "
                f"{type(payload).__name__}, expected a klines array: {payload!r:.200}"
            )
        return payload

    def klines(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = MAX_LIMIT,
    ) -> list[Record]:
        """Closed candles of one ``/api/v3/klines`` call as ``market.candles`` messages.

        Arguments as :meth:`raw_klines`; the unfinished bar (close time ahead of now) is left out.
        """
        rows = self.raw_klines(symbol, interval, start_ms=start_ms, end_ms=end_ms, limit=limit)
        return candles_from_klines(
            rows, symbol=symbol, interval=interval, closed_before_ms=_now_ms()
        )

    def backfill(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        page_limit: int = MAX_LIMIT,
    ) -> Iterator[Record]:
        """Page through history from ``start_ms`` to ``end_ms``, oldest first.

        Each page asks for ``page_limit`` klines from the cursor; the next cursor is the last
        open time + one interval. It stops at an empty or short page, at ``end_ms``, or at the
        first unfinished bar. Gaps in Binance's history (outages) stay gaps.

        Args:
            symbol: The pair, e.g. ``"BTCUSDT"``.
            interval: The kline interval, e.g. ``"1h"``.
            start_ms: First open time wanted (inclusive), epoch ms.
            end_ms: Last open time wanted (inclusive). ``None``: up to now.
            page_limit: Klines per request, 1..1000. Defaults to 1000.

        Yields:
            ``market.candles`` messages.
        """
        step = interval_ms(interval)
        end = _now_ms() if end_ms is None else end_ms
        cursor = start_ms
        while cursor <= end:
            rows = self.raw_klines(symbol, interval, start_ms=cursor, end_ms=end, limit=page_limit)
            if not rows:
                return
            now = _now_ms()
            candles = candles_from_klines(
                rows, symbol=symbol, interval=interval, closed_before_ms=now
            )
            yield from candles
            last_open = parse_kline(rows[-1], len(rows) - 1)[0]
            if len(candles) < len(rows) or len(rows) < page_limit or last_open < cursor:
                return
            cursor = last_open + step


def _now_ms() -> int:
    return int(time.time() * 1000)
