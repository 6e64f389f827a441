"""Gold features and targets from silver hourly candles: pure Polars, strictly point in time.

The feature set itself is declared in :mod:`warehouse.feature_spec` (re-exported here) and its
inputs are validated and aligned to the candle rows by :mod:`warehouse.feature_inputs`; this
module batches the candles and runs the expressions.

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
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from warehouse.errors import ConfigError
from warehouse.feature_inputs import (
    HOUR_US,
    FearGreedSeries,
    MarketFactor,
    PostBuckets,
    Segment,
    as_utc,
    between,
    epoch_us,
    normalised_candles,
    normalised_fear_greed,
    normalised_posts,
    rows_at_offsets,
    sorted_candles,
    symbol_segments,
    take,
)
from warehouse.feature_spec import (
    FEATURES,
    HELPER_STAGES,
    HORIZONS,
    RETURN_HOURS,
    SYMBOL,
    TS,
    FeatureDef,
    close_ago,
    close_ahead,
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
    base = sorted_candles(normalised_candles(candles))
    segments = symbol_segments(base)
    market = MarketFactor.from_candles(base, segments)
    posts = PostBuckets.build(sentiment, [s.symbol for s in segments])
    index = FearGreedSeries.build(fear_greed)
    parts = []
    for b in _batches(epoch_us(base), segments):
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
    start_utc, end_utc = as_utc(start), as_utc(end)
    if start_utc >= end_utc:
        raise ConfigError(f"feature range start {start_utc} is not before end {end_utc}")
    first = start_utc - timedelta(hours=LOOKBACK_HOURS)
    info_end = end_utc + timedelta(hours=1)
    window = normalised_candles(candles).filter(
        pl.col(TS) >= first, pl.col(TS) < end_utc + timedelta(hours=max(HORIZONS))
    )
    out = build_gold_features(
        window,
        sentiment=between(normalised_posts(sentiment), first, info_end),
        fear_greed=between(normalised_fear_greed(fear_greed), first, info_end),
    )
    return out.filter(pl.col(TS) >= start_utc, pl.col(TS) < end_utc)


# --- batches ---------------------------------------------------------------------------------


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
    segments: tuple[Segment, ...]


def _batches(ts: np.ndarray, segments: Sequence[Segment]) -> list[_Batch]:
    """Group short symbols into batches of about ``BATCH_ROWS`` rows; split long ones in time.

    A split symbol's chunk is computed with ``LOOKBACK_HOURS`` of history before it and the
    longest horizon after it, which gives its rows as in one piece (see the module docstring).
    """
    out: list[_Batch] = []
    group: list[Segment] = []

    def flush() -> None:
        if group:
            lo, hi = group[0].start, group[-1].end
            local = tuple(Segment(s.symbol, s.start - lo, s.end - lo) for s in group)
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
                local = (Segment(seg.symbol, 0, hi - lo),)
                out.append(_Batch(lo, hi, keep_lo - lo, keep_hi - lo, local))
            continue
        if group and seg.end - group[0].start > BATCH_ROWS:
            flush()
        group.append(seg)
    flush()
    return out


# --- the batch computation -------------------------------------------------------------------


def _features_for_batch(
    batch: pl.DataFrame,
    segments: Sequence[Segment],
    market: MarketFactor,
    posts: PostBuckets,
    fear_greed: FearGreedSeries,
) -> pl.DataFrame:
    """Features and targets of a batch of whole symbols, sorted by ``symbol, ts``."""
    ts, close = epoch_us(batch), batch["close"].to_numpy()
    offsets = {-h * HOUR_US: close_ago(h) for h in RETURN_HOURS}
    offsets.update({h * HOUR_US: close_ahead(h) for h in HORIZONS})
    rows = rows_at_offsets(ts, segments, list(offsets))
    helpers = {name: take(close, rows[offset]) for offset, name in offsets.items()}
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
