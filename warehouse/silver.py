"""Silver candles: bronze deduplicated on (symbol, interval, open_time), resampled, gaps flagged.

Gaps (exchange outages, missing messages) are flagged, never filled: ``gap_before`` is true on a
bar whose previous bar is not exactly one serving interval earlier, and ``missing_bars_before``
says how many bars are missing there.
"""

from __future__ import annotations

import polars as pl

from warehouse.topics import INTERVALS_MS

SERVING_INTERVAL = "1h"

SILVER_CANDLE_COLUMNS = [
    "symbol",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "source_interval",
    "bars",
    "complete",
    "gap_before",
    "missing_bars_before",
]


def deduplicate_candles(bronze: pl.DataFrame) -> pl.DataFrame:
    """One row per (symbol, interval, open_time): the one landed last wins (a correction)."""
    order = [c for c in ("ingested_at", "kafka_partition", "kafka_offset") if c in bronze.columns]
    frame = bronze.sort(order) if order else bronze
    return frame.unique(
        subset=["symbol", "interval", "open_time"], keep="last", maintain_order=True
    )


def resample_candles(candles: pl.DataFrame, interval: str = SERVING_INTERVAL) -> pl.DataFrame:
    """Aggregate bars of ``interval`` or finer into bars of ``interval``.

    Each source interval is resampled on its own and the finest complete source wins when a
    symbol arrives at several intervals. ``bars`` counts the source bars in each output bar and
    ``complete`` says whether all of them were there.
    """
    target_ms = INTERVALS_MS[interval]
    usable = candles.filter(
        pl.col("interval").replace_strict(INTERVALS_MS, return_dtype=pl.Int64) <= target_ms
    )
    every = f"{target_ms // 60_000}m"
    frames = []
    for (source_interval,), group in usable.group_by(["interval"]):
        expected = target_ms // INTERVALS_MS[str(source_interval)]
        resampled = (
            group.sort("symbol", "open_time")
            .group_by_dynamic("open_time", every=every, group_by="symbol", closed="left")
            .agg(
                pl.col("open").first(),
                pl.col("high").max(),
                pl.col("low").min(),
                pl.col("close").last(),
                pl.col("volume").sum(),
                pl.len().alias("bars"),
            )
            .with_columns(
                pl.lit(str(source_interval)).alias("source_interval"),
                (pl.col("bars") == expected).alias("complete"),
                pl.lit(INTERVALS_MS[str(source_interval)]).alias("_source_ms"),
            )
        )
        frames.append(resampled)
    if not frames:
        return _empty_silver()
    merged = (
        pl.concat(frames)
        .sort("symbol", "open_time", pl.col("complete").not_(), "_source_ms")
        .unique(subset=["symbol", "open_time"], keep="first", maintain_order=True)
        .drop("_source_ms")
        .rename({"open_time": "ts"})
    )
    return merged


def flag_gaps(candles: pl.DataFrame, interval: str = SERVING_INTERVAL) -> pl.DataFrame:
    """Add ``gap_before`` and ``missing_bars_before`` per symbol (rows sorted by symbol, ts)."""
    step = pl.duration(milliseconds=INTERVALS_MS[interval])
    previous = pl.col("ts").shift(1).over("symbol")
    missing = ((pl.col("ts") - previous) / step - 1).cast(pl.Int64)
    return candles.sort("symbol", "ts").with_columns(
        (previous.is_not_null() & (pl.col("ts") - previous != step)).alias("gap_before"),
        pl.when(previous.is_null()).then(0).otherwise(missing).alias("missing_bars_before"),
    )


def build_silver_candles(bronze: pl.DataFrame, interval: str = SERVING_INTERVAL) -> pl.DataFrame:
    """Bronze candles to silver: deduplicate, resample to ``interval``, sort, flag gaps."""
    if bronze.is_empty():
        return _empty_silver()
    silver = flag_gaps(resample_candles(deduplicate_candles(bronze), interval), interval)
    return silver.select(SILVER_CANDLE_COLUMNS)


def _empty_silver() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "symbol": pl.String,
            "ts": pl.Datetime("ms", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "source_interval": pl.String,
            "bars": pl.UInt32,
            "complete": pl.Boolean,
            "gap_before": pl.Boolean,
            "missing_bars_before": pl.Int64,
        }
    )
