"""The paper-trading ledger on real Delta tables: hand-checked fills, fees and equity; point in
time; which model version is followed; continuing run after run; a run cut between its commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable

from training.backtest import BacktestConfig, positions_from_probabilities
from training.paper_ledger import paper_portfolio_from_lake
from training.paper_trading import PORTFOLIO, PaperTradingConfig, fills_after_signals
from warehouse.catalog import GOLD_PAPER_EQUITY, GOLD_PAPER_TRADES, GOLD_PREDICTIONS, SILVER_CANDLES
from warehouse.errors import ConfigError
from warehouse.lake import Lake, overwrite, read_table

T0 = datetime(2024, 1, 1, tzinfo=UTC)
K = 1 - 0.0015
"""What one unit of position change leaves of the equity: 10 bp fee + 5 bp slippage."""


def hour(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def write_candles(lake: Lake, bars: dict[str, dict[int, tuple[float, float]]]) -> None:
    """``symbol -> {hour: (open, close)}`` into silver/candles (ms timestamps, as silver has)."""
    rows = [
        {"symbol": s, "ts": hour(h), "open": o, "close": c}
        for s, by_hour in bars.items()
        for h, (o, c) in by_hour.items()
    ]
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
    overwrite(lake.location(SILVER_CANDLES), frame)


def prediction_frame(
    symbol: str, probs: dict[int, float], *, version: int = 1, predicted_at: int = 1000
) -> pl.DataFrame:
    """1 h predictions of one model version in the gold/predictions schema."""
    return pl.DataFrame(
        {
            "symbol": symbol,
            "ts": [hour(h) for h in probs],
            "horizon_hours": 1,
            "predicted_return": 0.0,
            "direction_probability": list(probs.values()),
            "model_name": "marketlake-price",
            "model_version": version,
            "predicted_at": hour(predicted_at),
        },
        schema_overrides={
            "ts": pl.Datetime("us", "UTC"),
            "predicted_at": pl.Datetime("us", "UTC"),
            "horizon_hours": pl.Int32,
            "model_version": pl.Int64,
        },
    )


def write_predictions(lake: Lake, *frames: pl.DataFrame) -> None:
    overwrite(lake.location(GOLD_PREDICTIONS), pl.concat(frames))


def ledger(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
    trades = read_table(lake.location(GOLD_PAPER_TRADES)).sort("symbol", "fill_ts")
    equity = read_table(lake.location(GOLD_PAPER_EQUITY)).sort("symbol", "ts")
    return trades, equity


E2 = K * 105 / 102  # case 1: long from 102 to 105
E3 = K * 1.02 * K**2 * (1 + 2 / 102)  # case 4: long to 102, then short from 102 to 100


@pytest.mark.parametrize(
    ("mode", "probs", "bars", "trades", "equity"),
    [
        # flat -> long -> short: nothing at 1 (0.50 is flat), buy 1 unit at the open of 2, sell
        # 2 units (a flip) at the open of 3; the short earns 5 / 105 of the bar's fall
        (
            "long_short",
            {0: 0.50, 1: 0.60, 2: 0.40},
            {0: (100, 100), 1: (100, 102), 2: (102, 105), 3: (105, 100)},
            [(2, 1, 0, 1, 102.0, 1 - K), (3, 2, 1, -1, 105.0, E2 * (1 - K**2))],
            [
                (1, 0, 1.0, K * 1.02),
                (2, 1, E2, K * 1.05),
                (3, -1, E2 * K**2 * (1 + 5 / 105), K * 1.00),
            ],
        ),
        # the same probabilities long/flat: the short signal only closes the long (1 unit)
        (
            "long_flat",
            {0: 0.50, 1: 0.60, 2: 0.40},
            {0: (100, 100), 1: (100, 102), 2: (102, 105), 3: (105, 100)},
            [(2, 1, 0, 1, 102.0, 1 - K), (3, 2, 1, 0, 105.0, E2 * (1 - K))],
            [(1, 0, 1.0, K * 1.02), (2, 1, E2, K * 1.05), (3, 0, E2 * K, K * 1.00)],
        ),
        # long through an opening gap: the held position earns open / previous close - 1
        (
            "long_short",
            {0: 0.60, 1: 0.60},
            {0: (100, 100), 1: (100, 110), 2: (99, 99)},
            [(1, 0, 0, 1, 100.0, 1 - K)],
            [(1, 1, K * 1.1, K * 1.1), (2, 1, K * 0.99, K * 0.99)],
        ),
        # no prediction at 1: the position is kept at 2; no bar at 4: the flat signal of 3
        # fills at the open of 5 (98), after the short earned the gap from 100 to 98
        (
            "long_short",
            {0: 0.60, 2: 0.30, 3: 0.50, 5: 0.50},
            {0: (100, 100), 1: (100, 101), 2: (101, 102), 3: (102, 100), 5: (98, 97)},
            [
                (1, 0, 0, 1, 100.0, 1 - K),
                (3, 2, 1, -1, 102.0, K * 1.02 * (1 - K**2)),
                (5, 3, -1, 0, 98.0, E3 * 1.02 * (1 - K)),
            ],
            [
                (1, 1, K * 1.01, K * 1.01),
                (2, 1, K * 1.02, K * 1.02),
                (3, -1, E3, K * 1.00),
                (5, 0, E3 * 1.02 * K, K * 0.97),
            ],
        ),
    ],
)
def test_fills_at_the_next_open_with_the_backtest_fees(
    tmp_path: Path,
    mode: str,
    probs: dict[int, float],
    bars: dict[int, tuple[float, float]],
    trades: list[tuple[int, int, int, int, float, float]],
    equity: list[tuple[int, int, float, float]],
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_candles(lake, {"AAAUSDT": bars})
    write_predictions(lake, prediction_frame("AAAUSDT", probs))
    config = PaperTradingConfig(rule=BacktestConfig(mode=mode))  # type: ignore[arg-type]
    report = paper_portfolio_from_lake(lake, config)
    stored_trades, stored_equity = ledger(lake)

    got = stored_trades.select(
        "fill_ts", "signal_ts", "from_position", "to_position", "price", "fee"
    ).rows()
    assert len(got) == len(trades)
    for row, (fill, signal, before, after, price, fee) in zip(got, trades, strict=True):
        assert row[:5] == (hour(fill), hour(signal), before, after, price)
        assert row[5] == pytest.approx(fee, rel=1e-12)
    assert set(stored_trades["fee_bp"]) == {15.0}
    assert set(stored_trades["side"]) <= {"buy", "sell"}

    symbol = stored_equity.filter(pl.col("symbol") == "AAAUSDT")
    portfolio = stored_equity.filter(pl.col("symbol") == PORTFOLIO)
    assert symbol["ts"].to_list() == [hour(h) for h, *_ in equity]
    assert symbol["position"].to_list() == [float(p) for _, p, *_ in equity]
    assert symbol["equity"].to_list() == pytest.approx([e for *_, e, _ in equity], rel=1e-12)
    assert symbol["buy_and_hold_equity"].to_list() == pytest.approx(
        [b for *_, b in equity], rel=1e-12
    )
    peaks = np.maximum.accumulate([1.0, *symbol["equity"]])[1:]
    assert symbol["drawdown"].to_list() == pytest.approx(list(symbol["equity"] / peaks - 1))
    # one symbol: the portfolio is that symbol's book
    assert portfolio["equity"].to_list() == pytest.approx(symbol["equity"].to_list(), rel=1e-12)
    assert report.equity == pytest.approx(equity[-1][2], rel=1e-12)
    assert report.trades_added == report.trades_total == len(trades)


def random_lake(
    root: Path, *, hours: int = 60, seed: int = 5, probs: dict[str, np.ndarray] | None = None
) -> tuple[Lake, dict[str, np.ndarray]]:
    """Two symbols of random-walk candles (each open is the previous close, BBB starts at hour
    20) and random probabilities, so that every case of the rule occurs."""
    rng = np.random.default_rng(seed)
    bars, frames = {}, []
    drawn = {s: rng.uniform(0.3, 0.7, hours) for s in ("AAAUSDT", "BBBUSDT")}
    probs = probs or drawn  # the candles are the same either way
    for symbol, first in (("AAAUSDT", 0), ("BBBUSDT", 20)):
        closes = 100 * np.cumprod(1 + rng.normal(0, 0.01, hours))
        opens = np.concatenate([[100.0], closes[:-1]])
        bars[symbol] = {h: (opens[h], closes[h]) for h in range(first, hours)}
        frames.append(prediction_frame(symbol, {h: probs[symbol][h] for h in range(first, hours)}))
    lake = Lake(str(root / "lake"))
    write_candles(lake, bars)
    write_predictions(lake, *frames)
    return lake, probs


def test_no_fill_uses_a_prediction_of_its_own_hour_or_later(tmp_path: Path) -> None:
    lake, probs = random_lake(tmp_path / "a")
    paper_portfolio_from_lake(lake)
    trades, equity = ledger(lake)
    assert trades.height > 10
    assert fills_after_signals(trades).passed
    # every fill is the rule applied to the prediction of the hour before it
    assert (trades["fill_ts"] - trades["signal_ts"]).unique().to_list() == [timedelta(hours=1)]
    for row in trades.iter_rows(named=True):
        index = (row["signal_ts"] - T0) // timedelta(hours=1)
        p = probs[row["symbol"]][index]
        expected = positions_from_probabilities(np.array([p]), BacktestConfig(mode="long_short"))
        assert row["to_position"] == expected[0] and row["direction_probability"] == p
    # other predictions from hour 40 on change nothing booked up to bar 40
    changed = {s: np.where(np.arange(60) >= 40, 1 - p, p) for s, p in probs.items()}
    other, _ = random_lake(tmp_path / "b", probs=changed)
    paper_portfolio_from_lake(other)
    other_trades, other_equity = ledger(other)
    assert_equal(
        equity.filter(pl.col("ts") <= hour(40)), other_equity.filter(pl.col("ts") <= hour(40))
    )
    assert_equal(
        trades.filter(pl.col("fill_ts") <= hour(40)),
        other_trades.filter(pl.col("fill_ts") <= hour(40)),
    )
    assert not equity.equals(other_equity)


def test_the_first_prediction_of_an_hour_is_followed(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_candles(lake, {"AAAUSDT": {h: (100.0, 100.0) for h in range(6)}})
    # version 1 predicted hours 0-3 first; version 2 later backfilled 0-3 the other way and
    # predicted 4 alone: hours 0-3 follow version 1, hour 4 version 2
    write_predictions(
        lake,
        prediction_frame("AAAUSDT", {0: 0.6, 1: 0.6, 2: 0.6, 3: 0.6}, version=1, predicted_at=10),
        prediction_frame(
            "AAAUSDT", {0: 0.4, 1: 0.4, 2: 0.4, 3: 0.4, 4: 0.4}, version=2, predicted_at=20
        ),
    )
    paper_portfolio_from_lake(lake)
    trades, equity = ledger(lake)
    assert trades.select("fill_ts", "to_position", "model_version").rows() == [
        (hour(1), 1, 1),
        (hour(5), -1, 2),
    ]
    assert equity.filter(pl.col("symbol") == "AAAUSDT")["ts"].to_list() == [
        hour(h) for h in range(1, 6)
    ]


def truncate(lake: Lake, last_hour: int, full: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """The lake as it was when hour ``last_hour`` was the newest (candles and predictions)."""
    candles, predictions = full
    overwrite(lake.location(SILVER_CANDLES), candles.filter(pl.col("ts") <= hour(last_hour)))
    overwrite(lake.location(GOLD_PREDICTIONS), predictions.filter(pl.col("ts") <= hour(last_hour)))


def test_run_after_run_continues_the_same_book(tmp_path: Path) -> None:
    lake, _ = random_lake(tmp_path / "growing")
    full = (read_table(lake.location(SILVER_CANDLES)), read_table(lake.location(GOLD_PREDICTIONS)))
    reference, _ = random_lake(tmp_path / "once")
    paper_portfolio_from_lake(reference)
    expected_trades, expected_equity = ledger(reference)

    modes, before = [], None
    for last_hour in (10, 30, 45, 59):  # BBBUSDT joins the book during the second run
        truncate(lake, last_hour, full)
        modes.append(paper_portfolio_from_lake(lake).mode)
        trades, equity = ledger(lake)
        assert equity.select("symbol", "ts").is_duplicated().sum() == 0
        if before is not None:  # what was booked stays as it was
            kept = trades.join(before[0], on=["symbol", "fill_ts"], how="semi")
            assert_equal(kept, before[0])
            assert trades.height > kept.height
            assert_equal(equity.join(before[1], on=["symbol", "ts"], how="semi"), before[1])
        before = (trades, equity)
    assert modes == ["rebuild", "incremental", "incremental", "incremental"]
    assert_equal(trades, expected_trades)
    assert_equal(equity, expected_equity)

    # nothing new: nothing written
    versions = [
        DeltaTable(lake.location(t).uri).version() for t in (GOLD_PAPER_TRADES, GOLD_PAPER_EQUITY)
    ]
    assert paper_portfolio_from_lake(lake).mode == "up to date"
    assert versions == [
        DeltaTable(lake.location(t).uri).version() for t in (GOLD_PAPER_TRADES, GOLD_PAPER_EQUITY)
    ]


def test_a_symbol_joining_later_adds_capital_not_profit(tmp_path: Path) -> None:
    lake, _ = random_lake(tmp_path)
    paper_portfolio_from_lake(lake)
    _, equity = ledger(lake)
    wide = equity.pivot(on="symbol", index="ts", values="equity").sort("ts")
    values = wide.fill_null(strategy="forward")
    joins = hour(21)  # BBBUSDT's first bar is the one after its first prediction (hour 20)
    at = values["ts"].to_list().index(joins)
    a, b, p = values["AAAUSDT"], values["BBBUSDT"], values[PORTFOLIO]
    assert p[at - 1] == pytest.approx(a[at - 1])  # before: the portfolio is AAA's book
    assert p[at] == pytest.approx(p[at - 1] * (a[at] + b[at]) / (a[at - 1] + 1.0))
    assert p[at + 1] == pytest.approx(p[at] * (a[at + 1] + b[at + 1]) / (a[at] + b[at]))
    assert equity.filter(pl.col("symbol") == PORTFOLIO)["capital"].max() == 2.0


def test_a_run_cut_between_its_two_commits_is_completed_without_duplicates(
    tmp_path: Path,
) -> None:
    lake, _ = random_lake(tmp_path / "growing")
    full = (read_table(lake.location(SILVER_CANDLES)), read_table(lake.location(GOLD_PREDICTIONS)))
    truncate(lake, 30, full)
    paper_portfolio_from_lake(lake)
    equity_table = DeltaTable(lake.location(GOLD_PAPER_EQUITY).uri)
    booked = equity_table.version()
    truncate(lake, 59, full)
    paper_portfolio_from_lake(lake)
    equity_table.update_incremental()
    equity_table.restore(booked)  # as if the run stopped after writing the trades
    assert paper_portfolio_from_lake(lake).mode == "incremental"
    reference, _ = random_lake(tmp_path / "once")
    paper_portfolio_from_lake(reference)
    for got, expected in zip(ledger(lake), ledger(reference), strict=True):
        assert_equal(got, expected)


def test_another_rule_needs_a_rebuild(tmp_path: Path) -> None:
    lake, _ = random_lake(tmp_path)
    paper_portfolio_from_lake(lake)
    long_flat = PaperTradingConfig(rule=BacktestConfig(mode="long_flat"))
    with pytest.raises(ConfigError, match="rebuild=True"):
        paper_portfolio_from_lake(lake, long_flat)
    assert paper_portfolio_from_lake(lake, long_flat, rebuild=True).mode == "rebuild"
    trades, _ = ledger(lake)
    assert trades["to_position"].min() == 0  # never short
    assert trades["rule"].unique().to_list() == [long_flat.rule_json()]


def test_nothing_to_follow_yet_is_skipped(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    write_candles(lake, {"AAAUSDT": {0: (1.0, 1.0)}})
    report = paper_portfolio_from_lake(lake)
    assert (report.mode, report.skipped) == ("skipped", f"{GOLD_PREDICTIONS} does not exist yet")
    write_predictions(lake, prediction_frame("AAAUSDT", {0: 0.6}))
    assert paper_portfolio_from_lake(lake).mode == "up to date"  # bar 1 has not closed yet


def test_the_ledger_is_in_the_analyst_catalog(tmp_path: Path) -> None:
    from warehouse.analyst import open_catalog

    lake, _ = random_lake(tmp_path)
    paper_portfolio_from_lake(lake)
    trades, equity = ledger(lake)
    con = open_catalog(lake)
    hours, last = con.sql(
        "select count(*), max_by(equity, ts) from gold.paper_equity where symbol = '_portfolio'"
    ).fetchone()  # type: ignore[misc]
    portfolio = equity.filter(pl.col("symbol") == PORTFOLIO)
    assert (hours, last) == (portfolio.height, pytest.approx(portfolio["equity"][-1]))
    fills = con.sql("select count(*) from gold.paper_trades where fill_ts > signal_ts").fetchone()
    assert fills == (trades.height,)


def assert_equal(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Same rows (floats to 1e-12 relative)."""
    from polars.testing import assert_frame_equal

    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12)
