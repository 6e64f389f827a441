"""Behaviour of the gold feature library on tiny hand-made frames."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from warehouse import features
from warehouse.errors import ConfigError, DataError, SchemaError
from warehouse.features import (
    FEATURES,
    HORIZONS,
    LOOKBACK_HOURS,
    build_gold_features,
    build_gold_features_for_range,
    feature_columns,
    feature_spec_markdown,
    target_columns,
)

T0 = datetime(2023, 12, 4, tzinfo=UTC)  # a Monday, 00:00 UTC
US = timedelta(microseconds=1)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def candles(rows: list[tuple[str, float, float]], *, volume: float = 10.0) -> pl.DataFrame:
    """Candles from ``(symbol, hours after T0, close)``; open = close, a 1 % wick each side."""
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": [T0 + hours(r[1]) for r in rows],
            "open": [float(r[2]) for r in rows],
            "high": [r[2] * 1.01 for r in rows],
            "low": [r[2] * 0.99 for r in rows],
            "close": [float(r[2]) for r in rows],
            "volume": [volume] * len(rows),
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def walk(
    symbol: str, n: int, *, seed: int = 1, start: float = 100.0
) -> list[tuple[str, float, float]]:
    closes = start * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))
    return [(symbol, float(i), float(c)) for i, c in enumerate(closes)]


def value(frame: pl.DataFrame, column: str, at_hours: float, symbol: str = "ETHUSDT") -> object:
    row = frame.filter((pl.col("symbol") == symbol) & (pl.col("ts") == T0 + hours(at_hours)))
    assert row.height == 1
    return row[column].item()


# hours 0, 1, 2, 4, 5: hour 3 is an exchange outage
GAPPY = candles(
    [("ETHUSDT", h, c) for h, c in [(0, 100), (1, 110), (2, 121), (4, 133.1), (5, 100)]]
)


@pytest.mark.parametrize(
    ("column", "at", "expected"),
    [
        ("return_1h", 1, 0.1),  # the previous hour exists
        ("log_return_1h", 1, math.log(1.1)),  # same, as a log return
        ("return_1h", 0, None),  # first candle: nothing an hour earlier
        ("return_1h", 4, None),  # hour 3 is missing: no row is used in its place
        ("return_2h", 4, 133.1 / 121 - 1),  # the candle two hours back exists across the gap
        ("return_2h", 5, None),  # two hours back is the missing hour 3
        ("return_4h", 5, 100 / 110 - 1),  # looked up by timestamp, not by row count
        ("target_return_1h", 0, 0.1),  # close one hour later over this close
        ("target_return_1h", 2, None),  # hour 3 is missing
        ("target_return_2h", 2, 133.1 / 121 - 1),  # two hours later exists
        ("target_return_1h", 4, 100 / 133.1 - 1),  # a fall
        ("target_return_1h", 5, None),  # last candle: no future
        ("target_direction_1h", 0, 1),  # rise
        ("target_direction_1h", 4, 0),  # fall
        ("target_direction_1h", 2, None),  # unknown return, unknown direction
        ("target_direction_24h", 0, None),  # horizon beyond the data
    ],
)
def test_returns_and_targets_use_timestamps_across_gaps(
    column: str, at: float, expected: float | None
) -> None:
    got = value(build_gold_features(GAPPY), column, at)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("moment", "hour_sin", "hour_cos", "dow", "weekend"),
    [
        (datetime(2023, 12, 4, 0, tzinfo=UTC), 0.0, 1.0, 0, 0.0),  # Monday midnight
        (datetime(2023, 12, 2, 6, tzinfo=UTC), 1.0, 0.0, 5, 1.0),  # Saturday 06:00
        (datetime(2023, 12, 3, 18, tzinfo=UTC), -1.0, 0.0, 6, 1.0),  # Sunday 18:00
        (datetime(2023, 12, 8, 12, tzinfo=UTC), 0.0, -1.0, 4, 0.0),  # Friday noon
    ],
)
def test_calendar_features(
    moment: datetime, hour_sin: float, hour_cos: float, dow: int, weekend: float
) -> None:
    frame = candles([("ETHUSDT", (moment - T0) / hours(1), 100.0)])
    row = build_gold_features(frame).row(0, named=True)
    got = (row["hour_sin"], row["hour_cos"], row["dow_sin"], row["dow_cos"], row["is_weekend"])
    angle = 2 * math.pi * dow / 7  # Monday = 0
    expected = (hour_sin, hour_cos, math.sin(angle), math.cos(angle), weekend)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("closes", "low", "high"),
    [
        ([100 + i for i in range(150)], 100.0, 100.0),  # only gains: RSI 100
        ([300 - i for i in range(150)], 0.0, 0.0),  # only losses: RSI 0
        ([c for _, _, c in walk("ETHUSDT", 150)], 0.0, 100.0),  # a random walk stays in bounds
    ],
)
def test_rsi_bounds_and_warm_up(closes: list[float], low: float, high: float) -> None:
    out = build_gold_features(candles([("ETHUSDT", i, c) for i, c in enumerate(closes)]))
    rsi = out["rsi_14h"]
    # null until the trailing 96 h hold 72 candles, then defined on every row
    assert rsi[:71].null_count() == 71
    assert rsi[71:].null_count() == 0
    assert rsi[71:].min() >= low - 1e-4 and rsi[71:].max() <= high + 1e-4


def test_ema_is_time_decayed_and_textbook_on_a_regular_grid() -> None:
    rows = walk("ETHUSDT", 120)
    gappy = [r for r in rows if not 100 <= r[1] < 105]  # a five-hour outage
    alpha = 2 / 13
    for data in (rows, gappy):
        ema, previous = data[0][2], data[0][1]
        for _, at, close in data[1:]:
            decay = (1 - alpha) ** (at - previous)  # one hour: 1 - alpha; a gap decays longer
            ema, previous = decay * ema + (1 - decay) * close, at
        got = build_gold_features(candles(data))["ema_ratio_12h"][-1]
        assert got == pytest.approx(data[-1][2] / ema - 1, rel=1e-5)


def test_market_factor_from_btc_and_null_without_it() -> None:
    eth, btc = walk("ETHUSDT", 200, seed=2), walk("BTCUSDT", 200, seed=3, start=30000)
    out = build_gold_features(candles(eth + btc))
    btc_close = dict((at, c) for _, at, c in btc)
    assert value(out, "btc_return_1h", 150) == pytest.approx(btc_close[150] / btc_close[149] - 1)
    assert value(out, "btc_return_24h", 150) == pytest.approx(btc_close[150] / btc_close[126] - 1)
    assert value(out, "btc_beta_168h", 199, "BTCUSDT") == pytest.approx(1.0)
    assert value(out, "btc_corr_168h", 199, "BTCUSDT") == pytest.approx(1.0)
    corr = value(out, "btc_corr_168h", 199)
    assert corr is not None and -1 <= corr <= 1
    assert value(out, "btc_beta_168h", 120) is None  # fewer than 126 paired hours in the window
    alone = build_gold_features(candles(eth))
    market = ["btc_return_1h", "btc_return_24h", "btc_beta_168h", "btc_corr_168h"]
    assert alone.select(market).null_count().row(0) == (200, 200, 200, 200)


def posts(rows: list[tuple[timedelta, list[str], float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + r[0] for r in rows],
            "symbols": [r[1] for r in rows],
            "score": [r[2] for r in rows],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "symbols": pl.List(pl.String), "score": pl.Float64},
    )


SENTIMENT = posts(
    [
        (hours(10), ["BTC"], 0.5),  # base asset names the symbol
        (hours(11) - US, ["btcusdt", "BTC"], -0.2),  # last microsecond of hour 10; counted once
        (hours(11), ["BTC"], 0.9),  # hour 11: after row 10's close
        (hours(10.5), ["ETH"], 0.02),  # another symbol: market-wide only for BTC
        (hours(10.2), [], 0.04),  # no symbol: market-wide only
        (hours(10.7), ["BTC"], None),  # unscored: not counted
        (hours(-30), ["BTC"], -1.0),  # in the 168 h window, not the 24 h one
    ]
)


@pytest.mark.parametrize(
    ("column", "at", "expected"),
    [
        ("sentiment_count_1h", 10, 2),  # posts in [10:00, 11:00) naming BTC
        ("sentiment_mean_1h", 10, 0.15),  # (0.5 - 0.2) / 2
        ("sentiment_positive_share_1h", 10, 0.5),  # 0.5 > 0.05, -0.2 is not
        ("sentiment_count_1h", 11, 1),  # the 11:00 post
        ("sentiment_count_1h", 9, 0),  # nothing in that hour
        ("sentiment_mean_1h", 9, None),  # no posts: no mean
        ("sentiment_momentum", 10, 0.15 - (0.5 - 0.2 - 1.0) / 3),  # 24 h mean - 168 h mean
        ("market_sentiment_count_1h", 10, 4),  # every scored post in hour 10
        ("market_sentiment_mean_1h", 10, (0.5 - 0.2 + 0.02 + 0.04) / 4),
        ("market_sentiment_positive_share_1h", 10, 0.25),  # only 0.5 is above 0.05
    ],
)
def test_sentiment_aggregates(column: str, at: float, expected: float | None) -> None:
    btc = candles([("BTCUSDT", h, 100.0) for h in range(-40, 14)])
    got = value(build_gold_features(btc, sentiment=SENTIMENT), column, at, "BTCUSDT")
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=1e-6)


FEAR_GREED = pl.DataFrame(
    {"ts": [T0 + hours(10.5), T0 + hours(20)], "value": [30, 70]},
    schema={"ts": pl.Datetime("us", "UTC"), "value": pl.Int64},
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (9, None),  # closes at 10:00, before the 10:30 publication
        (10, 30),  # closes at 11:00: the 10:30 value is known
        (19, 30),  # closes at 20:00: the 20:00 value is not yet published
        (20, 70),  # the 20:00 value is published before the 21:00 close
        (20 + 47, 70),  # exactly 48 h old at the close: still used
        (20 + 48, None),  # 49 h old at the close: stale, not carried on
    ],
)
def test_fear_greed_as_of_the_candle_close(at: float, expected: int | None) -> None:
    frame = candles([("ETHUSDT", h, 100.0) for h in range(0, 80)])
    assert value(build_gold_features(frame, fear_greed=FEAR_GREED), "fear_greed", at) == expected


def test_without_optional_inputs_counts_are_zero_and_the_rest_null() -> None:
    out = build_gold_features(GAPPY)
    for prefix in ("sentiment", "market_sentiment"):
        assert out[f"{prefix}_count_1h"].to_list() == [0.0] * 5
        for stat in ("mean_1h", "positive_share_1h", "momentum"):
            assert out[f"{prefix}_{stat}"].null_count() == 5
    assert out["fear_greed"].null_count() == 5


def test_output_layout_order_and_dtypes() -> None:
    frame = candles(walk("ETHUSDT", 60) + walk("BTCUSDT", 50, start=30000) + walk("ADAUSDT", 40))
    out = build_gold_features(frame.sample(fraction=1.0, shuffle=True, seed=3))
    assert out.columns == ["symbol", "ts", *feature_columns(), *target_columns()]
    assert out.height == frame.height
    assert_frame_equal(
        out.select("symbol", "ts"), frame.sort("symbol", "ts").select("symbol", "ts")
    )
    assert_frame_equal(out, build_gold_features(frame))  # input order does not matter
    assert {out.schema[c] for c in feature_columns()} == {pl.Float32}
    assert {out.schema[f"target_return_{h}h"] for h in HORIZONS} == {pl.Float64}
    assert {out.schema[f"target_direction_{h}h"] for h in HORIZONS} == {pl.Int8}
    empty = build_gold_features(frame.clear())
    assert empty.height == 0 and empty.schema == out.schema


def test_spec_lists_enough_unique_features_and_renders_markdown() -> None:
    names = feature_columns()
    assert len(names) >= 30 and len(set(names)) == len(names) == len(FEATURES)
    assert target_columns() == [f"target_return_{h}h" for h in HORIZONS] + [
        f"target_direction_{h}h" for h in HORIZONS
    ]
    table = feature_spec_markdown()
    assert table.splitlines()[0] == "| name | description | formula |"
    assert all(f"`{n}`" in table for n in names)
    assert len(table.splitlines()) == len(names) + 2
    assert LOOKBACK_HOURS >= 168


def test_long_symbols_split_in_time_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = walk("ETHUSDT", 2500, seed=5) + walk("BTCUSDT", 2400, seed=6, start=30000)
    frame = candles([r for r in rows if not 1200 <= r[1] < 1210])
    whole = build_gold_features(frame)
    monkeypatch.setattr(features, "BATCH_ROWS", 700)  # each symbol is cut into 4 chunks
    chunked = build_gold_features(frame)
    assert_frame_equal(chunked, whole, check_exact=False, rel_tol=1e-6, abs_tol=1e-7)


NAIVE = GAPPY.with_columns(pl.col("ts").dt.replace_time_zone(None))
BAD_SCORE = posts([(hours(1), ["ETH"], 1.5)])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # a required column is missing
        (lambda: build_gold_features(GAPPY.drop("volume")), SchemaError, "volume"),
        # naive timestamps are ambiguous
        (lambda: build_gold_features(NAIVE), SchemaError, "time-zone"),
        # a repeated (symbol, ts)
        (lambda: build_gold_features(pl.concat([GAPPY, GAPPY[1]])), DataError, "duplicate"),
        # a sentiment score above 1
        (lambda: build_gold_features(GAPPY, sentiment=BAD_SCORE), DataError, "outside"),
        # Fear & Greed rows without values
        (lambda: build_gold_features(GAPPY, fear_greed=FEAR_GREED[["ts"]]), SchemaError, "value"),
        # an empty range
        (lambda: build_gold_features_for_range(GAPPY, T0, T0), ConfigError, "not before"),
    ],
)
def test_bad_input_is_refused_with_a_message(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
