"""Latest prices, the Fear & Greed index and a market summary (``POST /market``).

Prices come from ``silver/candles`` (hourly): per symbol the latest bar's ``close`` and ``ts``,
and over the 24 hours ending at that bar

* ``change_24h``: ``close / reference_close - 1``, the reference being the last close at or
  before ``ts - 24h`` (null when there is none within 25 hours, e.g. a young symbol or a gap);
* ``volatility_24h``: realised volatility, ``sqrt(sum(r ** 2))`` over the log returns between
  consecutive bars inside ``[ts - 24h, ts]`` (not annualised; null with no such return);
* ``volume_24h``: the summed base-asset volume of those bars.

The summary counts the symbols up, down and unchanged over 24 hours and their mean change, over
every symbol in the table (the market), whichever symbols a request asks for. Fear & Greed is the
latest row of ``silver/fear_greed``, null when that table does not exist. The dashboard's
sparklines take each symbol's closes over the last :data:`SPARKLINE_WINDOW`
(:func:`recent_closes`), kept with the same snapshot so no request re-reads the lake.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from serving.predictions import SymbolName, select_symbols
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED
from warehouse.errors import DataError
from warehouse.lake import Lake, read_table, table_version

WINDOW = timedelta(hours=24)
REFERENCE_TOLERANCE = timedelta(hours=1)
"""How much older than ``ts - 24h`` the reference close of ``change_24h`` may be."""
SPARKLINE_WINDOW = timedelta(hours=48)
"""The span of closes :meth:`MarketService.recent_closes` keeps per symbol (48 hourly bars)."""


class MarketRequest(BaseModel):
    """``POST /market`` body; ``symbols`` default None: every symbol in silver candles."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[SymbolName] | None = Field(
        default=None, min_length=1, max_length=500, examples=[["BTCUSDT", "ETHUSDT"]]
    )


class SymbolPrice(BaseModel):
    """One symbol's latest price and its last 24 hours."""

    symbol: str
    ts: datetime
    close: float
    change_24h: float | None
    volatility_24h: float | None
    volume_24h: float


class FearGreed(BaseModel):
    """The latest Crypto Fear & Greed index value (0 extreme fear .. 100 extreme greed)."""

    value: int
    classification: str | None
    ts: datetime


class MarketSummary(BaseModel):
    """Breadth of the whole market over 24 hours."""

    symbols: int
    up: int
    down: int
    unchanged: int
    mean_change_24h: float | None
    as_of: datetime | None


class MarketResponse(BaseModel):
    """``POST /market`` answer; ``candles_version`` is the silver table version read."""

    prices: list[SymbolPrice]
    fear_greed: FearGreed | None
    summary: MarketSummary
    candles_version: int
    served_at: datetime


def latest_prices(candles: pl.DataFrame) -> pl.DataFrame:
    """Per symbol: ``symbol, ts, close, change_24h, volatility_24h, volume_24h`` (by symbol).

    Args:
        candles: silver candles with at least ``symbol, ts, close, volume``.
    """
    bars = (
        candles.select("symbol", pl.col("ts").cast(pl.Datetime("us", "UTC")), "close", "volume")
        .sort("symbol", "ts")
        .with_columns(
            (pl.col("close") / pl.col("close").shift(1).over("symbol")).log().alias("log_return"),
            pl.col("ts").shift(1).over("symbol").alias("previous_ts"),
            pl.col("ts").max().over("symbol").alias("last_ts"),
        )
        .with_columns(
            # a return from a bar before the window (across a gap) is not a 24 h return
            pl.when(pl.col("previous_ts") >= pl.col("last_ts") - WINDOW).then(pl.col("log_return"))
        )
    )
    window = (
        bars.filter(pl.col("ts") > pl.col("last_ts") - WINDOW)
        .group_by("symbol")
        .agg(
            pl.col("ts").last(),
            pl.col("close").last(),
            pl.col("log_return").pow(2).sum().sqrt().alias("volatility_24h"),
            pl.col("log_return").count().alias("returns"),
            pl.col("volume").sum().alias("volume_24h"),
        )
    )
    reference = (
        bars.filter(
            (pl.col("ts") <= pl.col("last_ts") - WINDOW)
            & (pl.col("ts") >= pl.col("last_ts") - WINDOW - REFERENCE_TOLERANCE)
        )
        .group_by("symbol")
        .agg(pl.col("close").last().alias("reference_close"))
    )
    return (
        window.join(reference, on="symbol", how="left")
        .with_columns(
            (pl.col("close") / pl.col("reference_close") - 1).alias("change_24h"),
            pl.when(pl.col("returns") > 0).then(pl.col("volatility_24h")).alias("volatility_24h"),
        )
        .select("symbol", "ts", "close", "change_24h", "volatility_24h", "volume_24h")
        .sort("symbol")
    )


