"""Gold features and targets from silver hourly candles: pure Polars, strictly point in time.

The feature set itself is declared in :mod:`warehouse.feature_spec` (re-exported here); this
module prepares the inputs each expression needs and runs them.

Point in time. A row's ``ts`` is the hour its candle opens; the candle closes at ``ts + 1h``.
The features of a row use only information that exists before that close, i.e. with a time
``< ts + 1h``: candles with ``ts' <= ts``, posts published before ``ts + 1h`` (a post falls in
the hour bucket ``floor(post.ts, 1h)``, and a row sees buckets ``<= ts``), and Fear & Greed
values published before ``ts + 1h``. A row is therefore usable for a decision at ``ts + 1h``, and
targets are measured from that close: ``target_return_{h}h = close(ts + h) / close(ts) - 1``.
``tests/warehouse/test_features_point_in_time.py`` proves it on real data by changing and by
deleting everything later and comparing.

Gaps. Candles are not assumed to lie on a regular grid and no row is ever filled in. Windows are
defined in time, not in rows:

* returns use the close exactly ``h`` hours earlier, looked up by timestamp, and targets the close
  exactly ``h`` hours later; either is null when that candle is missing;
* a rolling statistic over N hours uses the candles in ``(ts - N h, ts]`` and is null unless the
  window holds at least ``ceil(0.75 N)`` values (``MIN_WINDOW_COVERAGE``);
* recursive indicators (EMA, MACD, RSI, ATR) are time-decayed EMAs (Polars ``ewm_mean_by``): the
  previous state decays by ``(1 - alpha) ** elapsed_hours``, so on a regular hourly grid they are
  the textbook recursions (``adjust=False``; span N means ``alpha = 2 / (N + 1)``, Wilder N
  means ``alpha = 1 / N``). They are null until the trailing 96 h hold 72 candles (warm-up);
* post windows are the hour buckets in ``(ts - N h, ts]``.

Nulls are never invented: a feature is null when an input is missing, when it would divide by
zero, or during warm-up. Without ``sentiment`` the post counts are 0 and the means, shares and
momentum are null; without ``fear_greed`` (or when the latest value is older than 48 h at the
close) ``fear_greed`` is null; without a BTC symbol the market-factor columns are null.

Dtypes: features are Float32 (the model's dtype; it halves memory), target returns Float64 and
target directions Int8. Gold rows are hourly; other bar lengths run (the benchmark feeds minute
rows) but windows stay in hours and posts in hour buckets.

Incremental runs: every finite window reaches at most 168 h back, and after ``LOOKBACK_HOURS``
(720 h) the weight left on older data by the slowest EMA (half-life ~9.4 h) is ``2**-77``, below
float precision; so :func:`build_gold_features_for_range` computes from ``LOOKBACK_HOURS`` of
history and gives the rows of the full computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from warehouse.errors import ConfigError, DataError, SchemaError
from warehouse.feature_spec import (
    BTC_LOG_RETURN_1H,
    BTC_RETURN_1H,
    BTC_RETURN_24H,
    FEAR_GREED_MAX_AGE_HOURS,
    FEAR_GREED_VALUE,
    FEATURES,
    HELPER_STAGES,
    HORIZONS,
    RETURN_HOURS,
    SENTIMENT_POSITIVE,
    SENTIMENT_WINDOWS,
    SYMBOL,
    TS,
    FeatureDef,
    close_ago,
    close_ahead,
    sentiment_helper,
)

__all__ = [
    "FEATURES",
    "HORIZONS",
    "LOOKBACK_HOURS",
    "FeatureDef",
    "build_gold_features",
    "build_gold_features_for_range",
    "feature_columns",
    "feature_spec_markdown",
    "target_columns",
]

LOOKBACK_HOURS: int = 720
"""History an incremental run needs before the first row it recomputes (see module docstring)."""

BATCH_ROWS = 250_000
"""Rows computed at once (bounds memory): short symbols are grouped, long ones split in time."""

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
HOUR_US = 3_600_000_000


def feature_columns() -> list[str]:
    """Names of the feature columns, in output order."""
    return [f.name for f in FEATURES]


def target_columns() -> list[str]:
    """Names of the target columns: ``target_return_{h}h`` then ``target_direction_{h}h``."""
    return [f"target_return_{h}h" for h in HORIZONS] + [f"target_direction_{h}h" for h in HORIZONS]


def feature_spec_markdown() -> str:
    """The feature spec as a Markdown table (name | description | formula)."""
    rows = ["| name | description | formula |", "|---|---|---|"]
    for f in FEATURES:
        cells = (f"`{f.name}`", f.description, f"`{f.formula}`")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def build_gold_features(
    candles: pl.DataFrame,
    *,
    sentiment: pl.DataFrame | None = None,
    fear_greed: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Compute the gold features and targets of hourly candles.

    Args:
        candles: Silver candles: ``symbol`` (str), ``ts`` (tz-aware Datetime, the hour the candle
            opens), ``open, high, low, close, volume``; several symbols in any order, gaps allowed,
            other columns (e.g. ``gap_before``) ignored. ``(symbol, ts)`` must be unique.
        sentiment: Scored posts: ``ts`` (publication time), ``symbols`` (list of str: a candle
            symbol such as ``BTCUSDT`` or its base asset ``BTC``), ``score`` in [-1, 1]; posts with
            a null score are not counted. None (default) means no sentiment input: counts are 0
            and the other sentiment features null.
        fear_greed: The Fear & Greed index: ``ts`` (publication time) and ``value`` (0-100).
            None (default) leaves ``fear_greed`` null.

    Returns:
        One row per input candle, sorted by ``symbol, ts``: ``symbol, ts``, every
        :data:`FEATURES` column in order (Float32), then :func:`target_columns`.

    Raises:
        SchemaError: a required column is missing or has the wrong type.
        DataError: duplicate ``(symbol, ts)`` rows, null keys, or scores outside [-1, 1].
    """
    base = _sorted_candles(_normalised_candles(candles))
    segments = _segments(base)
    market = _MarketFactor.from_candles(base, segments)
    posts = _PostBuckets.build(sentiment, [s.symbol for s in segments])
    index = _FearGreedSeries.build(fear_greed)
    parts = []
    for b in _batches(_epoch_us(base), segments):
        part = _features_for_batch(base.slice(b.lo, b.hi - b.lo), b.segments, market, posts, index)
        if (b.keep_lo, b.keep_hi) != (0, b.hi - b.lo):  # a filter copies: history is freed
            part = part.filter(pl.int_range(pl.len()).is_between(b.keep_lo, b.keep_hi - 1))
        parts.append(part)
    if not parts:
        parts = [_features_for_batch(base, [], market, posts, index)]
    return pl.concat(parts, how="vertical", rechunk=False)


