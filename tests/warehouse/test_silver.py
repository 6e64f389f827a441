from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from warehouse.silver import build_silver_candles

HOUR = 3_600_000
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def _bronze(rows: list[tuple[str, str, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "interval": [r[1] for r in rows],
            "open_time": [r[2] for r in rows],
            "open": [r[3] for r in rows],
            "high": [r[3] + 1 for r in rows],
            "low": [r[3] - 1 for r in rows],
            "close": [r[3] + 0.5 for r in rows],
            "volume": [1.0 for _ in rows],
            "kafka_partition": [0 for _ in rows],
            "kafka_offset": [r[4] for r in rows],
        }
    ).with_columns(pl.col("open_time").cast(pl.Datetime("ms", "UTC")))


def test_duplicates_keep_the_last_landed_and_gaps_are_flagged_not_filled() -> None:
    bronze = _bronze(
        [
            ("BTC", "1h", T0, 100.0, 0),
            ("BTC", "1h", T0, 101.0, 1),  # redelivered correction: wins
            ("BTC", "1h", T0 + HOUR, 102.0, 2),
            ("BTC", "1h", T0 + 4 * HOUR, 103.0, 3),  # two hours missing before this one
        ]
    )
    silver = build_silver_candles(bronze)
    assert silver.height == 3
    assert silver["open"].to_list() == [101.0, 102.0, 103.0]
    assert silver["gap_before"].to_list() == [False, False, True]
    assert silver["missing_bars_before"].to_list() == [0, 0, 2]


def test_minute_bars_are_resampled_to_hours_with_completeness() -> None:
    rows = [("ETH", "1m", T0 + i * 60_000, 10.0 + i, i) for i in range(90)]
    silver = build_silver_candles(_bronze(rows))
    assert silver.height == 2
    first, second = silver.row(0, named=True), silver.row(1, named=True)
    assert first["open"] == 10.0 and first["close"] == 69.5 and first["bars"] == 60
    assert first["high"] == 70.0 and first["low"] == 9.0 and first["volume"] == 60.0
    assert first["complete"] is True and second["complete"] is False and second["bars"] == 30
