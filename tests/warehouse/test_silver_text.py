"""Silver posts, tickers and Fear & Greed: dedup, symbol normalisation, scoring, re-runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from training.sentiment import load_sentiment_model
from warehouse.catalog import (
    SILVER_FEAR_GREED,
    SILVER_POSTS,
    SILVER_TICKERS,
    SILVER_TICKERS_LATEST,
)
from warehouse.lake import Lake, read_table
from warehouse.refresh import (
    RefreshReport,
    SkippedRefresh,
    refresh_silver_fear_greed,
    refresh_silver_posts,
    refresh_silver_tickers,
)
from warehouse.silver_text import build_silver_fear_greed, normalised_symbols, score_posts
from warehouse.topics import FEAR_GREED, POSTS, TICKERS

T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


def post(post_id: str, text: str, hour: int, symbols: list[str]) -> dict[str, object]:
    return {
        "post_id": post_id,
        "platform": "x",
        "author": "a",
        "text": text,
        "ts": T0 + hour * HOUR,
        "symbols": symbols,
        "source": "test",
    }


@dataclass
class CountingModel:
    """A real lexicon model that counts the texts it is asked to score."""

    name: str = ""
    calls: int = 0
    texts: int = 0

    def __post_init__(self) -> None:
        self._model = load_sentiment_model("lexicon")
        self.name = self._model.name

    def score(self, texts: Sequence[str]) -> list[object]:
        self.calls += 1
        self.texts += len(texts)
        return list(self._model.score(texts))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["btcusdt", "BTCUSDT"], ["BTCUSDT"]),  # case duplicates collapse
        ([" $eth", "#Sol", "BTC"], ["BTC", "ETH", "SOL"]),  # cashtag/hashtag marks stripped, sorted
        (["", "  "], []),  # blanks dropped
        (None, []),  # a null list becomes empty
    ],
)
def test_symbols_are_normalised(raw: list[str] | None, expected: list[str]) -> None:
    frame = pl.DataFrame({"symbols": [raw]}, schema={"symbols": pl.List(pl.String)})
    assert frame.select(normalised_symbols(pl.col("symbols")))["symbols"].to_list() == [expected]


def test_posts_are_deduplicated_scored_and_only_new_posts_scored_on_rerun(
    tmp_path: Path, land: Callable[..., None]
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    model = CountingModel()
    land(
        lake,
        POSTS,
        [
            post("p1", "Bitcoin surges to a record high, profits soar", 0, ["btcusdt"]),
            post("p2", "Exchange hacked, ether plunges and losses mount", 1, ["ETHUSDT"]),
            post(
                "p1", "Bitcoin surges to a record high, profits soar", 0, ["BTCUSDT"]
            ),  # redelivery
        ],
        kafka_timestamp_ms=T0,
    )
    first = refresh_silver_posts(lake, model, batch_size=1)
    assert isinstance(first, RefreshReport)
    assert (first.rows, first.details["scored"], model.calls) == (2, 2, 2)  # batches of 1
    silver = read_table(lake.location(SILVER_POSTS)).sort("post_id")
    assert silver["post_id"].to_list() == ["p1", "p2"]
    assert silver["symbols"].to_list() == [["BTCUSDT"], ["ETHUSDT"]]
    assert silver["label"].to_list() == ["positive", "negative"]
    assert silver["score"][0] > 0 > silver["score"][1]
    assert silver["sentiment_model"].unique().to_list() == [model.name]
    scored_at = silver["scored_at"].to_list()

    land(
        lake,
        POSTS,
        [post("p2", "ether plunges", 1, ["ETH"]), post("p3", "SOL flat", 2, [])],
        kafka_timestamp_ms=T0,
    )
    second = refresh_silver_posts(lake, model)
    assert isinstance(second, RefreshReport)
    assert (second.rows, second.details["scored"], second.details["kept"]) == (3, 1, 2)
    assert model.texts == 3  # p1 and p2 were not scored again
    silver = read_table(lake.location(SILVER_POSTS)).sort("post_id")
    assert silver["post_id"].to_list() == ["p1", "p2", "p3"]
    assert silver["scored_at"].to_list()[:2] == scored_at  # already-scored rows kept as they were

    third = refresh_silver_posts(lake, model)
    assert isinstance(third, RefreshReport) and third.details["scored"] == 0
    assert read_table(lake.location(SILVER_POSTS)).height == 3


def test_a_model_returning_too_few_scores_is_refused() -> None:
    class Short:
        name = "short"

        def score(self, texts: Sequence[str]) -> list[object]:
            return []

    frame = pl.DataFrame({"text": ["a", "b"]})
    with pytest.raises(Exception, match="returned 0 scores for 2 texts"):
        score_posts(frame, Short())


def test_tickers_keep_history_deduplicated_and_latest_per_symbol(
    tmp_path: Path, land: Callable[..., None]
) -> None:
    lake = Lake(str(tmp_path / "lake"))

    def ticker(symbol: str, hour: int, price: float) -> dict[str, object]:
        return {"symbol": symbol, "price": price, "ts": T0 + hour * HOUR, "source": "test"}

    land(
        lake,
        TICKERS,
        [ticker("BTC", 0, 1.0), ticker("BTC", 1, 2.0), ticker("ETH", 0, 3.0)],
        kafka_timestamp_ms=T0,
    )
    # a correction of the 01:00 snapshot
    land(lake, TICKERS, [ticker("BTC", 1, 2.5)], kafka_timestamp_ms=T0)
    report = refresh_silver_tickers(lake)
    assert isinstance(report, RefreshReport)
    history = read_table(lake.location(SILVER_TICKERS)).sort("symbol", "ts")
    assert history.select("symbol", "price").rows() == [("BTC", 1.0), ("BTC", 2.5), ("ETH", 3.0)]
    latest = read_table(lake.location(SILVER_TICKERS_LATEST)).sort("symbol")
    assert latest.select("symbol", "price").rows() == [("BTC", 2.5), ("ETH", 3.0)]
    assert report.details["duplicates_removed"] == 1


def test_fear_greed_keeps_the_first_value_published_each_day(
    tmp_path: Path, land: Callable[..., None]
) -> None:
    lake = Lake(str(tmp_path / "lake"))

    def index(hour: int, value: int) -> dict[str, object]:
        return {"value": value, "classification": "Fear", "ts": T0 + hour * HOUR, "source": "t"}

    land(
        lake,
        FEAR_GREED,
        [index(0, 40), index(0, 40), index(5, 55), index(24, 60)],
        kafka_timestamp_ms=T0,
    )
    report = refresh_silver_fear_greed(lake)
    assert isinstance(report, RefreshReport)
    silver = read_table(lake.location(SILVER_FEAR_GREED)).sort("date")
    assert silver["value"].to_list() == [40, 60]  # the 05:00 update does not rewrite the day
    assert report.details["duplicates_removed"] == 2


def test_a_correction_of_the_same_publication_wins() -> None:
    ts = datetime(2024, 3, 1, tzinfo=UTC)
    bronze = pl.DataFrame(
        {
            "value": [40, 41],
            "classification": ["Fear", "Fear"],
            "ts": [ts, ts],
            "source": ["t", "t"],
            "kafka_offset": [0, 1],
        }
    )
    assert build_silver_fear_greed(bronze)["value"].to_list() == [41]


@pytest.mark.parametrize(
    "refresh",
    [
        lambda lake: refresh_silver_posts(lake, CountingModel()),  # no bronze/posts
        refresh_silver_tickers,  # no bronze/tickers
        refresh_silver_fear_greed,  # no bronze/fear_greed
    ],
)
def test_a_missing_bronze_table_is_skipped_not_failed(tmp_path: Path, refresh: object) -> None:
    result = refresh(Lake(str(tmp_path / "lake")))  # type: ignore[operator]
    assert isinstance(result, SkippedRefresh)
    assert "does not exist yet" in result.to_dict()["skipped"]
