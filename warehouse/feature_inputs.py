"""The inputs of the gold features, validated and aligned to the candle rows.

:mod:`warehouse.features` runs the expressions of :mod:`warehouse.feature_spec` on the helper
columns prepared here, under the point-in-time rules it documents: typed and checked inputs
(candles, scored posts, Fear & Greed), symbol segments and exact-time row lookups (gaps are never
filled), the market factor (BTC returns by timestamp), hour buckets of posts per symbol and
market-wide, and the as-of Fear & Greed value at each candle close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from warehouse.errors import DataError, SchemaError
from warehouse.feature_spec import (
    BTC_LOG_RETURN_1H,
    BTC_RETURN_1H,
    BTC_RETURN_24H,
    FEAR_GREED_MAX_AGE_HOURS,
    FEAR_GREED_VALUE,
    SENTIMENT_POSITIVE,
    SENTIMENT_WINDOWS,
    SYMBOL,
    TS,
    sentiment_helper,
)

__all__ = [
    "HOUR_US",
    "PRICE_COLUMNS",
    "QUOTE_ASSETS",
    "SCORE_SCALE",
    "FearGreedSeries",
    "MarketFactor",
    "PostBuckets",
    "Segment",
    "as_utc",
    "between",
    "epoch_us",
    "normalised_candles",
    "normalised_fear_greed",
    "normalised_posts",
    "rows_at_offsets",
    "sorted_candles",
    "symbol_segments",
    "take",
]

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
HOUR_US = 3_600_000_000
"""One hour in microseconds (the physical unit of ``ts``)."""

# --- input checks, candles and segments ----------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc_ts(frame: pl.DataFrame, what: str) -> pl.Expr:
    """The ``ts`` column as Datetime(us, UTC); naive or non-datetime columns are refused."""
    ts_type = frame.schema.get(TS)
    if not isinstance(ts_type, pl.Datetime) or ts_type.time_zone is None:
        raise SchemaError(
            f"{what} column 'ts' must be a time-zone aware Datetime (UTC), got {ts_type}; "
            "for naive UTC times use .dt.replace_time_zone('UTC')"
        )
    return pl.col(TS).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def _require(frame: pl.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what} lack column(s) {missing}; they have {frame.columns}")
    bad = [
        c for c in columns if c not in (TS, SYMBOL, "symbols") and not frame.schema[c].is_numeric()
    ]
    if bad:
        raise SchemaError(f"{what} column(s) {bad} must be numeric, got {frame.select(bad).schema}")


def normalised_candles(candles: pl.DataFrame) -> pl.DataFrame:
    """Select and type the candle columns: ``symbol`` String, ``ts`` Datetime(us, UTC), Float64."""
    _require(candles, "candles", (SYMBOL, TS, *PRICE_COLUMNS))
    symbol_type = candles.schema[SYMBOL]
    if symbol_type not in (pl.String, pl.Categorical) and not isinstance(symbol_type, pl.Enum):
        raise SchemaError(f"candles column 'symbol' must be a string, got {symbol_type}")
    return candles.select(
        pl.col(SYMBOL).cast(pl.String),
        _utc_ts(candles, "candles"),
        *(pl.col(c).cast(pl.Float64) for c in PRICE_COLUMNS),
    )


def sorted_candles(candles: pl.DataFrame) -> pl.DataFrame:
    """Sort by ``symbol, ts`` (unless already sorted) and reject null or duplicate keys."""
    nulls = candles.select(pl.col(SYMBOL).null_count() + pl.col(TS).null_count()).item()
    if nulls:
        raise DataError(f"{nulls} candle rows have a null symbol or ts; silver must not hold them")
    same_symbol = pl.col(SYMBOL) == pl.col(SYMBOL).shift(1)
    ordered = (pl.col(SYMBOL) > pl.col(SYMBOL).shift(1)) | (
        same_symbol & (pl.col(TS) > pl.col(TS).shift(1))
    )
    if candles.select(ordered.slice(1).all()).item():
        return candles
    candles = candles.sort(SYMBOL, TS)
    dupes = candles.filter(same_symbol & (pl.col(TS) == pl.col(TS).shift(1)))
    if dupes.height:
        first = dupes.row(0, named=True)
        raise DataError(
            f"candles hold {dupes.height} duplicate (symbol, ts) rows, e.g. "
            f"{first[SYMBOL]} at {first[TS]}; deduplicate them in silver first"
        )
    return candles


@dataclass(frozen=True)
class Segment:
    """The rows ``[start, end)`` of one symbol in a frame sorted by ``symbol, ts``."""

    symbol: str
    start: int
    end: int


def symbol_segments(base: pl.DataFrame) -> list[Segment]:
    """The run of rows of each symbol in ``base`` (sorted by ``symbol, ts``), in order."""
    runs = base.select(pl.col(SYMBOL).rle()).unnest(SYMBOL)
    lengths = runs["len"].to_numpy()
    ends = np.cumsum(lengths)
    return [
        Segment(str(s), int(e - n), int(e))
        for s, n, e in zip(runs["value"].to_list(), lengths, ends, strict=True)
    ]


# --- exact-time lookups ----------------------------------------------------------------------


def _search(sorted_ts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of each target in ``sorted_ts`` (unique, ascending), -1 where absent."""
    if sorted_ts.shape[0] == 0:
        return np.full(targets.shape[0], -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ts, targets), sorted_ts.shape[0] - 1)
    return np.where(sorted_ts[pos] == targets, pos, -1)


