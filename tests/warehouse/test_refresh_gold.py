"""Gold refresh: an incremental update equals a full rebuild and rewrites only what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from warehouse.catalog import GOLD_FEATURES, SILVER_CANDLES, SILVER_FEAR_GREED, SILVER_POSTS
from warehouse.features import build_gold_features
from warehouse.lake import Lake, overwrite, read_table
from warehouse.refresh import GOLD_PARTITION, RefreshReport, SkippedRefresh, refresh_gold_features

START = datetime(2024, 1, 1, tzinfo=UTC)
HOURS = 24 * 40  # 1 Jan .. 9 Feb: two month partitions
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def candles(hours: int = HOURS) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    ts = [START + timedelta(hours=h) for h in range(hours)]
    frames = []
    for i, symbol in enumerate(SYMBOLS):
        close = (100.0 + 50 * i) * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
        frames.append(
            pl.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "open": close * 0.999,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": rng.lognormal(5, 1, hours),
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def posts(hours: int = HOURS) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    n = hours // 3
    return pl.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "ts": [START + timedelta(hours=3 * i, minutes=17) for i in range(n)],
            "symbols": [[SYMBOLS[i % 3][:3]] if i % 4 else [] for i in range(n)],
            "score": rng.uniform(-1, 1, n).round(3),
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def fear_greed(days: int = HOURS // 24) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [(START + timedelta(days=d)).date() for d in range(days)],
            "ts": [START + timedelta(days=d) for d in range(days)],
            "value": [30 + d % 40 for d in range(days)],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def write_silver(lake: Lake, c: pl.DataFrame, p: pl.DataFrame, f: pl.DataFrame) -> None:
    overwrite(lake.location(SILVER_CANDLES), c)
    overwrite(lake.location(SILVER_POSTS), p)
    overwrite(lake.location(SILVER_FEAR_GREED), f)


def gold(lake: Lake) -> pl.DataFrame:
    return read_table(lake.location(GOLD_FEATURES)).drop(GOLD_PARTITION).sort("symbol", "ts")


def full_rebuild(c: pl.DataFrame, p: pl.DataFrame, f: pl.DataFrame) -> pl.DataFrame:
    return build_gold_features(c, sentiment=p.drop("post_id"), fear_greed=f.drop("date"))


def files_by_month(lake: Lake) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for uri in DeltaTable(lake.location(GOLD_FEATURES).uri).file_uris():
        month = uri.split(f"{GOLD_PARTITION}=")[1].split("/")[0]
        out.setdefault(month, set()).add(uri)
    return out


def assert_same(actual: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert_frame_equal(actual, expected, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)


def test_a_new_hour_recomputes_only_the_tail_and_equals_a_full_rebuild(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    c, p, f = candles(), posts(), fear_greed()
    last_hour = c["ts"].max()
    write_silver(
        lake,
        c.filter(pl.col("ts") < last_hour),
        p.filter(pl.col("ts") < last_hour),
        f,
    )
    first = refresh_gold_features(lake)
    assert isinstance(first, RefreshReport) and first.details["mode"] == "full"
    before = files_by_month(lake)
    assert set(before) == {"2024-01", "2024-02"}

    # the next hour arrives: a candle per symbol and a post
    extra = pl.DataFrame(
        {"post_id": ["late"], "ts": [last_hour + timedelta(minutes=5)], "symbols": [["BTC"]]}
    ).with_columns(pl.lit(0.5).alias("score"), pl.col("ts").dt.cast_time_unit("us"))
    p = pl.concat([p.filter(pl.col("ts") < last_hour), extra])
    write_silver(lake, c, p, f)
    second = refresh_gold_features(lake)
    assert isinstance(second, RefreshReport) and second.details["mode"] == "incremental"
    # the new hour plus the 25 hours before it whose 24h targets it completes, per symbol
    assert second.rows == len(SYMBOLS) * 26
    assert second.details["total_rows"] == c.height
    after = files_by_month(lake)
    assert after["2024-01"] == before["2024-01"]  # January's files were not touched
    assert after["2024-02"] != before["2024-02"]
    assert_same(gold(lake), full_rebuild(c, p, f))

    # nothing new: nothing written
    third = refresh_gold_features(lake)
    assert isinstance(third, RefreshReport) and third.details["mode"] == "unchanged"
    assert third.version == second.version


def test_a_late_correction_in_history_is_recomputed_from_its_hour(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    c, p, f = candles(), posts(), fear_greed()
    write_silver(lake, c, p, f)
    refresh_gold_features(lake)
    corrected_at = START + timedelta(days=35)
    c = c.with_columns(
        pl.when((pl.col("ts") == corrected_at) & (pl.col("symbol") == "ETHUSDT"))
        .then(pl.col("close") * 1.003)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    f = f.with_columns(pl.when(pl.col("date") == f["date"][-1]).then(99).otherwise("value"))
    before = files_by_month(lake)
    write_silver(lake, c, p, f)
    report = refresh_gold_features(lake)
    assert isinstance(report, RefreshReport) and report.details["mode"] == "incremental"
    assert report.details["recomputed_from"] == (corrected_at - timedelta(hours=25)).isoformat()
    assert files_by_month(lake)["2024-01"] == before["2024-01"]
    assert_same(gold(lake), full_rebuild(c, p, f))


def test_full_rebuild_on_request_and_when_posts_appear(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    c = candles(24 * 10)
    overwrite(lake.location(SILVER_CANDLES), c)
    assert refresh_gold_features(lake).to_dict()["mode"] == "full"
    # posts appear for the first time: every hour from the first post is affected
    p = posts(24 * 10)
    overwrite(lake.location(SILVER_POSTS), p)
    report = refresh_gold_features(lake)
    assert report.to_dict()["mode"] == "incremental"
    expected = build_gold_features(c, sentiment=p.drop("post_id"))
    assert_same(gold(lake), expected)
    assert refresh_gold_features(lake, full=True).to_dict()["mode"] == "full"


@pytest.mark.parametrize("with_posts", [False, True])  # silver candles absent, posts or not
def test_gold_is_skipped_without_silver_candles(tmp_path: Path, with_posts: bool) -> None:
    lake = Lake(str(tmp_path / "lake"))
    if with_posts:
        overwrite(lake.location(SILVER_POSTS), posts(48))
    result = refresh_gold_features(lake)
    assert isinstance(result, SkippedRefresh)
    assert result.to_dict()["skipped"].startswith("silver/candles does not exist yet")
