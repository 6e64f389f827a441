"""The dashboard's board on a real small lake: indicators rebuilt in price units, outcomes and
live accuracy, rolling sentiment, and the changes a poll reports when the lake moves."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dashboard_support import next_candle, populate, post_messages

from serving.board_data import (
    indicator_rows,
    live_quality,
    rolling_sentiment,
    scored_predictions,
)
from serving.board_model import PredictionBoard, PriceUpdate, SentimentBoard, SystemStatus
from serving.live_board import BoardOptions, BoardSources, LiveBoard
from serving.market import MarketService
from serving.model_quality import judge, registry_quality
from serving.predictions import PricePredictionService
from serving.system_status import LAYERS
from training.metrics import wilson_interval
from training.registry import LoadedModel
from training.sentiment import load_sentiment_model
from warehouse.catalog import BRONZE_CANDLES, BRONZE_POSTS, GOLD_FEATURES, SILVER_CANDLES
from warehouse.lake import Lake, read_table
from warehouse.refresh import refresh_silver_posts

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def board_lake(
    small_lake: Callable[..., Lake],
    tmp_path_factory: pytest.TempPathFactory,
    model_registry: str,
    land: Callable[..., None],
    fear_greed_days: pl.DataFrame,
) -> Lake:
    """200 hours of two symbols, batch predictions, four scored posts, Fear & Greed."""
    lake = small_lake(hours=200, seed=3, root=tmp_path_factory.mktemp("board"))
    populate(lake, model_registry, land=land, fear_greed=fear_greed_days)
    return lake


def _board(lake: Lake, model: LoadedModel, tracking_uri: str | None = None) -> LiveBoard:
    sources = BoardSources(
        lake=lake,
        market=MarketService(lake),
        predictions=PricePredictionService(model, lake),
        tracking_uri=tracking_uri,
    )
    return LiveBoard(sources, BoardOptions(chart_hours=100, outcome_hours=24))


def test_indicators_are_rebuilt_in_price_units(board_lake: Lake) -> None:
    candles = read_table(board_lake.location(SILVER_CANDLES)).sort("symbol", "ts")
    gold = read_table(board_lake.location(GOLD_FEATURES))
    rows = indicator_rows(gold, candles)
    btc = candles.filter(pl.col("symbol") == "BTCUSDT")
    last = rows["BTCUSDT"][-1]
    closes = btc["close"].to_list()
    assert last.time == int(btc["ts"][-1].timestamp())
    assert last.sma_24 == pytest.approx(
        sum(closes[-24:]) / 24, rel=1e-6
    )  # gold stores float32 ratios
    assert last.sma_72 == pytest.approx(
        sum(closes[-72:]) / 72, rel=1e-6
    )  # gold stores float32 ratios
    window = closes[-20:]
    mean = sum(window) / 20
    std = math.sqrt(sum((c - mean) ** 2 for c in window) / 19)  # sample std, as gold's
    assert last.bb_mid == pytest.approx(mean, rel=1e-6)  # gold stores float32 ratios
    assert last.bb_upper == pytest.approx(mean + 2 * std, rel=1e-6)  # gold stores float32 ratios
    assert last.bb_lower == pytest.approx(mean - 2 * std, rel=1e-6)  # gold stores float32 ratios
    assert last.macd is not None and last.macd_signal is not None
    assert last.macd_hist == pytest.approx(last.macd - last.macd_signal, rel=1e-5)
    gold_last = gold.filter(pl.col("symbol") == "BTCUSDT").sort("ts").row(-1, named=True)
    assert last.rsi == pytest.approx(gold_last["rsi_14h"])
    assert rows["BTCUSDT"][0].ema_12 is None  # before the EMA warm-up: a gap, not a number


@pytest.mark.parametrize(
    ("probability", "realised", "hit"),
    [
        (0.7, 0.01, True),  # called up, went up
        (0.7, -0.01, False),  # called up, went down
        (0.3, -0.01, True),  # called down, went down
        (0.3, 0.01, False),  # called down, went up
        (0.5, 0.01, False),  # 0.5 is not an up call (the live_accuracy rule)
        (0.6, None, None),  # the target is not realised yet: pending
    ],
)
def test_outcomes_are_hit_miss_or_pending(
    probability: float, realised: float | None, hit: bool | None
) -> None:
    predictions = pl.DataFrame(
        {
            "symbol": ["AAA"],
            "ts": [T0],
            "horizon_hours": [2],
            "direction_probability": [probability],
        }
    )
    gold = pl.DataFrame(
        {"symbol": ["AAA"], "ts": [T0], "target_return_2h": [realised]},
        schema_overrides={"target_return_2h": pl.Float64},
    )
    assert scored_predictions(predictions, gold)["hit"].to_list() == [hit]


def test_live_quality_puts_the_model_beside_the_baselines() -> None:
    hours = [T0 + timedelta(hours=i) for i in range(6)]
    realised = [0.01, -0.02, 0.03, 0.01, -0.01, None]  # the last one is pending
    last_hour = [0.02, 0.01, -0.01, 0.02, -0.03, 0.01]  # return_1h, for persistence
    probability = [0.6, 0.4, 0.7, 0.3, 0.45, 0.8]  # hits: yes, yes, yes, no, yes, pending
    predictions = pl.DataFrame(
        {"symbol": "AAA", "ts": hours, "horizon_hours": 1, "direction_probability": probability}
    )
    gold = pl.DataFrame(
        {"symbol": "AAA", "ts": hours, "return_1h": last_hour, "target_return_1h": realised}
    )
    [row] = live_quality(scored_predictions(predictions, gold), gold)
    assert row.pending == 1
    assert (row.model.accuracy, row.model.n) == (4 / 5, 5)
    assert (row.model.ci_low, row.model.ci_high) == pytest.approx(wilson_interval(4, 5))
    assert row.baselines["always_up"].accuracy == 3 / 5  # three of five went up
    assert row.baselines["persistence"].accuracy == 3 / 5  # the last move repeated: 3 of 5


def test_rolling_sentiment_is_the_mean_over_the_trailing_window() -> None:
    posts = pl.DataFrame(
        {
            "ts": [
                T0,
                T0 + timedelta(minutes=30),
                T0 + timedelta(hours=2),
                T0 + timedelta(hours=30),
            ],
            "symbols": [["AAA"], ["AAA", "BBB"], ["AAA"], ["AAA"]],
            "score": [0.5, -0.1, 0.2, -0.4],
        }
    )
    rolling = {r.symbol: r.points for r in rolling_sentiment(posts, window_hours=24)}
    aaa = [(p.time - int(T0.timestamp()), round(p.score, 6), p.posts) for p in rolling["AAA"]]
    assert aaa == [
        (0, 0.2, 2),  # the first hour: mean of 0.5 and -0.1
        (7200, 0.2, 3),  # two hours later: the three posts of the last 24 h
        (30 * 3600, -0.4, 1),  # 30 hours later: only the newest post is in the window
    ]
    assert [(p.score, p.posts) for p in rolling["BBB"]] == [(-0.1, 1)]


def test_the_first_poll_builds_every_section(
    board_lake: Lake, registered_model: LoadedModel
) -> None:
    board = _board(board_lake, registered_model)
    assert board.poll() == []  # nothing to send before anyone has a snapshot
    snapshot = board.snapshot()
    candles = read_table(board_lake.location(SILVER_CANDLES))
    for chart in snapshot.prices.symbols:
        rows = candles.filter(pl.col("symbol") == chart.symbol).sort("ts").tail(100)
        assert [b.close for b in chart.candles] == rows["close"].to_list()  # the last 100 hours
        assert chart.indicators[-1].time == chart.candles[-1].time
    predictions = snapshot.predictions
    assert predictions.model_version == 1 and predictions.outcomes_model_version == 1
    for entry in predictions.symbols:
        assert entry.feature_time == int(candles["ts"].max().timestamp())  # type: ignore[union-attr]
        [horizon] = entry.horizons
        assert horizon.target_time == entry.feature_time + 3600
        assert entry.close is not None and horizon.expected_close == pytest.approx(
            entry.close * (1 + horizon.predicted_return)
        )
        assert {o.hit for o in entry.outcomes} >= {True, False, None}  # hits, misses, pending
        assert len(entry.outcomes) == 24  # outcome_hours
    assert [p.post_id for p in snapshot.sentiment.posts] == ["p4", "p3", "p2", "p1"]
    assert snapshot.sentiment.total_posts == 4
    assert snapshot.portfolio.note == "no paper trades yet"
    assert snapshot.prices.market is not None and snapshot.prices.market.fear_greed is not None
    layers = {layer.table: layer for layer in snapshot.status.layers}
    assert layers[SILVER_CANDLES].newest == candles["ts"].max()
    assert layers["gold/served_predictions"].version is None


@dataclass
class _Switchable:
    """A model source whose model a test can change (as a promotion does)."""

    model: LoadedModel

    def require(self) -> LoadedModel:
        return self.model


def test_a_poll_sends_only_what_moved(
    small_lake: Callable[..., Lake],
    tmp_path: Path,
    model_registry: str,
    registered_model: LoadedModel,
    land: Callable[..., None],
    land_candles: Callable[..., Lake],
    fear_greed_days: pl.DataFrame,
) -> None:
    lake = small_lake(hours=120, seed=5, root=tmp_path)
    populate(lake, model_registry, land=land, fear_greed=fear_greed_days)
    source = _Switchable(registered_model)
    board = LiveBoard(
        BoardSources(lake, MarketService(lake), PricePredictionService(source, lake)),  # type: ignore[arg-type]
        BoardOptions(chart_hours=100),
    )
    board.poll()
    assert board.poll() == []  # nothing moved: nothing to send

    candle = next_candle(lake, "BTCUSDT")
    land_candles(lake, [candle])
    changes = dict(board.poll())
    assert set(changes) == {"price_update", "prediction_update", "status"}
    prices = changes["price_update"]
    assert isinstance(prices, PriceUpdate)
    [chart] = prices.symbols  # ETH did not move
    new_time = int(candle["open_time"]) // 1000  # type: ignore[call-overload]
    assert chart.symbol == "BTCUSDT" and [b.time for b in chart.candles] == [new_time]
    assert chart.candles[0].close == candle["close"]
    assert new_time in [r.time for r in chart.indicators]
    assert prices.market is not None and prices.market.prices[0].close == candle["close"]
    predictions = changes["prediction_update"]
    assert isinstance(predictions, PredictionBoard)
    btc = next(s for s in predictions.symbols if s.symbol == "BTCUSDT")
    assert btc.feature_time == new_time  # the champion predicted from the new hour
    status = changes["status"]
    assert isinstance(status, SystemStatus)

    later = post_messages(datetime.fromtimestamp(new_time, UTC) + timedelta(hours=12))[:1]
    later[0]["post_id"] = "p-new"
    land(lake, "social.posts", later, kafka_timestamp_field="ts")
    refresh_silver_posts(lake, load_sentiment_model("lexicon"))  # type: ignore[arg-type]
    changes = dict(board.poll())
    sentiment = changes["sentiment_update"]
    assert isinstance(sentiment, SentimentBoard)
    assert [p.post_id for p in sentiment.posts] == ["p-new"]  # only the new post
    assert sentiment.total_posts == 5 and "price_update" not in changes

    source.model = LoadedModel(
        registered_model.predictor, registered_model.name, 7, registered_model.run_id
    )
    changes = dict(board.poll())
    moved = changes["prediction_update"]
    assert isinstance(moved, PredictionBoard) and moved.model_version == 7
    assert moved.outcomes_model_version == 1  # v7 has no batch predictions yet: v1's are shown
    assert moved.outcomes_note is not None and "v7" in moved.outcomes_note
    assert changes["status"].champion_version == 7  # type: ignore[attr-defined]


def test_model_quality_comes_from_the_champions_run(
    board_lake: Lake, model_registry: str, registered_model: LoadedModel
) -> None:
    quality = registry_quality(model_registry, registered_model, board_lake)
    assert set(quality.validation) == {"model", "majority", "persistence", "linear"}
    [test] = quality.test
    assert test.horizon_hours == 1 and set(test.baselines) == {"majority", "persistence", "linear"}
    assert test.model.ci_low is not None and test.model.ci_low <= test.model.accuracy  # type: ignore[operator]
    assert quality.beats_baselines is not None
    assert (quality.beats_baselines is False) == any(
        "does not beat the baselines" in w for w in quality.warnings
    )


@pytest.mark.parametrize(
    ("validation", "beats", "warned"),
    [
        ({"model": 0.56, "majority": 0.52, "linear": 0.55}, True, False),  # beats every one
        ({"model": 0.53, "majority": 0.53}, False, True),  # a tie does not beat
        ({"model": 0.50, "persistence": 0.51}, False, True),  # beaten
        ({}, None, False),  # nothing logged: unknown, no warning
    ],
)
def test_the_warning_shows_when_a_baseline_is_as_good(
    validation: dict[str, float], beats: bool | None, warned: bool
) -> None:
    result, warnings = judge(validation, [], version=3)
    assert result is beats
    assert bool(warnings) is warned
    if warned:
        assert "the champion (v3) does not beat the baselines" in warnings[0]


def test_a_section_that_raised_is_rebuilt_at_the_next_poll(
    board_lake: Lake,
    registered_model: LoadedModel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreadable(*args: object, **kwargs: object) -> pl.DataFrame:
        raise OSError("object store hiccup")

    board = _board(board_lake, registered_model)
    caplog.set_level(logging.WARNING, logger="bentoml.marketlake")
    with monkeypatch.context() as patched:
        patched.setattr("serving.live_board.read_chart_candles", unreadable)
        board.poll()
        assert board.poll() == []  # still failing: nothing to send, no table moved
        assert board.snapshot().prices.symbols == []
    [warning] = [r for r in caplog.records if "object store hiccup" in r.getMessage()]
    assert "prices" in warning.getMessage() and warning.levelno == logging.WARNING

    changes = dict(board.poll())  # nothing moved in the lake: the failed section is retried
    prices = changes["price_update"]
    assert isinstance(prices, PriceUpdate) and {c.symbol for c in prices.symbols} == {
        "BTCUSDT",
        "ETHUSDT",
    }
    predictions = changes["prediction_update"]  # now scored on the gold the prices section read
    assert isinstance(predictions, PredictionBoard) and predictions.outcomes_model_version == 1
    checks = [c.name for c in board.snapshot().status.checks]  # run again on the candles read
    assert len([c for c in checks if c.startswith(SILVER_CANDLES) and "fresh" not in c]) == 2
    assert board.poll() == []  # rebuilt and recorded: quiet again


def test_every_layers_newest_row_is_the_maximum_a_scan_finds(
    board_lake: Lake, registered_model: LoadedModel
) -> None:
    board = _board(board_lake, registered_model)
    board.poll()
    layers = {layer.table: layer for layer in board.snapshot().status.layers}
    for _, table, column in LAYERS:
        if layers[table].version is None:
            continue  # no such table in this lake
        assert layers[table].newest == read_table(board_lake.location(table))[column].max(), table
    assert {layers[t].version is not None for t in (BRONZE_CANDLES, BRONZE_POSTS)} == {True}


def test_only_the_posts_shown_are_remembered(
    board_lake: Lake, registered_model: LoadedModel
) -> None:
    sources = BoardSources(
        board_lake, MarketService(board_lake), PricePredictionService(registered_model, board_lake)
    )
    board = LiveBoard(sources, BoardOptions(chart_hours=100, posts=2))
    board.poll()
    assert [p.post_id for p in board.snapshot().sentiment.posts] == ["p4", "p3"]
    assert board._posts_seen == {
        "p4",
        "p3",
    }  # bounded by the posts shown, not by the service's life
