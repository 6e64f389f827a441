"""Point-in-time proof of the gold features, and incremental (range) computation.

The convention (see ``warehouse.features``): the row at ``ts`` may use information with a time
before its candle's close ``ts + 1h``. So for a cut hour ``t``, everything strictly later is
candles with ``ts > t`` and posts / Fear & Greed values published at ``>= t + 1h``. Changing or
deleting all of that must leave every feature of every row ``ts <= t`` exactly as it was, while
the targets (which look ahead on purpose) must change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from warehouse.features import (
    LOOKBACK_HOURS,
    build_gold_features,
    build_gold_features_for_range,
    feature_columns,
    target_columns,
)

SEVEN_SYMBOLS = "crypto_1h_spot_7symbols_2023-12-01_2023-12-29.csv"
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)
CUTS = [
    datetime(2023, 12, 2, 5, tzinfo=UTC),  # inside every warm-up
    datetime(2023, 12, 9, 0, tzinfo=UTC),  # midnight: a Fear & Greed publication hour
    datetime(2023, 12, 17, 13, tzinfo=UTC),  # a Sunday afternoon
    datetime(2023, 12, 28, 22, tzinfo=UTC),  # near the end
]


@pytest.fixture(scope="module")
def real_candles(shared_data: Callable[[str], Path]) -> pl.DataFrame:
    raw = pl.read_csv(shared_data(SEVEN_SYMBOLS), try_parse_dates=True)
    return raw.select(
        pl.col("ticker").alias("symbol"),
        pl.col("date").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    )


def synthetic_posts(first: datetime, last: datetime, n: int, *, seed: int) -> pl.DataFrame:
    """Posts at random microseconds, naming base assets, pairs, other names or nothing."""
    rng = np.random.default_rng(seed)
    span_us = int((last - first) / US)
    names = ["BTC", "ETH", "SOLUSDT", "DOGE", "xrp", "ADA", "BNBUSDT", "AAPL"]
    return pl.DataFrame(
        {
            "ts": [first + US * int(u) for u in np.sort(rng.integers(0, span_us, n))],
            "symbols": [
                list(rng.choice(names, size=rng.integers(0, 3), replace=False)) for _ in range(n)
            ],
            "score": [None if rng.random() < 0.05 else float(s) for s in rng.uniform(-1, 1, n)],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "symbols": pl.List(pl.String), "score": pl.Float64},
    )


def synthetic_fear_greed(first: datetime, days: int, *, seed: int) -> pl.DataFrame:
    """One value a day, published a few minutes after midnight UTC (some exactly at midnight)."""
    rng = np.random.default_rng(seed)
    minutes = [0 if d % 3 == 0 else int(rng.integers(1, 30)) for d in range(days)]
    return pl.DataFrame(
        {
            "ts": [first + timedelta(days=d, minutes=m) for d, m in enumerate(minutes)],
            "value": rng.integers(0, 101, days),
        },
        schema={"ts": pl.Datetime("us", "UTC"), "value": pl.Int64},
    )


def later_changed(
    frames: dict[str, pl.DataFrame], cut: datetime, *, seed: int, remove: bool
) -> dict[str, pl.DataFrame]:
    """Everything after the cut either removed or changed (prices scaled, rows dropped, added)."""
    rng = np.random.default_rng(seed)
    candles, posts, index = frames["candles"], frames["sentiment"], frames["fear_greed"]
    keep_c, keep_p, keep_f = (
        pl.col("ts") <= cut,
        pl.col("ts") < cut + HOUR,
        pl.col("ts") < cut + HOUR,
    )
    if remove:
        return {
            "candles": candles.filter(keep_c),
            "sentiment": posts.filter(keep_p),
            "fear_greed": index.filter(keep_f),
        }
    late = candles.filter(~keep_c)
    factor = pl.Series(rng.uniform(0.7, 1.3, late.height))
    late = late.with_columns(pl.col("open", "high", "low", "close") * factor, pl.col("volume") * 3)
    late = late.filter(pl.Series(rng.random(late.height) > 0.3))  # drop 30 %: new gaps
    late_posts = posts.filter(~keep_p)
    late_posts = late_posts.with_columns(score=pl.Series(rng.uniform(-1, 1, late_posts.height)))
    extra = synthetic_posts(cut + HOUR, cut + 3 * HOUR, 50, seed=seed + 1)  # a burst right after
    late_index = index.filter(~keep_f).with_columns(value=100 - pl.col("value"))
    return {
        "candles": pl.concat([candles.filter(keep_c), late]),
        "sentiment": pl.concat(
            [posts.filter(keep_p), late_posts.sample(fraction=0.7, seed=seed), extra]
        ),
        "fear_greed": pl.concat([index.filter(keep_f), late_index]),
    }


@pytest.fixture(scope="module")
def inputs(real_candles: pl.DataFrame) -> dict[str, pl.DataFrame]:
    first = datetime(2023, 11, 20, tzinfo=UTC)  # posts and the index start before the candles
    return {
        "candles": real_candles,
        "sentiment": synthetic_posts(first, datetime(2023, 12, 31, tzinfo=UTC), 6000, seed=11),
        "fear_greed": synthetic_fear_greed(first, 42, seed=12),
    }


@pytest.mark.parametrize("remove", [False, True], ids=["changed", "removed"])
@pytest.mark.parametrize("cut", CUTS, ids=[c.strftime("%m-%d_%H") for c in CUTS])
def test_features_up_to_the_cut_ignore_everything_later(
    inputs: dict[str, pl.DataFrame], cut: datetime, remove: bool
) -> None:
    before = build_gold_features(**inputs).filter(pl.col("ts") <= cut)
    changed = later_changed(inputs, cut, seed=int(cut.timestamp()) % 1000, remove=remove)
    after = build_gold_features(**changed).filter(pl.col("ts") <= cut)
    assert after.height == before.height > 0
    keys = ["symbol", "ts"]
    assert_frame_equal(
        after.select(keys + feature_columns()), before.select(keys + feature_columns())
    )
    # the targets look ahead on purpose: this comparison must be able to fail
    assert not after.select(target_columns()).equals(before.select(target_columns()))
    # and the inputs really carried information: sentiment and the index are not all null
    assert before["sentiment_mean_1h"].null_count() < before.height
    assert before["fear_greed"].null_count() < before.height


def one_row(frame: pl.DataFrame, symbol: str, ts: datetime) -> dict[str, object]:
    return frame.filter((pl.col("symbol") == symbol) & (pl.col("ts") == ts)).row(0, named=True)


@pytest.mark.parametrize(
    ("offset", "used"),
    [
        (HOUR - US, True),  # the last microsecond before the close belongs to the row
        (HOUR, False),  # published at the close: only the next row may use it
    ],
)
def test_information_is_used_up_to_the_candle_close(
    inputs: dict[str, pl.DataFrame], offset: timedelta, used: bool
) -> None:
    cut = CUTS[2]
    at = cut + offset
    post = pl.DataFrame(
        {"ts": [at], "symbols": [["BTC"]], "score": [1.0]},
        schema={"ts": pl.Datetime("us", "UTC"), "symbols": pl.List(pl.String), "score": pl.Float64},
    )
    index = pl.DataFrame(
        {"ts": [at], "value": [100]}, schema={"ts": pl.Datetime("us", "UTC"), "value": pl.Int64}
    )
    base = {
        "candles": inputs["candles"],
        "sentiment": inputs["sentiment"].filter(pl.col("ts") < cut),
        "fear_greed": inputs["fear_greed"].filter(pl.col("ts") < cut),
    }
    plain = one_row(build_gold_features(**base), "BTCUSDT", cut)
    extended = {
        **base,
        "sentiment": pl.concat([base["sentiment"], post]),
        "fear_greed": pl.concat([base["fear_greed"], index]),
    }
    row = one_row(build_gold_features(**extended), "BTCUSDT", cut)
    assert (row["sentiment_count_1h"] == plain["sentiment_count_1h"] + 1) is used
    assert (row["fear_greed"] == 100) is used


def synthetic_candles(hours: int, *, seed: int) -> pl.DataFrame:
    """Three GBM symbols (BTC among them) with random missing hours and a 30 h outage."""
    rng = np.random.default_rng(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    frames = []
    for symbol, price in (("BTCUSDT", 20000.0), ("ETHUSDT", 1500.0), ("SOLUSDT", 20.0)):
        close = price * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
        keep = (rng.random(hours) > 0.03) & ~((np.arange(hours) >= 900) & (np.arange(hours) < 930))
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": [start + HOUR * int(i) for i in np.flatnonzero(keep)],
                    "open": close[keep] * 1.001,
                    "high": close[keep] * 1.01,
                    "low": close[keep] * 0.99,
                    "close": close[keep],
                    "volume": rng.lognormal(5, 1, int(keep.sum())),
                },
                schema_overrides={"ts": pl.Datetime("us", "UTC")},
            )
        )
    return pl.concat(frames)


@pytest.mark.parametrize(
    ("start_hour", "length"),
    [
        (LOOKBACK_HOURS + 500, 1),  # the incremental hourly run
        (LOOKBACK_HOURS + 180, 48),  # two days, starting just after the outage
        (300, 24),  # less history than the lookback before the range
        (2300, 100),  # the end of the data: targets run out
    ],
)
def test_range_equals_the_same_rows_of_the_full_computation(start_hour: int, length: int) -> None:
    candles = synthetic_candles(2400, seed=start_hour)
    first = datetime(2023, 1, 1, tzinfo=UTC)
    inputs = {
        "sentiment": synthetic_posts(first - 10 * 24 * HOUR, first + 2500 * HOUR, 20000, seed=3),
        "fear_greed": synthetic_fear_greed(first - 5 * 24 * HOUR, 110, seed=4),
    }
    start = first + start_hour * HOUR
    end = start + length * HOUR
    full = build_gold_features(candles, **inputs).filter(pl.col("ts") >= start, pl.col("ts") < end)
    ranged = build_gold_features_for_range(candles, start, end, **inputs)
    assert ranged.height == full.height > 0
    assert_frame_equal(ranged, full, check_exact=False, rel_tol=1e-6, abs_tol=1e-7)


@pytest.fixture(scope="module")
def btc_eth_history(shared_data: Callable[[str], Path]) -> pl.DataFrame:
    """Three years of real BTC and ETH candles, with their real exchange outages."""
    frames = []
    for name, time_column, symbol in (
        ("btcusdt_1h_spot_2020-10_2023-12.csv", "open_time", "BTCUSDT"),
        ("ethusdt_1h_spot_2019-12_2023-12.csv", "datetime", "ETHUSDT"),
    ):
        raw = pl.read_csv(shared_data(name), try_parse_dates=True)
        frames.append(
            raw.select(
                pl.lit(symbol).alias("symbol"),
                pl.col(time_column).dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
                "open",
                "high",
                "low",
                "close",
                "volume",
            )
        )
    return pl.concat(frames)


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        (datetime(2021, 4, 25, 0, tzinfo=UTC), 24),  # a day with a real outage in it
        (datetime(2021, 4, 25, 8, tzinfo=UTC), 1),  # the first hour after that outage
        (datetime(2020, 10, 20, 0, tzinfo=UTC), 6),  # BTC's history is shorter than the lookback
        (datetime(2023, 12, 31, 23, tzinfo=UTC), 1),  # the last hour: no targets yet
    ],
)
def test_range_on_real_history_with_outages(
    btc_eth_history: pl.DataFrame, start: datetime, hours: int
) -> None:
    end = start + hours * HOUR
    full = build_gold_features(btc_eth_history)
    ranged = build_gold_features_for_range(btc_eth_history, start, end)
    expected = full.filter(pl.col("ts") >= start, pl.col("ts") < end)
    assert ranged.height == expected.height > 0
    assert_frame_equal(ranged, expected, check_exact=False, rel_tol=1e-6, abs_tol=1e-7)


def test_real_outages_leave_nulls_not_neighbours(btc_eth_history: pl.DataFrame) -> None:
    out = build_gold_features(btc_eth_history)
    after_gap = (pl.col("ts").diff().over("symbol") > HOUR).fill_null(False)
    rows = out.filter(after_gap)
    assert rows.height >= 10  # the files hold real outages
    assert rows["return_1h"].null_count() == rows.height  # the hour before is missing
    before_gap = out.filter(after_gap.shift(-1).fill_null(False))
    assert before_gap["target_return_1h"].null_count() == before_gap.height