def build_gold_features_for_range(
    candles: pl.DataFrame,
    start: datetime,
    end: datetime,
    *,
    sentiment: pl.DataFrame | None = None,
    fear_greed: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The rows ``start <= ts < end`` of :func:`build_gold_features`, from just enough history.

    Candles are restricted to ``[start - LOOKBACK_HOURS, end + max(HORIZONS) h)`` and posts and
    Fear & Greed values to ``[start - LOOKBACK_HOURS, end + 1h)`` before computing, so an hourly
    run reads about 31 days of silver instead of all of it.

    Args:
        candles: As for :func:`build_gold_features` (may hold more rows than needed).
        start: First hour to return (inclusive); a naive datetime is taken as UTC.
        end: End of the range (exclusive); a naive datetime is taken as UTC.
        sentiment: As for :func:`build_gold_features`; default None.
        fear_greed: As for :func:`build_gold_features`; default None.

    Returns:
        The same columns as :func:`build_gold_features`, only rows with ``start <= ts < end``.

    Raises:
        ConfigError: ``start`` is not before ``end``.
    """
    start_utc, end_utc = _as_utc(start), _as_utc(end)
    if start_utc >= end_utc:
        raise ConfigError(f"feature range start {start_utc} is not before end {end_utc}")
    first = start_utc - timedelta(hours=LOOKBACK_HOURS)
    info_end = end_utc + timedelta(hours=1)
    window = _normalised_candles(candles).filter(
        pl.col(TS) >= first, pl.col(TS) < end_utc + timedelta(hours=max(HORIZONS))
    )
    out = build_gold_features(
        window,
        sentiment=_between(_normalised_posts(sentiment), first, info_end),
        fear_greed=_between(_normalised_fear_greed(fear_greed), first, info_end),
    )
    return out.filter(pl.col(TS) >= start_utc, pl.col(TS) < end_utc)


# --- candles ---------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
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


def _normalised_candles(candles: pl.DataFrame) -> pl.DataFrame:
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


def _sorted_candles(candles: pl.DataFrame) -> pl.DataFrame:
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
class _Segment:
    """The rows ``[start, end)`` of one symbol in a frame sorted by ``symbol, ts``."""

    symbol: str
    start: int
    end: int


def _segments(base: pl.DataFrame) -> list[_Segment]:
    runs = base.select(pl.col(SYMBOL).rle()).unnest(SYMBOL)
    lengths = runs["len"].to_numpy()
    ends = np.cumsum(lengths)
    return [
        _Segment(str(s), int(e - n), int(e))
        for s, n, e in zip(runs["value"].to_list(), lengths, ends, strict=True)
    ]


@dataclass(frozen=True)
class _Batch:
    """Rows ``[lo, hi)`` of the sorted candles, computed together.

    Rows ``[keep_lo, keep_hi)`` (relative to ``lo``) are returned; the rest is history or future
    that a chunk of a split symbol needs. ``segments`` are relative to ``lo``.
    """

    lo: int
    hi: int
    keep_lo: int
    keep_hi: int
    segments: tuple[_Segment, ...]


def _batches(ts: np.ndarray, segments: Sequence[_Segment]) -> list[_Batch]:
    """Group short symbols into batches of about ``BATCH_ROWS`` rows; split long ones in time.

    A split symbol's chunk is computed with ``LOOKBACK_HOURS`` of history before it and the
    longest horizon after it, which gives its rows as in one piece (see the module docstring).
    """
    out: list[_Batch] = []
    group: list[_Segment] = []

    def flush() -> None:
        if group:
            lo, hi = group[0].start, group[-1].end
            local = tuple(_Segment(s.symbol, s.start - lo, s.end - lo) for s in group)
            out.append(_Batch(lo, hi, 0, hi - lo, local))
            group.clear()

    for seg in segments:
        if seg.end - seg.start > BATCH_ROWS:
            flush()
            part = ts[seg.start : seg.end]
            for keep_lo in range(seg.start, seg.end, BATCH_ROWS):
                keep_hi = min(keep_lo + BATCH_ROWS, seg.end)
                first = part[keep_lo - seg.start] - LOOKBACK_HOURS * HOUR_US
                last = part[keep_hi - 1 - seg.start] + max(HORIZONS) * HOUR_US
                lo = seg.start + int(np.searchsorted(part, first, side="left"))
                hi = seg.start + int(np.searchsorted(part, last, side="right"))
                local = (_Segment(seg.symbol, 0, hi - lo),)
                out.append(_Batch(lo, hi, keep_lo - lo, keep_hi - lo, local))
            continue
        if group and seg.end - group[0].start > BATCH_ROWS:
            flush()
        group.append(seg)
    flush()
    return out


# --- exact-time lookups ----------------------------------------------------------------------


def _search(sorted_ts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of each target in ``sorted_ts`` (unique, ascending), -1 where absent."""
    if sorted_ts.shape[0] == 0:
        return np.full(targets.shape[0], -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ts, targets), sorted_ts.shape[0] - 1)
    return np.where(sorted_ts[pos] == targets, pos, -1)


