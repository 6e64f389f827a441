"""Latest prices, 24 h figures, Fear & Greed and the market summary behind ``POST /market``."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from serving.market import MarketRequest, MarketService, latest_prices, market_summary
from serving.predictions import RequestError
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED
from warehouse.errors import DataError
from warehouse.lake import Lake, overwrite, read_table

T0 = datetime(2024, 3, 1, tzinfo=UTC)
GROWTH = 1.01


def _bars(symbol: str, hours: list[int], *, close: Callable[[int], float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": symbol,
            "ts": [T0 + timedelta(hours=h) for h in hours],
            "close": [close(h) for h in hours],
            "volume": [float(h) for h in hours],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))


@pytest.fixture(scope="module")
def prices() -> dict[str, dict[str, object]]:
    candles = pl.concat(
        [
            _bars("STEADY", list(range(30)), close=lambda h: 100 * GROWTH**h),
            _bars("YOUNG", list(range(10)), close=lambda h: 50.0),
            _bars("GAPPY", [0, 1, 2, 3, 40, 41, 42], close=lambda h: 10.0 + h),
            _bars("SINGLE", [7], close=lambda h: 3.0),
        ]
    ).sample(fraction=1.0, shuffle=True, seed=3)  # order in the table must not matter
    return {row["symbol"]: row for row in latest_prices(candles).iter_rows(named=True)}


@pytest.mark.parametrize(
    ("symbol", "last_hour", "close", "change", "volatility", "volume"),
    [
        # 24 returns of +1 % each; reference close 24 h earlier; volumes of hours 6..29
        ("STEADY", 29, 100 * GROWTH**29, GROWTH**24 - 1, math.sqrt(24) * math.log(GROWTH), 420.0),
        # 10 hours of history: no close 24 h earlier; 9 flat returns
        ("YOUNG", 9, 50.0, None, 0.0, 45.0),
        # the bar before the window is 37 h older: no reference, no return across the gap
        ("GAPPY", 42, 52.0, None, math.hypot(math.log(52 / 51), math.log(51 / 50)), 123.0),
        # one bar: no change, no return
        ("SINGLE", 7, 3.0, None, None, 7.0),
    ],
)
def test_latest_price_and_24h_figures(
    prices: dict[str, dict[str, object]],
    symbol: str,
    last_hour: int,
    close: float,
    change: float | None,
    volatility: float | None,
    volume: float,
) -> None:
    row = prices[symbol]
    assert row["ts"] == T0 + timedelta(hours=last_hour)
    assert row["close"] == pytest.approx(close)
    assert row["change_24h"] == (None if change is None else pytest.approx(change))
    assert row["volatility_24h"] == (None if volatility is None else pytest.approx(volatility))
    assert row["volume_24h"] == pytest.approx(volume)


def test_summary_counts_symbols_up_down_and_unchanged() -> None:
    frame = pl.DataFrame(
        {
            "symbol": ["A", "B", "C", "D", "E"],
            "ts": [T0, T0, T0 + timedelta(hours=2), T0, T0],
            "change_24h": [0.02, -0.01, 0.0, None, 0.05],
        }
    )
    summary = market_summary(frame)
    assert (summary.symbols, summary.up, summary.down, summary.unchanged) == (5, 2, 1, 1)
    assert summary.mean_change_24h == pytest.approx(0.015)
    assert summary.as_of == T0 + timedelta(hours=2)


@pytest.fixture(scope="module")
def market_lake(small_lake: Callable[..., Lake], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return small_lake(hours=60, seed=5, root=tmp_path_factory.mktemp("market"))


def test_market_from_the_lake_picks_up_fear_and_greed_when_it_lands(
    market_lake: Lake, fear_greed_days: pl.DataFrame
) -> None:
    service = MarketService(market_lake, refresh_s=0)
    first = service.market(MarketRequest())
    candles = read_table(market_lake.location(SILVER_CANDLES))
    expected = latest_prices(candles)
    assert [p.symbol for p in first.prices] == ["BTCUSDT", "ETHUSDT"]
    for price, row in zip(first.prices, expected.iter_rows(named=True), strict=True):
        assert price.close == row["close"] and price.ts == row["ts"]
        assert price.change_24h is not None and price.volatility_24h is not None
    assert first.fear_greed is None  # no silver/fear_greed table yet
    assert first.summary.symbols == 2 and first.summary.up + first.summary.down <= 2
    assert first.summary.as_of == candles["ts"].max()

    overwrite(
        market_lake.location(SILVER_FEAR_GREED),
        fear_greed_days,
    )
    second = service.market(MarketRequest(symbols=["ethusdt"]))
    assert second.fear_greed is not None
    assert (second.fear_greed.value, second.fear_greed.classification) == (71, "Greed")
    assert [p.symbol for p in second.prices] == ["ETHUSDT"]
    assert second.summary == first.summary  # the summary is of the whole market


def test_unknown_symbols_are_named(market_lake: Lake) -> None:
    with pytest.raises(RequestError, match="'DOGEUSDT'") as error:
        MarketService(market_lake).market(MarketRequest(symbols=["BTCUSDT", "DOGEUSDT"]))
    assert error.value.field == "symbols"


def test_a_lake_without_candles_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="silver/candles"):
        MarketService(Lake(str(tmp_path / "lake"))).market(MarketRequest())


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"symbols": []}, "symbols"),  # empty list
        ({"symbols": ["x" * 33]}, "symbols.0"),  # symbol too long
        ({"symbol": "BTCUSDT"}, "symbol"),  # unknown field (extra="forbid")
    ],
)
def test_bad_bodies_are_rejected_naming_the_field(body: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as error:
        MarketRequest.model_validate(body)
    assert named in str(error.value)