def rows_at_offsets(
    ts: np.ndarray, segments: Sequence[Segment], offsets_us: Sequence[int]
) -> dict[int, np.ndarray]:
    """Per offset, the index of the same symbol's row at exactly ``ts + offset``, else -1.

    Fast path: on a (mostly) regular grid the answer is ``offset / step`` rows away; only rows
    where that guess misses (near gaps) are binary-searched.
    """
    out = {o: np.full(ts.shape[0], -1, dtype=np.int64) for o in offsets_us}
    for seg in segments:
        part = ts[seg.start : seg.end]
        n = part.shape[0]
        step = int(np.diff(part).min()) if n > 1 else 0
        for offset in offsets_us:
            target = part + offset
            if step > 0 and offset % step == 0:
                guess = np.arange(n) + offset // step
                hit = (guess >= 0) & (guess < n)
                hit[hit] = part[guess[hit]] == target[hit]
                found = np.where(hit, guess, -1)
                missed = np.flatnonzero(~hit)
                found[missed] = _search(part, target[missed])
            else:
                found = _search(part, target)
            out[offset][seg.start : seg.end] = np.where(found >= 0, found + seg.start, -1)
    return out


def take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` as float, NaN where ``rows`` is -1."""
    if values.shape[0] == 0:
        return np.full(rows.shape[0], np.nan)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan)


def epoch_us(frame: pl.DataFrame) -> np.ndarray:
    """The ``ts`` column as int64 microseconds since the epoch."""
    return frame[TS].to_physical().to_numpy()


# --- market factor, posts, Fear & Greed ------------------------------------------------------


@dataclass(frozen=True)
class MarketFactor:
    """BTC's 1 h log return and 1 h / 24 h simple returns, by timestamp (empty without BTC)."""

    ts: np.ndarray
    log_return_1h: np.ndarray
    return_1h: np.ndarray
    return_24h: np.ndarray

    @classmethod
    def from_candles(cls, base: pl.DataFrame, segments: Sequence[Segment]) -> MarketFactor:
        """The factor of the BTC symbol: the shortest symbol name starting with ``BTC``."""
        btc = [s for s in segments if s.symbol.upper().startswith("BTC")]
        if not btc:
            empty = np.empty(0)
            return cls(np.empty(0, dtype=np.int64), empty, empty, empty)
        chosen = min(btc, key=lambda s: (len(s.symbol), s.symbol))
        rows = base.slice(chosen.start, chosen.end - chosen.start)
        ts, close = epoch_us(rows), rows["close"].to_numpy()
        lags = rows_at_offsets(
            ts, [Segment(chosen.symbol, 0, rows.height)], [-HOUR_US, -24 * HOUR_US]
        )
        ago_1h, ago_24h = take(close, lags[-HOUR_US]), take(close, lags[-24 * HOUR_US])
        with np.errstate(divide="ignore", invalid="ignore"):
            return cls(ts, np.log(close / ago_1h), close / ago_1h - 1, close / ago_24h - 1)

    def aligned(self, ts: np.ndarray) -> dict[str, np.ndarray]:
        """The factor at each of ``ts`` (NaN where BTC has no candle at that hour)."""
        rows = _search(self.ts, ts)
        return {
            BTC_LOG_RETURN_1H: take(self.log_return_1h, rows),
            BTC_RETURN_1H: take(self.return_1h, rows),
            BTC_RETURN_24H: take(self.return_24h, rows),
        }


SCORE_SCALE = 1_000_000_000
"""Scores are summed in fixed point (1e-9) so window sums are exact whatever the history."""

QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
"""Quote currencies stripped from a candle symbol to get the base asset posts name."""

_STATS = ("n", "sum", "pos")


def _base_asset(symbol: str) -> str:
    upper = symbol.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)].rstrip("-_/")
    return upper


def normalised_posts(sentiment: pl.DataFrame | None) -> pl.DataFrame | None:
    """Scored posts as ``ts`` (UTC), ``symbols``, ``score`` (Float64, non-null); None stays None."""
    if sentiment is None:
        return None
    _require(sentiment, "sentiment posts", (TS, "symbols", "score"))
    if sentiment.schema["symbols"] != pl.List(pl.String):
        raise SchemaError(
            f"sentiment column 'symbols' must be list[str], got {sentiment.schema['symbols']}"
        )
    posts = sentiment.select(
        _utc_ts(sentiment, "sentiment"), "symbols", pl.col("score").cast(pl.Float64)
    )
    outside = posts.filter(pl.col("score").abs() > 1)
    if outside.height:
        raise DataError(
            f"{outside.height} sentiment scores are outside [-1, 1], e.g. {outside['score'][0]} "
            f"at {outside[TS][0]}"
        )
    return posts.filter(pl.col("score").is_not_null())


def normalised_fear_greed(fear_greed: pl.DataFrame | None) -> pl.DataFrame | None:
    """Fear & Greed rows as ``ts`` (UTC) and ``value`` (Float64); None stays None."""
    if fear_greed is None:
        return None
    _require(fear_greed, "fear & greed rows", (TS, "value"))
    return fear_greed.select(_utc_ts(fear_greed, "fear_greed"), pl.col("value").cast(pl.Float64))


def between(frame: pl.DataFrame | None, first: datetime, end: datetime) -> pl.DataFrame | None:
    """The rows with ``first <= ts < end`` (None stays None)."""
    return None if frame is None else frame.filter(pl.col(TS) >= first, pl.col(TS) < end)


@dataclass(frozen=True)
class _Buckets:
    """Hour buckets of posts with prefix sums of count, fixed-point score sum, positive count."""

    ts: np.ndarray
    prefix: dict[str, np.ndarray]

    @classmethod
    def of(cls, hourly: pl.DataFrame) -> _Buckets:
        prefix = {s: np.concatenate(([0], np.cumsum(hourly[s].to_numpy()))) for s in _STATS}
        return cls(hourly["bucket"].to_numpy(), prefix)

    def window_sums(self, ts: np.ndarray, hours: int) -> dict[str, np.ndarray]:
        """Per stat, the sum over the buckets in ``(ts - hours, ts]``."""
        right = np.searchsorted(self.ts, ts, side="right")
        left = np.searchsorted(self.ts, ts - hours * HOUR_US, side="right")
        return {s: p[right] - p[left] for s, p in self.prefix.items()}


@dataclass(frozen=True)
class PostBuckets:
    """Scored posts bucketed per hour: per candle symbol and market-wide (None: no input)."""

    by_symbol: dict[str, _Buckets]
    market: _Buckets | None

    @classmethod
    def build(cls, sentiment: pl.DataFrame | None, symbols: Sequence[str]) -> PostBuckets:
        """Bucket the posts of ``sentiment`` naming one of ``symbols`` (or its base asset)."""
        posts = normalised_posts(sentiment)
        if posts is None:
            return cls({}, None)
        posts = posts.with_columns(
            bucket=pl.col(TS).dt.truncate("1h").to_physical(),
            n=pl.lit(1, pl.Int64),
            sum=(pl.col("score") * SCORE_SCALE).round().cast(pl.Int64),
            pos=(pl.col("score") > SENTIMENT_POSITIVE).cast(pl.Int64),
        ).with_row_index("_post")
        totals = [pl.col(s).sum() for s in _STATS]
        market = posts.group_by("bucket").agg(totals).sort("bucket")
        aliases = pl.DataFrame(
            {"alias": [*symbols, *map(_base_asset, symbols)], SYMBOL: [*symbols, *symbols]}
        ).unique()
        per_symbol = (
            posts.explode("symbols")
            .with_columns(alias=pl.col("symbols").str.strip_chars().str.to_uppercase())
            .join(aliases, on="alias")
            .unique(["_post", SYMBOL])
            .group_by(SYMBOL, "bucket")
            .agg(totals)
            .sort(SYMBOL, "bucket")
        )
        by_symbol = {
            str(key[0]): _Buckets.of(part)
            for key, part in per_symbol.partition_by(SYMBOL, as_dict=True).items()
        }
        return cls(by_symbol, _Buckets.of(market))

    def aligned(self, ts: np.ndarray, segments: Sequence[Segment]) -> list[pl.Series | pl.Expr]:
        """The helper columns of post counts and score sums for the rows at ``ts``."""
        names = [
            (scope, s, h) for scope in ("sym", "mkt") for h in SENTIMENT_WINDOWS for s in _STATS
        ]
        if self.market is None:
            return [
                pl.lit(0.0 if s == "sum" else 0, pl.Float64 if s == "sum" else pl.Int64).alias(
                    sentiment_helper(scope, s, h)
                )
                for scope, s, h in names
            ]
        values = {k: np.zeros(ts.shape[0], dtype=np.int64) for k in names}
        for h in SENTIMENT_WINDOWS:
            for s, v in self.market.window_sums(ts, h).items():
                values[("mkt", s, h)] = v
            for seg in segments:
                buckets = self.by_symbol.get(seg.symbol)
                if buckets is not None:
                    sums = buckets.window_sums(ts[seg.start : seg.end], h)
                    for s, v in sums.items():
                        values[("sym", s, h)][seg.start : seg.end] = v
        return [
            pl.Series(sentiment_helper(*k), v / SCORE_SCALE if k[1] == "sum" else v)
            for k, v in values.items()
        ]


@dataclass(frozen=True)
class FearGreedSeries:
    """Fear & Greed values by publication time (empty without input)."""

    ts: np.ndarray
    value: np.ndarray

    @classmethod
    def build(cls, fear_greed: pl.DataFrame | None) -> FearGreedSeries:
        """Sorted non-null values; of several at the same ``ts`` the last one is kept."""
        rows = normalised_fear_greed(fear_greed)
        if rows is None:
            return cls(np.empty(0, dtype=np.int64), np.empty(0))
        rows = rows.drop_nulls().sort(TS).unique(TS, keep="last", maintain_order=True)
        return cls(rows[TS].to_physical().to_numpy(), rows["value"].to_numpy())

    def aligned(self, ts: np.ndarray) -> dict[str, np.ndarray]:
        """The latest value published before each candle close ``ts + 1h`` (age <= 48 h)."""
        close = ts + HOUR_US
        rows = np.searchsorted(self.ts, close, side="left") - 1
        if self.ts.shape[0]:
            age = close - self.ts[np.maximum(rows, 0)]
            rows = np.where(age <= FEAR_GREED_MAX_AGE_HOURS * HOUR_US, rows, -1)
        return {FEAR_GREED_VALUE: take(self.value, rows)}
