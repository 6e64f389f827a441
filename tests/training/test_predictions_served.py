"""Live accuracy of served predictions: repeats counted once, scored like the batch predictions,
reported by the ``ml/served_live_accuracy`` asset beside ``ml/live_accuracy``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.ml import live_accuracy as live_accuracy_asset
from assets.ml import served_live_accuracy as served_live_accuracy_asset
from pipelines.resources import LakeResource
from serving.prediction_log import SERVED_SCHEMA, PredictionLog
from training.jobs import served_live_accuracy_from_lake
from training.predictions import (
    distinct_served,
    live_accuracy,
    prediction_rows,
    served_live_accuracy,
    store_predictions,
)
from warehouse.catalog import GOLD_FEATURES, GOLD_PREDICTIONS, GOLD_SERVED_PREDICTIONS
from warehouse.lake import Lake, read_table

START = datetime(2024, 1, 1, tzinfo=UTC)
SERVED_AT = datetime(2024, 3, 1, tzinfo=UTC)


def gold_frame(hours: int) -> pl.DataFrame:
    """One symbol; targets at 1h and 4h, the last ``h`` hours of each not realised yet."""
    rng = np.random.default_rng(7)
    returns = rng.normal(0, 0.01, hours + 4)
    ts = [START + timedelta(hours=i) for i in range(hours)]
    columns: dict[str, object] = {"symbol": "AAAUSDT", "ts": ts}
    for h in (1, 4):
        columns[f"target_return_{h}h"] = [
            float(returns[i + h]) if i < hours - h else None for i in range(hours)
        ]
    return pl.DataFrame(columns).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def served_row(
    hour: int,
    *,
    horizon: int = 1,
    probability: float = 0.9,
    predicted: float = 0.0,
    version: int = 1,
    served_minutes: int = 0,
) -> dict[str, object]:
    return {
        "symbol": "AAAUSDT",
        "ts": START + timedelta(hours=hour),
        "horizon_hours": horizon,
        "predicted_return": predicted,
        "direction_probability": probability,
        "model_name": "m",
        "model_version": version,
        "served_at": SERVED_AT + timedelta(minutes=served_minutes),
    }


def served_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SERVED_SCHEMA)


@pytest.mark.parametrize(
    ("rows", "distinct"),
    [
        # three clients asked the same question of the same model version: one prediction
        ([served_row(5), served_row(5, served_minutes=1), served_row(5, served_minutes=2)], 1),
        # another hour, another horizon or another model version is another prediction
        ([served_row(5), served_row(6), served_row(5, horizon=4), served_row(5, version=2)], 4),
        # nothing served, nothing to score
        ([], 0),
    ],
)
def test_repeats_of_one_prediction_count_once(rows: list[dict[str, object]], distinct: int) -> None:
    result = served_live_accuracy(served_frame(rows), gold_frame(24))
    assert result.rows == len(rows)
    assert result.duplicates_dropped == len(rows) - distinct
    assert int(result.table["n"].sum()) + int(result.table["pending"].sum()) == distinct


def test_the_first_served_answer_is_the_one_kept() -> None:
    # the same key answered twice with different numbers (gold was revised in between)
    later = served_row(5, probability=0.1, served_minutes=10)
    first = served_row(5, probability=0.9, served_minutes=0)
    kept = distinct_served(served_frame([later, first]))
    assert kept.height == 1
    assert kept["direction_probability"].to_list() == [0.9]


def test_served_and_batch_predictions_are_scored_the_same_way() -> None:
    gold = gold_frame(48)
    rng = np.random.default_rng(1)
    wide = pl.DataFrame(
        {
            "symbol": "AAAUSDT",
            "ts": gold["ts"],
            **{f"predicted_return_{h}h": rng.normal(0, 0.01, 48) for h in (1, 4)},
            **{f"direction_probability_{h}h": rng.uniform(0, 1, 48) for h in (1, 4)},
        }
    )
    batch = prediction_rows(wide, [1, 4], model_name="m", model_version=3, predicted_at=START)
    # every prediction served twice, a minute apart
    served = pl.concat(
        [
            batch.drop("predicted_at").with_columns(
                pl.lit(SERVED_AT + timedelta(minutes=k))
                .cast(SERVED_SCHEMA["served_at"])
                .alias("served_at")
            )
            for k in (0, 1)
        ]
    ).select(list(SERVED_SCHEMA))
    from_batch = live_accuracy(batch, gold)
    from_served = served_live_accuracy(served, gold)
    assert from_served.duplicates_dropped == batch.height
    assert from_served.table.equals(from_batch.table)
    for row in from_batch.table.iter_rows(named=True):
        h = row["horizon_hours"]
        scored = batch.filter(pl.col("horizon_hours") == h).join(
            gold.select("ts", pl.col(f"target_return_{h}h").alias("y")), on="ts"
        )
        scored = scored.filter(pl.col("y").is_not_null())
        mae = float((scored["predicted_return"] - scored["y"]).abs().mean())
        hits = ((scored["direction_probability"] > 0.5) == (scored["y"] > 0)).sum()
        assert row["n"] == 48 - h and row["pending"] == h
        assert row["mae"] == pytest.approx(mae)
        assert row["directional_accuracy"] == pytest.approx(hits / row["n"])
        assert row["ci_low"] <= row["directional_accuracy"] <= row["ci_high"]


def test_nothing_realised_yet_scores_null_not_nan() -> None:
    # hour 23 of 24: neither the 1h nor the 4h outcome is known
    result = served_live_accuracy(
        served_frame([served_row(23), served_row(23, horizon=4)]), gold_frame(24)
    )
    assert result.table["n"].to_list() == [0, 0]
    assert result.table["pending"].to_list() == [1, 1]
    assert result.table["directional_accuracy"].null_count() == 2
    assert result.table["mae"].null_count() == 2
    assert "| m v1 | 1h | 0 | 1 | - | - | - |" in result.markdown()


def test_markdown_has_one_line_per_model_version_and_horizon() -> None:
    rows = [served_row(2), served_row(2, horizon=4), served_row(2, version=2)]
    lines = served_live_accuracy(served_frame(rows), gold_frame(24)).markdown().splitlines()
    assert lines[0] == "| model | horizon | n | pending | directional accuracy | 95% CI | MAE |"
    assert [line.split(" | ")[0:2] for line in lines[2:]] == [
        ["| m v1", "1h"],
        ["| m v1", "4h"],
        ["| m v2", "1h"],
    ]


def test_assets_report_served_beside_batch_accuracy(small_lake: Callable[..., Lake]) -> None:
    lake = small_lake(hours=48, seed=4)
    gold = read_table(lake.location(GOLD_FEATURES))
    resources = {"lake": LakeResource(uri=lake.uri)}

    # before the service answered anything, the asset says so instead of failing
    idle = dg.materialize([served_live_accuracy_asset], resources=resources)
    [event] = idle.asset_materializations_for_node("ml__served_live_accuracy")
    assert "does not exist yet" in event.metadata["skipped"].value
    assert served_live_accuracy_from_lake(lake) is None

    btc = gold.filter(pl.col("symbol") == "BTCUSDT").sort("ts")
    wide = pl.DataFrame(
        {
            "symbol": btc["symbol"],
            "ts": btc["ts"],
            **{f"predicted_return_{h}h": np.full(btc.height, 0.001) for h in (1, 4)},
            **{f"direction_probability_{h}h": np.full(btc.height, 0.8) for h in (1, 4)},
        }
    )
    batch = prediction_rows(wide, [1, 4], model_name="m", model_version=2, predicted_at=START)
    store_predictions(lake.location(GOLD_PREDICTIONS), batch)
    log = PredictionLog(lake.location(GOLD_SERVED_PREDICTIONS), flush_s=None)
    for client in range(3):  # three clients ask every question
        for row in batch.iter_rows(named=True):
            log.record(
                **{k: v for k, v in row.items() if k != "predicted_at"},
                served_at=SERVED_AT + timedelta(seconds=client),
            )
    log.close()

    result = dg.materialize([live_accuracy_asset, served_live_accuracy_asset], resources=resources)
    assert result.success
    [batch_event] = result.asset_materializations_for_node("ml__live_accuracy")
    [served_event] = result.asset_materializations_for_node("ml__served_live_accuracy")
    batch_meta, served_meta = batch_event.metadata, served_event.metadata
    assert served_meta["served_rows"].value == 3 * batch.height
    assert served_meta["duplicates_dropped"].value == 2 * batch.height
    assert "model_version" in served_meta["deduplicated_on"].value
    assert served_meta["scored"].value == batch_meta["scored"].value > 0
    assert served_meta["accuracy"].value == batch_meta["accuracy"].value
    assert "| m v2 | 4h |" in served_meta["accuracy"].value
