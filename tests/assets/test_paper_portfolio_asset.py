"""``ml/paper_portfolio`` run by Dagster on a growing lake: three runs, each booking only the new
hours, the book continuous across runs, no duplicates, its checks passing."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets import ml
from pipelines.resources import LakeResource
from pipelines.simulator import simulate_candles
from training.config import MODEL_NAME
from training.paper_ledger import paper_portfolio_from_lake
from training.paper_trading import PORTFOLIO
from training.predictions import prediction_rows, store_predictions
from warehouse.catalog import GOLD_FEATURES, GOLD_PAPER_EQUITY, GOLD_PAPER_TRADES, GOLD_PREDICTIONS
from warehouse.lake import Lake, open_table, read_table

SYMBOLS = ("BTCUSDT", "ETHUSDT")
END_MS = 1_699_999_200_000
ROUNDS = (60, 4, 3)
"""Hours landed before each run: 60, then 4 more, then 3 more."""


def predict_new_hours(lake: Lake) -> int:
    """Store a 1 h prediction for every gold hour not predicted yet (deterministic
    probabilities that cross both thresholds); returns how many hours were added."""
    gold = read_table(lake.location(GOLD_FEATURES), columns=["symbol", "ts"])
    location = lake.location(GOLD_PREDICTIONS)
    if open_table(location) is not None:
        done = read_table(location, columns=["symbol", "ts"])
        gold = gold.join(done, on=["symbol", "ts"], how="anti")
    hours = gold["ts"].dt.epoch("s") // 3600
    wide = gold.with_columns(
        (0.5 + 0.2 * (hours * 1.7 + (gold["symbol"] == "ETHUSDT")).sin()).alias(
            "direction_probability_1h"
        ),
        pl.lit(0.0).alias("predicted_return_1h"),
    )
    rows = prediction_rows(
        wide, [1], model_name=MODEL_NAME, model_version=1, predicted_at=datetime.now(UTC)
    )
    store_predictions(location, rows)
    return gold.height


def materialize(lake: Lake, instance: dg.DagsterInstance) -> tuple[dict[str, Any], list[Any]]:
    """Run the asset and its checks; its metadata and the check evaluations."""
    result = dg.materialize(
        [ml.paper_portfolio, *ml.PAPER_PORTFOLIO_CHECKS],
        instance=instance,
        resources={"lake": LakeResource(uri=lake.uri)},
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}  # type: ignore[union-attr]
    return metadata, result.get_asset_check_evaluations()


def test_three_runs_on_a_growing_lake_append_only_the_new_hours(
    land_candles: Callable[..., Lake], tmp_path: Path
) -> None:
    hours = sum(ROUNDS)
    messages = list(simulate_candles(SYMBOLS, hours=hours, seed=11, end_ms=END_MS))
    lake = Lake(str(tmp_path / "lake"))
    landed = 0
    before: tuple[pl.DataFrame, pl.DataFrame] | None = None
    with dg.DagsterInstance.ephemeral() as instance:
        for new_hours in ROUNDS:
            batch = [m for m in messages if landed <= _index(m, messages) < landed + new_hours]
            land_candles(lake, batch)
            landed += new_hours
            assert predict_new_hours(lake) == len(SYMBOLS) * new_hours
            metadata, checks = materialize(lake, instance)

            assert {c.check_name for c in checks} == {
                "fills_after_signals",
                "one_fill_per_bar",
                "one_equity_row_per_bar",
            }
            assert all(c.passed for c in checks)
            trades = read_table(lake.location(GOLD_PAPER_TRADES)).sort("symbol", "fill_ts")
            equity = read_table(lake.location(GOLD_PAPER_EQUITY)).sort("symbol", "ts")
            # the first run books from the bar after the first prediction; later runs only
            # the bars the new predictions decide (the newest bar needs the next hour's open)
            booked = landed - 1 if before is None else new_hours
            assert metadata["bars_added"] == len(SYMBOLS) * booked
            assert metadata["mode"] == ("rebuild" if before is None else "incremental")
            assert metadata["trades_total"] == trades.height
            portfolio = equity.filter(pl.col("symbol") == PORTFOLIO)
            assert metadata["equity"] == pytest.approx(portfolio["equity"][-1])
            assert metadata["excess_return"] == pytest.approx(
                metadata["equity"] - metadata["buy_and_hold_equity"]
            )
            assert -1 < metadata["max_drawdown"] <= 0
            assert metadata["rule"]["rule"]["mode"] == "long_short"
            assert equity.select("symbol", "ts").is_duplicated().sum() == 0
            if before is not None:
                old_trades, old_equity = before
                kept = trades.join(old_trades, on=["symbol", "fill_ts"], how="semi")
                assert kept.equals(old_trades)  # booked fills never change
                assert trades.height - kept.height == metadata["trades_added"]
                assert equity.join(old_equity, on=["symbol", "ts"], how="semi").equals(old_equity)
                new = equity.join(old_equity, on=["symbol", "ts"], how="anti")
                assert new["ts"].min() > old_equity["ts"].max()
            before = (trades, equity)

        # the book continued over three runs is the book of one run over everything
        again = Lake(str(tmp_path / "again"))
        shutil.copytree(lake.uri, again.uri)
        assert paper_portfolio_from_lake(again, rebuild=True).mode == "rebuild"
        for table in (GOLD_PAPER_TRADES, GOLD_PAPER_EQUITY):
            got, expected = (read_table(x.location(table)) for x in (lake, again))
            keys = ["symbol", "fill_ts"] if table == GOLD_PAPER_TRADES else ["symbol", "ts"]
            assert_frame_equal(got.sort(keys), expected.sort(keys), rel_tol=1e-12)
        assert before[0].height > 5  # the probabilities cross both thresholds
        assert math.isfinite(metadata["buy_and_hold_equity"])

        # nothing new: the run books nothing and writes no new version
        versions = (metadata["trades_version"], metadata["equity_version"])
        metadata, _ = materialize(lake, instance)
        assert metadata["mode"] == "up to date" and metadata["bars_added"] == 0
        assert (metadata["trades_version"], metadata["equity_version"]) == versions


def _index(message: dict[str, Any], messages: list[dict[str, Any]]) -> int:
    """The hour index of a simulated candle (0: the first hour)."""
    first = min(int(m["open_time"]) for m in messages)
    return (int(message["open_time"]) - first) // 3_600_000
