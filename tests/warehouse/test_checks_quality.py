"""The data-quality checks behind the asset checks: behaviour tables on small frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from warehouse.checks import (
    duplicate_keys,
    freshness,
    gap_report,
    null_keys,
    ohlc_sanity,
    sentiment_coverage,
)
from warehouse.errors import SchemaError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bars(rows: list[tuple[str, int, float, float, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["symbol", "hour", "open", "high", "low", "close", "volume"], orient="row"
    ).with_columns(ts=pl.lit(T0) + pl.duration(hours="hour"))


@pytest.mark.parametrize(
    ("symbols", "hours", "passed", "duplicates"),
    [
        (["A", "A", "B"], [0, 1, 0], True, 0),  # same hour, different symbols: fine
        (["A", "A", "A"], [0, 0, 0], False, 2),  # a key three times counts two extra rows
        ([], [], True, 0),  # empty table
    ],
)
def test_duplicate_keys(
    symbols: list[str], hours: list[int], passed: bool, duplicates: int
) -> None:
    frame = pl.DataFrame(
        {"symbol": symbols, "hour": hours}, schema={"symbol": pl.String, "hour": pl.Int64}
    )
    outcome = duplicate_keys(frame, ["symbol", "hour"])
    assert (outcome.passed, outcome.metadata["duplicate_rows"]) == (passed, duplicates)


@pytest.mark.parametrize(
    ("symbols", "passed"),
    [
        (["A", "B"], True),  # no nulls
        (["A", None], False),  # a null symbol
    ],
)
def test_null_keys(symbols: list[str | None], passed: bool) -> None:
    frame = pl.DataFrame({"symbol": symbols, "ts": [T0, T0]})
    outcome = null_keys(frame, ["symbol", "ts"])
    assert outcome.passed is passed
    assert outcome.metadata["nulls_per_key"]["ts"] == 0


@pytest.mark.parametrize(
    ("row", "passed"),
    [
        (("A", 0, 10.0, 11.0, 9.0, 10.5, 1.0), True),  # a normal bar
        (("A", 0, 10.0, 10.0, 10.0, 10.0, 0.0), True),  # a flat bar with no volume
        (("A", 0, 10.0, 9.5, 9.0, 9.2, 1.0), False),  # open above high
        (("A", 0, 10.0, 11.0, 10.5, 10.8, 1.0), False),  # open below low
        (("A", 0, 10.0, 11.0, 0.0, 10.0, 1.0), False),  # zero low
        (("A", 0, 10.0, 11.0, 9.0, 10.0, -1.0), False),  # negative volume
    ],
)
def test_ohlc_sanity(row: tuple[str, int, float, float, float, float, float], passed: bool) -> None:
    outcome = ohlc_sanity(bars([("B", 1, 1.0, 2.0, 0.5, 1.5, 3.0), row]))
    assert outcome.passed is passed
    assert outcome.metadata["bad_rows"] == (0 if passed else 1)


def test_gap_report_counts_per_symbol_and_always_passes() -> None:
    candles = pl.DataFrame(
        {
            "symbol": ["A", "A", "A", "B"],
            "gap_before": [False, True, True, False],
            "missing_bars_before": [0, 2, 5, 0],
            "complete": [True, True, False, True],
        }
    )
    outcome = gap_report(candles)
    assert outcome.passed
    assert (outcome.metadata["gaps"], outcome.metadata["missing_bars"]) == (2, 7)
    assert outcome.metadata["per_symbol"]["A"] == {
        "bars": 3,
        "gaps": 2,
        "missing_bars": 7,
        "largest_gap_bars": 5,
        "incomplete_bars": 1,
    }


@pytest.mark.parametrize(
    ("age", "passed"),
    [
        (timedelta(hours=1), True),  # fresh
        (timedelta(hours=3), True),  # exactly the limit
        (timedelta(hours=3, seconds=1), False),  # stale
        (None, False),  # an empty table
    ],
)
def test_freshness(age: timedelta | None, passed: bool) -> None:
    now = T0 + timedelta(days=1)
    latest = None if age is None else now - age
    assert freshness(latest, now=now).passed is passed


@pytest.mark.parametrize(
    ("scores", "passed", "share"),
    [
        ([0.5, -0.2, 0.0], True, 1.0),  # every post scored
        ([0.5, None, 0.0], False, 0.6667),  # one unscored post
        ([], True, 1.0),  # no posts yet
    ],
)
def test_sentiment_coverage(scores: list[float | None], passed: bool, share: float) -> None:
    posts = pl.DataFrame(
        {
            "score": scores,
            "label": ["neutral"] * len(scores),
            "sentiment_model": ["lexicon"] * len(scores),
            "symbols": [["BTC"]] * len(scores),
        },
        schema={
            "score": pl.Float64,
            "label": pl.String,
            "sentiment_model": pl.String,
            "symbols": pl.List(pl.String),
        },
    )
    outcome = sentiment_coverage(posts)
    assert (outcome.passed, outcome.metadata["scored_share"]) == (passed, share)


def test_a_check_on_a_table_without_its_columns_names_them() -> None:
    with pytest.raises(SchemaError, match=r"\['volume'\]"):
        ohlc_sanity(
            pl.DataFrame({"symbol": [], "ts": [], "open": [], "high": [], "low": [], "close": []})
        )
