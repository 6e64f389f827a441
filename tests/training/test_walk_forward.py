"""Walk-forward folds: embargoes, per-fold fitting, pooled metrics beside the baselines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from pydantic import ValidationError

from training.config import TrainConfig
from training.walk_forward import WalkForwardConfig, plan_folds, run_walk_forward
from warehouse.errors import DataError

START = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SMALL = TrainConfig(
    horizons=(1, 2),
    sequence_length=8,
    hidden_size=16,
    max_epochs=6,
    patience=3,
    batch_size=64,
    learning_rate=5e-3,
    dropout=0.0,
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # an embargo shorter than the longest horizon lets training targets reach the test
        ({"embargo_hours": 12}, "shorter than the longest horizon"),
        # less than six months of test hours in total
        ({"folds": 2, "test_hours": 730}, "below min_total_test_hours"),
        # unknown option
        ({"fold": 3}, "Extra inputs"),
    ],
)
def test_config_rejects_leaky_or_short_designs(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WalkForwardConfig(**options)


@pytest.mark.parametrize(
    "train_hours",
    [
        # expanding: every fold trains from the first hour
        None,
        # rolling: the last 500 hours before the embargo
        500,
    ],
)
def test_folds_tile_the_end_with_embargoes_between_periods(train_hours: int | None) -> None:
    config = WalkForwardConfig(
        folds=3, test_hours=100, val_hours=50, train_hours=train_hours, min_total_test_hours=300
    )
    last = START + 2000 * HOUR
    folds = plan_folds(START, last, config)
    assert folds[-1].test_end == last
    for previous, fold in pairwise(folds):
        assert fold.test_start == previous.test_end + HOUR  # tests are contiguous
    for fold in folds:
        assert fold.test_end - fold.test_start == 99 * HOUR
        # the gap after each period is at least the longest horizon (24 h)
        assert fold.val_start - fold.train_end > 24 * HOUR
        assert fold.test_start - fold.val_end > 24 * HOUR
        if train_hours is None:
            assert fold.train_start == START
        else:
            assert fold.train_end - fold.train_start == (train_hours - 1) * HOUR
    with pytest.raises(DataError, match="training hours"):
        plan_folds(START, START + 400 * HOUR, config)


def test_walk_forward_pools_folds_and_beats_blind_baselines() -> None:
    from test_train import planted_gold

    gold = planted_gold(hours=900, seed=4)
    config = WalkForwardConfig(
        train=SMALL.model_copy(update={"max_epochs": 4}),
        folds=2,
        test_hours=150,
        val_hours=120,
        min_total_test_hours=0,
    )
    result = run_walk_forward(
        gold, config, feature_candidates=["signal", "noise_a", "return_1h"], progress=False
    )
    report = result.report
    assert [f["fold"] for f in report["folds"]] == [0, 1]
    assert result.samples["fold"].unique().sort().to_list() == [0, 1]
    one_hour = report["horizons"]["1h"]
    # two symbols x 2 folds x 150 test hours
    assert one_hour["model"]["n"] == 600
    assert one_hour["model"]["directional_accuracy"] > 0.65
    assert one_hour["baselines"]["linear"]["directional_accuracy"] < 0.62
    assert one_hour["model"]["p_value_vs_best_baseline"] < 0.01
    assert set(report["by_symbol"]) == {"AAAUSDT", "BBBUSDT"}
    assert set(report["backtest"]["by_symbol"]["AAAUSDT"]["1h"]) == {"long_flat", "long_short"}