def _rows_at_offsets(
    ts: np.ndarray, segments: Sequence[_Segment], offsets_us: Sequence[int]
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


def _take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` as float, NaN where ``rows`` is -1."""
    if values.shape[0] == 0:
        return np.full(rows.shape[0], np.nan)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan)


def _epoch_us(frame: pl.DataFrame) -> np.ndarray:
    return frame[TS].to_physical().to_numpy()


# --- market factor, posts, Fear & Greed ------------------------------------------------------


@dataclass(frozen=True)
class _MarketFactor:
    """BTC's 1 h log return and 1 h / 24 h simple returns, by timestamp (empty without BTC)."""

    ts: np.ndarray
    log_return_1h: np.ndarray
    return_1h: np.ndarray
    return_24h: np.ndarray

    @classmethod
    def from_candles(cls, base: pl.DataFrame, segments: Sequence[_Segment]) -> _MarketFactor:
        """The factor of the BTC symbol: the shortest symbol name starting with ``BTC``."""
        btc = [s for s in segments if s.symbol.upper().startswith("BTC")]
        if not btc:
            empty = np.empty(0)
            return cls(np.empty(0, dtype=np.int64), empty, empty, empty)
        chosen = min(btc, key=lambda s: (len(s.symbol), s.symbol))
        rows = base.slice(chosen.start, chosen.end - chosen.start)
        ts, close = _epoch_us(rows), rows["close"].to_numpy()
        lags = _rows_at_offsets(
            ts, [_Segment(chosen.symbol, 0, rows.height)], [-HOUR_US, -24 * HOUR_US]
        )
        ago_1h, ago_24h = _take(close, lags[-HOUR_US]), _take(close, lags[-24 * HOUR_US])
        with np.errstate(divide="ignore", invalid="ignore"):
            return cls(ts, np.log(close / ago_1h), close / ago_1h - 1, close / ago_24h - 1)

    def aligned(self, ts: np.ndarray) -> dict[str, np.ndarray]:
        """The factor at each of ``ts`` (NaN where BTC has no candle at that hour)."""
        rows = _search(self.ts, ts)
        return {
            BTC_LOG_RETURN_1H: _take(self.log_return_1h, rows),
            BTC_RETURN_1H: _take(self.return_1h, rows),
            BTC_RETURN_24H: _take(self.return_24h, rows),
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


def _normalised_posts(sentiment: pl.DataFrame | None) -> pl.DataFrame | None:
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


def _normalised_fear_greed(fear_greed: pl.DataFrame | None) -> pl.DataFrame | None:
    if fear_greed is None:
        return None
    _require(fear_greed, "fear & greed rows", (TS, "value"))
    return fear_greed.select(_utc_ts(fear_greed, "fear_greed"), pl.col("value").cast(pl.Float64))


def _between(frame: pl.DataFrame | None, first: datetime, end: datetime) -> pl.DataFrame | None:
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
class _PostBuckets:
    """Scored posts bucketed per hour: per candle symbol and market-wide (None: no input)."""

    by_symbol: dict[str, _Buckets]
    market: _Buckets | None

    @classmethod
    def build(cls, sentiment: pl.DataFrame | None, symbols: Sequence[str]) -> _PostBuckets:
        posts = _normalised_posts(sentiment)
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

    def aligned(self, ts: np.ndarray, segments: Sequence[_Segment]) -> list[pl.Series | pl.Expr]:
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
class _FearGreedSeries:
    """Fear & Greed values by publication time (empty without input)."""

    ts: np.ndarray
    value: np.ndarray

    @classmethod
    def build(cls, fear_greed: pl.DataFrame | None) -> _FearGreedSeries:
        rows = _normalised_fear_greed(fear_greed)
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
        return {FEAR_GREED_VALUE: _take(self.value, rows)}


# --- the batch computation -------------------------------------------------------------------


def _features_for_batch(
    batch: pl.DataFrame,
    segments: Sequence[_Segment],
    market: _MarketFactor,
    posts: _PostBuckets,
    fear_greed: _FearGreedSeries,
) -> pl.DataFrame:
    """Features and targets of a batch of whole symbols, sorted by ``symbol, ts``."""
    ts, close = _epoch_us(batch), batch["close"].to_numpy()
    offsets = {-h * HOUR_US: close_ago(h) for h in RETURN_HOURS}
    offsets.update({h * HOUR_US: close_ahead(h) for h in HORIZONS})
    rows = _rows_at_offsets(ts, segments, list(offsets))
    helpers = {name: _take(close, rows[offset]) for offset, name in offsets.items()}
    helpers.update(market.aligned(ts))
    helpers.update(fear_greed.aligned(ts))
    lazy = (
        batch.with_columns(pl.Series(k, v, nan_to_null=True) for k, v in helpers.items())
        .with_columns(posts.aligned(ts, segments))
        .lazy()
    )
    for stage in HELPER_STAGES:
        lazy = lazy.with_columns(stage)
    targets = [
        (pl.col(close_ahead(h)) / pl.col("close") - 1).alias(f"target_return_{h}h")
        for h in HORIZONS
    ]
    directions = [
        (pl.col(f"target_return_{h}h") > 0).cast(pl.Int8).alias(f"target_direction_{h}h")
        for h in HORIZONS
    ]
    features = (f.expr.cast(pl.Float32).alias(f.name) for f in FEATURES)
    return lazy.select(SYMBOL, TS, *features, *targets).with_columns(directions).collect()