def recent_closes(candles: pl.DataFrame, *, window: timedelta = SPARKLINE_WINDOW) -> pl.DataFrame:
    """Per symbol, the closes of the bars inside ``(last ts - window, last ts]``.

    Args:
        candles: silver candles with at least ``symbol, ts, close``.
        window: the span ending at each symbol's latest bar; default 48 hours (48 hourly bars
            when there is no gap).

    Returns:
        ``symbol, ts, close`` sorted by symbol and time.
    """
    return (
        candles.select("symbol", pl.col("ts").cast(pl.Datetime("us", "UTC")), "close")
        .filter(pl.col("ts") > pl.col("ts").max().over("symbol") - window)
        .sort("symbol", "ts")
    )


def market_summary(prices: pl.DataFrame) -> MarketSummary:
    """Count the symbols of ``prices`` (from :func:`latest_prices`) up, down, unchanged."""
    change = prices["change_24h"].drop_nulls()
    mean = change.mean() if change.len() else None
    return MarketSummary(
        symbols=prices.height,
        up=int((change > 0).sum()),
        down=int((change < 0).sum()),
        unchanged=int((change == 0).sum()),
        mean_change_24h=None if mean is None else float(mean),  # type: ignore[arg-type]
        as_of=prices["ts"].max() if prices.height else None,  # type: ignore[arg-type]
    )


def latest_fear_greed(fear_greed: pl.DataFrame) -> FearGreed | None:
    """The latest row of ``silver/fear_greed`` (``ts, value``, ``classification`` if present)."""
    if fear_greed.is_empty():
        return None
    row = fear_greed.sort("ts").row(-1, named=True)
    return FearGreed(value=row["value"], classification=row.get("classification"), ts=row["ts"])


@dataclass
class _Snapshot:
    versions: tuple[int, int | None]
    checked_at: float
    prices: pl.DataFrame
    summary: MarketSummary
    fear_greed: FearGreed | None
    closes: pl.DataFrame


class MarketService:
    """Answers ``POST /market``; re-reads the lake only when a table version moves.

    Args:
        lake: the lake holding ``silver/candles`` (and maybe ``silver/fear_greed``).
        refresh_s: how often to check the table versions; default 5 s.
    """

    def __init__(self, lake: Lake, *, refresh_s: float = 5.0) -> None:
        self.lake = lake
        self.refresh_s = refresh_s
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def market(self, request: MarketRequest, *, fresh: bool = False) -> MarketResponse:
        """Prices of the requested symbols, Fear & Greed and the summary.

        Args:
            request: the symbols.
            fresh: check the table versions now; default False: at most every ``refresh_s``
                seconds.

        Raises:
            RequestError: on ``symbols`` naming symbols the candles do not hold.
            DataError: when ``silver/candles`` does not exist yet.
        """
        snapshot = self._current(fresh=fresh)
        served = snapshot.prices["symbol"].to_list()
        symbols = select_symbols(request.symbols, served)
        by_symbol = {row["symbol"]: row for row in snapshot.prices.iter_rows(named=True)}
        return MarketResponse(
            prices=[SymbolPrice(**by_symbol[s]) for s in symbols],
            fear_greed=snapshot.fear_greed,
            summary=snapshot.summary,
            candles_version=snapshot.versions[0],
            served_at=datetime.now(UTC),
        )

    def recent_closes(self) -> dict[str, list[tuple[datetime, float]]]:
        """Each symbol's ``(ts, close)`` pairs over the last 48 hours, oldest first, from the
        cached snapshot (see :func:`recent_closes`).

        Raises:
            DataError: when ``silver/candles`` does not exist yet.
        """
        closes = self._current().closes
        return {
            str(symbol): list(zip(frame["ts"].to_list(), frame["close"].to_list(), strict=True))
            for (symbol,), frame in closes.group_by("symbol", maintain_order=True)
        }

    def _current(self, *, fresh: bool = False) -> _Snapshot:
        with self._lock:
            now = time.monotonic()
            cached = self._snapshot
            if cached is not None and not fresh and now - cached.checked_at < self.refresh_s:
                return cached
            candles_at = self.lake.location(SILVER_CANDLES)
            fear_greed_at = self.lake.location(SILVER_FEAR_GREED)
            candles_version = table_version(candles_at)
            if candles_version is None:
                raise DataError(
                    f"the {SILVER_CANDLES} table does not exist: ingest and materialize first"
                )
            versions = (candles_version, table_version(fear_greed_at))
            if cached is not None and cached.versions == versions:
                cached.checked_at = now
                return cached
            candles = read_table(
                candles_at, version=candles_version, columns=["symbol", "ts", "close", "volume"]
            )
            prices = latest_prices(candles)
            fear_greed = None
            if versions[1] is not None:
                table = read_table(fear_greed_at, version=versions[1])
                fear_greed = latest_fear_greed(table)
            self._snapshot = _Snapshot(
                versions,
                now,
                prices,
                market_summary(prices),
                fear_greed,
                recent_closes(candles),
            )
            return self._snapshot
