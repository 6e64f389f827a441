"""Silver and gold assets in-process: skips without bronze, metadata, checks, incremental gold,
and blocking checks that keep bad silver data out of gold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets import gold, silver
from pipelines.resources import LakeResource
from pipelines.simulator import simulate_candles
from warehouse import refresh
from warehouse.features import feature_columns
from warehouse.lake import Lake
from warehouse.topics import CANDLES, POSTS

SELECTION = [silver.silver_candles, silver.silver_posts, silver.silver_tickers]
SELECTION += [silver.silver_fear_greed, gold.gold_features]


def run(lake_dir: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*SELECTION, *silver.SILVER_CHECKS, *gold.GOLD_CHECKS],
        resources={"lake": LakeResource(uri=str(lake_dir))},
        run_config={"ops": {"silver__posts": {"config": {"sentiment_model": "lexicon"}}}},
    )


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey.from_user_string(key)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}  # type: ignore[union-attr]


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e
        for e in result.get_asset_check_evaluations()
    }


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assets") / "lake"


def test_without_any_bronze_every_asset_skips_and_the_run_succeeds(tmp_path: Path) -> None:
    result = run(tmp_path / "empty")
    assert result.success
    for key in ("silver/candles", "silver/posts", "silver/tickers", "gold/features"):
        assert "does not exist yet" in str(metadata(result, key)["skipped"]), key
    assert all(c.passed for c in checks(result).values())


def test_assets_build_silver_and_gold_then_update_gold_incrementally(
    lake_dir: Path, land: Callable[..., None]
) -> None:
    lake = Lake(str(lake_dir))
    messages = list(simulate_candles(["BTCUSDT", "ETHUSDT"], hours=100, seed=4))
    land(lake, CANDLES, messages[:-2])
    hour_ms = 3_600_000
    first_ms = int(messages[0]["open_time"])  # type: ignore[call-overload]
    land(
        lake,
        POSTS,
        [
            {
                "post_id": "p1",
                "platform": "news",
                "text": "Bitcoin rallies as ETF inflows surge",
                "ts": first_ms + 50 * hour_ms,
                "symbols": ["btcusdt"],
                "source": "test",
            }
        ],
    )
    result = run(lake_dir)
    assert result.success
    gold_meta = metadata(result, "gold/features")
    assert gold_meta["mode"] == "full"
    assert gold_meta["total_rows"] == 2 * 99
    assert str(gold_meta["feature_spec"]).startswith("| name | description | formula |")
    assert gold_meta["features"] == len(feature_columns())
    assert metadata(result, "silver/posts")["scored"] == 1
    assert "skipped" in metadata(result, "silver/tickers")
    evaluations = checks(result)
    for name in ("no_duplicate_keys", "no_null_keys", "ohlc_sanity", "gap_report"):
        assert evaluations[f"silver/candles:{name}"].passed, name
    assert evaluations["silver/posts:sentiment_coverage"].passed
    assert evaluations["gold/features:no_duplicate_keys"].passed

    land(lake, CANDLES, messages[-2:])  # the next hour of both symbols
    again = run(lake_dir)
    gold_meta = metadata(again, "gold/features")
    assert gold_meta["mode"] == "incremental"
    assert gold_meta["rows"] == 2 * 26  # the new hour and the 25 before it, per symbol
    assert gold_meta["total_rows"] == 2 * 100
    assert metadata(again, "silver/posts")["scored"] == 0  # p1 is not scored again


def test_bad_silver_data_stops_gold_in_the_same_run(
    tmp_path: Path, land: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake_dir = tmp_path / "lake"
    land(Lake(str(lake_dir)), CANDLES, simulate_candles(["BTCUSDT"], hours=30, seed=2))
    build = refresh.build_silver_candles
    # a silver build that lets a duplicate bar through
    monkeypatch.setattr(refresh, "build_silver_candles", lambda b: build(b).pipe(duplicate_first))

    result = dg.materialize(
        [silver.silver_candles, gold.gold_features, *silver.SILVER_CHECKS, *gold.GOLD_CHECKS],
        resources={"lake": LakeResource(uri=str(lake_dir))},
        raise_on_error=False,
    )
    assert not result.success
    failed = checks(result)["silver/candles:no_duplicate_keys"]
    assert not failed.passed and failed.blocking
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"silver/candles"}  # gold/features did not run on the bad bars
    assert not (lake_dir / "gold" / "features").exists()


def duplicate_first(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])
