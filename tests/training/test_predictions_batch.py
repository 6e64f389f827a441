"""Batch predictions into Delta (idempotent per model version and range) and live accuracy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from training.network import PriceNetwork
from training.predictions import (
    PREDICTION_SCHEMA,
    batch_predictions,
    live_accuracy,
    prediction_rows,
    store_predictions,
)
from training.predictor import PriceModelBundle, PricePredictor
from warehouse.errors import DataError
from warehouse.lake import TableLocation, read_table

HORIZONS = [1, 2]
START = datetime(2024, 1, 1, tzinfo=UTC)


def untrained_predictor(features: list[str], seed: int = 0) -> PricePredictor:
    torch.manual_seed(seed)
    network = PriceNetwork(len(features), len(HORIZONS), hidden_size=4)
    return PricePredictor(
        PriceModelBundle(
            features=features,
            horizons=HORIZONS,
            sequence_length=4,
            hidden_size=4,
            num_layers=1,
            dropout=0.0,
            feature_mean=np.zeros(len(features)),
            feature_std=np.ones(len(features)),
            target_std=np.ones(len(HORIZONS)) * 0.01,
            state={k: v.numpy().copy() for k, v in network.state_dict().items()},
        )
    )


def gold_frame(hours: int, symbols: tuple[str, ...] = ("AAAUSDT", "BBBUSDT")) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for symbol in symbols:
        returns = rng.normal(0, 0.01, hours)
        frame = pl.DataFrame(
            {
                "symbol": symbol,
                "ts": [START + timedelta(hours=i) for i in range(hours)],
                "return_1h": returns,
                "noise": rng.normal(size=hours),
            }
        )
        for h in HORIZONS:
            # the last h hours have no realised outcome yet
            target = [None] * hours
            for i in range(hours - h):
                target[i] = float(returns[i + 1])
            frame = frame.with_columns(pl.Series(f"target_return_{h}h", target, pl.Float64))
        frames.append(frame)
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def test_rows_follow_the_schema_one_per_symbol_hour_and_horizon() -> None:
    predictor = untrained_predictor(["return_1h", "noise"])
    gold = gold_frame(30)
    rows = batch_predictions(predictor, gold, model_name="m", model_version=3)
    assert dict(rows.schema) == PREDICTION_SCHEMA
    # a full window of 4 rows is needed: hours 3..29 of each symbol, two horizons
    assert rows.height == 2 * 27 * 2
    assert rows.select("symbol", "ts", "horizon_hours").is_duplicated().sum() == 0
    assert rows["ts"].min() == START + timedelta(hours=3)
    chunked = batch_predictions(
        predictor, gold, model_name="m", model_version=3, since=START + timedelta(hours=10)
    )
    assert chunked["ts"].min() == START + timedelta(hours=10)
    joined = chunked.join(rows, on=["symbol", "ts", "horizon_hours"])
    # predicting from a later hour gives the same numbers (same windows)
    assert np.allclose(joined["predicted_return"], joined["predicted_return_right"])


def test_store_is_idempotent_per_model_version_and_range(tmp_path: Path) -> None:
    location = TableLocation(str(tmp_path / "predictions"))
    gold = gold_frame(40)
    v1 = batch_predictions(untrained_predictor(["noise"]), gold, model_name="m", model_version=1)
    v2 = batch_predictions(untrained_predictor(["noise"], 1), gold, model_name="m", model_version=2)
    store_predictions(location, v1)
    store_predictions(location, v2)
    store_predictions(location, v1)  # the same batch again replaces itself
    later = v1.filter(pl.col("ts") >= START + timedelta(hours=20))
    store_predictions(location, later)  # an overlapping batch replaces only its range
    stored = read_table(location)
    assert stored.height == v1.height + v2.height
    assert (
        stored.select("model_version", "symbol", "ts", "horizon_hours").is_duplicated().sum() == 0
    )
    assert store_predictions(location, v1.clear()) is None
    with pytest.raises(DataError, match="one model version"):
        store_predictions(location, pl.concat([v1, v2]))


@pytest.mark.parametrize(
    "probability",
    [
        # always calling up: right exactly when the realised return is > 0
        0.9,
        # always calling not-up: right when the realised return is <= 0
        0.1,
    ],
)
def test_live_accuracy_scores_only_realised_outcomes(probability: float) -> None:
    gold = gold_frame(50, symbols=("AAAUSDT",))
    wide = pl.DataFrame(
        {
            "symbol": "AAAUSDT",
            "ts": gold["ts"],
            **{f"predicted_return_{h}h": 0.0 for h in HORIZONS},
            **{f"direction_probability_{h}h": probability for h in HORIZONS},
        }
    )
    rows = prediction_rows(wide, HORIZONS, model_name="m", model_version=7, predicted_at=START)
    table = live_accuracy(rows, gold).table
    assert table["horizon_hours"].to_list() == HORIZONS
    for h, row in zip(HORIZONS, table.iter_rows(named=True), strict=True):
        realised = gold[f"target_return_{h}h"].drop_nulls().to_numpy()
        up = float(np.mean(realised > 0))
        assert row["n"] == 50 - h and row["pending"] == h
        assert row["directional_accuracy"] == pytest.approx(up if probability > 0.5 else 1 - up)
        assert row["ci_low"] < row["directional_accuracy"] < row["ci_high"]
        assert row["model_version"] == 7
