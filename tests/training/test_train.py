"""Training, registration and the champion gate, on a gold frame with a planted signal.

The target at t follows a feature three hours earlier: the LSTM sees it through its window, while
the baselines (which use the last step only) cannot, so a model given that feature must beat them
and one trained without it must not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from training.config import TrainConfig
from training.registry import (
    CHAMPION,
    PREVIOUS,
    alias_version,
    load_registered,
    promote,
    rollback,
)
from training.train import train_price_model
from warehouse.errors import ModelNotFoundError

HORIZONS = (1, 2)


def planted_gold(hours: int = 900, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for symbol in ("AAAUSDT", "BBBUSDT"):
        signal = rng.normal(size=hours)
        noise = rng.normal(size=(hours, 3))
        lagged = np.concatenate([np.zeros(3), signal[:-3]])
        target = 0.01 * lagged + 0.002 * rng.normal(size=hours)
        frame = pl.DataFrame(
            {
                "symbol": symbol,
                "ts": [start + timedelta(hours=i) for i in range(hours)],
                "signal": signal,
                "noise_a": noise[:, 0],
                "noise_b": noise[:, 1],
                "return_1h": noise[:, 2] * 0.01,
            }
        )
        for h in HORIZONS:
            frame = frame.with_columns(
                pl.Series(f"target_return_{h}h", target),
                pl.Series(f"target_direction_{h}h", (target > 0).astype(np.int8)),
            )
        frames.append(frame)
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


CONFIG = TrainConfig(
    horizons=HORIZONS,
    sequence_length=8,
    hidden_size=16,
    max_epochs=12,
    patience=4,
    batch_size=64,
    learning_rate=5e-3,
    dropout=0.0,
)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_gate_promotes_a_better_candidate_and_rejects_a_worse_one(
    tracking_uri: str, tmp_path: Path
) -> None:
    gold = planted_gold()
    kwargs = {"tracking_uri": tracking_uri, "artifacts": tmp_path / "art", "progress": False}
    weak = train_price_model(gold, CONFIG, feature_candidates=["noise_a", "noise_b"], **kwargs)
    assert weak.promoted  # the first model becomes champion so serving has one
    strong = train_price_model(
        gold, CONFIG, feature_candidates=["signal", "noise_a", "noise_b", "return_1h"], **kwargs
    )
    assert strong.promoted, strong.to_dict()
    assert strong.test_metrics["1h"]["model"]["directional_accuracy"] > 0.75
    # the baselines cannot see the lagged signal: they stay near a coin flip
    assert strong.test_metrics["1h"]["linear"]["directional_accuracy"] < 0.62
    worse = train_price_model(gold, CONFIG, feature_candidates=["noise_a", "noise_b"], **kwargs)
    assert not worse.promoted

    client = MlflowClient(tracking_uri)
    assert alias_version(client, CONFIG.model_name, CHAMPION) == strong.model_version
    assert alias_version(client, CONFIG.model_name, PREVIOUS) == weak.model_version
    with pytest.raises(ModelNotFoundError, match="no version 99"):
        promote(client, CONFIG.model_name, 99)  # nothing moves
    assert alias_version(client, CONFIG.model_name, PREVIOUS) == weak.model_version
    assert rollback(client, CONFIG.model_name) == weak.model_version
    assert alias_version(client, CONFIG.model_name, CHAMPION) == weak.model_version

    run = client.get_run(strong.run_id)
    assert (
        "val_loss" in run.data.metrics and "test_1h_model_directional_accuracy" in run.data.metrics
    )
    assert run.data.tags["gold_table_version"] == "None"
    history = client.get_metric_history(strong.run_id, "train_loss")
    assert len(history) >= 2  # one point per epoch
    assert "backtest_AAAUSDT_1h_long_flat_strategy_sharpe" in run.data.metrics
    assert "backtest_AAAUSDT_1h_long_flat_buy_and_hold_total_return" in run.data.metrics
    figures = {a.path for a in client.list_artifacts(strong.run_id, "figures")}
    assert figures == {
        "figures/calibration_1h.png",
        "figures/predicted_vs_realised_1h.png",
        "figures/equity_curve_AAAUSDT_1h.png",
        "figures/equity_curve_BBBUSDT_1h.png",
    }
    evaluation = {a.path for a in client.list_artifacts(strong.run_id, "evaluation")}
    assert evaluation == {"evaluation/test.json"}


def test_registered_model_round_trips_and_predicts_latest_rows(
    tracking_uri: str, tmp_path: Path
) -> None:
    gold = planted_gold(hours=400, seed=1)
    config = CONFIG.model_copy(update={"max_epochs": 2})
    result = train_price_model(
        gold,
        config,
        feature_candidates=["signal", "noise_a"],
        tracking_uri=tracking_uri,
        artifacts=tmp_path / "art",
        progress=False,
    )
    loaded = load_registered(tracking_uri, config.model_name)
    assert loaded.version == result.model_version
    latest = loaded.predictor.predict_all(gold, latest_only=True)
    assert latest["symbol"].to_list() == ["AAAUSDT", "BBBUSDT"]
    assert latest["ts"].to_list() == [gold["ts"].max()] * 2
    probabilities = latest.select(pl.col("^direction_probability_.*$")).to_numpy()
    assert ((probabilities > 0) & (probabilities < 1)).all()
