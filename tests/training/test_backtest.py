"""Fee-aware backtest: known trades, exact costs, drawdowns, buy-and-hold, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from training.backtest import BacktestConfig, positions_from_probabilities, run_backtest
from warehouse.errors import DataError

FREE = BacktestConfig(fee_bps=0.0, slippage_bps=0.0)
RETURNS = np.array([0.1, -0.05, 0.2, 0.1, -0.1])


def test_always_long_without_costs_is_buy_and_hold() -> None:
    result = run_backtest(np.ones(5), RETURNS, config=FREE)
    np.testing.assert_array_equal(result.equity, result.buy_and_hold_equity)
    assert result.strategy.to_dict() == result.buy_and_hold.to_dict()
    assert result.strategy.total_return == pytest.approx(np.prod(1 + RETURNS) - 1)


@pytest.mark.parametrize(
    ("fee_bps", "slippage_bps"),
    [
        (10.0, 5.0),  # the defaults: 15 bps per unit of position change
        (0.0, 30.0),  # slippage alone
        (100.0, 0.0),  # a punitive 1 % fee
    ],
)
def test_costs_reduce_return_by_the_exact_amount(fee_bps: float, slippage_bps: float) -> None:
    config = BacktestConfig(fee_bps=fee_bps, slippage_bps=slippage_bps)
    c = (fee_bps + slippage_bps) / 10_000
    result = run_backtest(np.ones(5), RETURNS, config=config)
    # one entry and one exit, each a unit of turnover
    expected = (1 - c) ** 2 * np.prod(1 + RETURNS) - 1
    assert result.strategy.total_return == pytest.approx(expected, rel=1e-12)
    assert result.buy_and_hold.total_return == pytest.approx(expected, rel=1e-12)
    assert result.strategy.turnover == 2.0


def test_long_flat_known_trades() -> None:
    prob = np.array([0.6, 0.6, 0.5, 0.4, 0.6])  # positions 1, 1, 0, 0, 1
    c = 0.0015
    result = run_backtest(prob, RETURNS)
    assert list(result.positions) == [1, 1, 0, 0, 1]
    expected_equity = np.cumprod(
        [
            (1 - c) * 1.1,  # enter long, earn +10 %
            0.95,  # stay long, lose 5 %
            (1 - c),  # exit: flat, the +20 % is missed
            1.0,  # flat
            (1 - c) * 0.9 * (1 - c),  # enter, lose 10 %, liquidate at the end
        ]
    )
    np.testing.assert_allclose(result.equity, expected_equity, rtol=1e-12)
    s = result.strategy
    assert s.n_trades == 2
    assert s.turnover == 4.0
    assert s.exposure == pytest.approx(0.6)
    trade_1 = (1 - c) ** 2 * 1.1 * 0.95 - 1  # +4.2 % after costs
    trade_2 = (1 - c) ** 2 * 0.9 - 1  # -10.3 %
    assert s.win_rate == 0.5
    assert s.profit_factor == pytest.approx(trade_1 / -trade_2)
    assert s.total_return == pytest.approx((1 + trade_1) * (1 + trade_2) - 1)


def test_long_short_flip_costs_two_units() -> None:
    config = BacktestConfig(mode="long_short", fee_bps=10.0, slippage_bps=0.0)
    prob = np.array([0.7, 0.3, 0.3])  # long, then short twice
    returns = np.array([0.02, -0.03, 0.01])
    result = run_backtest(prob, returns, config=config)
    assert list(result.positions) == [1, -1, -1]
    c = 0.001
    expected = (1 - c) * 1.02 * (1 - c) ** 2 * 1.03 * 0.99 * (1 - c)
    assert result.equity[-1] == pytest.approx(expected, rel=1e-12)
    assert result.strategy.turnover == 4.0  # enter 1 + flip 2 + exit 1
    assert result.strategy.n_trades == 2


@pytest.mark.parametrize(
    ("prob", "mode", "expected"),
    [
        ([0.55, 0.549, 0.45, 0.2], "long_flat", [1, 0, 0, 0]),  # thresholds are inclusive
        ([0.55, 0.549, 0.45, 0.2], "long_short", [1, 0, -1, -1]),  # short only in long_short
        ([0.5, 0.5], "long_short", [0, 0]),  # undecided: flat
    ],
)
def test_positions_table(prob: list[float], mode: str, expected: list[int]) -> None:
    config = BacktestConfig(mode=mode)
    assert list(positions_from_probabilities(np.array(prob), config)) == expected


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([0.1, -0.5, 0.2], -0.5),  # 1.1 -> 0.55: half of the peak
        ([-0.2, 0.1, 0.1], -0.2),  # a loss in the first period counts (initial equity is a peak)
        ([0.1, 0.1, 0.1], 0.0),  # never below a peak
        ([0.5, -0.2, -0.5, 1.0], 0.6 / 1.5 - 1),  # 1.5 -> 1.2 -> 0.6 -> 1.2: peak 1.5
    ],
)
def test_max_drawdown_of_known_curves(returns: list[float], expected: float) -> None:
    result = run_backtest(np.ones(len(returns)), np.array(returns), config=FREE)
    assert result.strategy.max_drawdown == pytest.approx(expected)


def test_ratios_by_hand() -> None:
    returns = np.array([0.01, -0.02, 0.03, 0.01])
    config = BacktestConfig(fee_bps=0.0, slippage_bps=0.0, periods_per_year=4)
    s = run_backtest(np.ones(4), returns, config=config).strategy
    mean = returns.mean()
    assert s.sharpe == pytest.approx(mean / returns.std(ddof=1) * 2)
    assert s.sortino == pytest.approx(mean / math.sqrt(0.02**2 / 4) * 2)
    final = np.prod(1 + returns)
    assert s.annualised_return == pytest.approx(final - 1)  # four periods make a year
    assert s.max_drawdown == pytest.approx(-0.02)
    assert s.calmar == pytest.approx((final - 1) / 0.02)
    assert s.win_rate == 1.0  # one trade, and it made money
    assert math.isnan(s.profit_factor)  # no losing trade: undefined


def test_flat_strategy_has_zero_ratios_and_serialises() -> None:
    result = run_backtest(np.full(4, 0.5), np.array([0.01, -0.01, 0.02, 0.0]))
    s = result.strategy
    assert (s.total_return, s.sharpe, s.sortino, s.n_trades, s.exposure) == (0, 0, 0, 0, 0)
    assert math.isnan(s.win_rate)
    payload = result.to_dict(include_curve=True)
    json.dumps(payload, allow_nan=False)
    assert payload["strategy"]["win_rate"] is None
    assert payload["excess_total_return"] == pytest.approx(-result.buy_and_hold.total_return)
    assert payload["curve"]["position"] == [0, 0, 0, 0]
    scalars = result.scalars(prefix="bt_")
    assert "bt_strategy_win_rate" not in scalars
    assert scalars["bt_buy_and_hold_n_trades"] == 1.0


def test_decisions_use_only_the_probability_at_t() -> None:
    rng = np.random.default_rng(8)
    prob = rng.random(200)
    returns = rng.normal(0, 0.01, 200)
    base = run_backtest(prob, returns)
    changed = prob.copy()
    changed[150:] = 1 - changed[150:]  # rewrite the future of the forecast
    other = run_backtest(changed, returns)
    np.testing.assert_array_equal(base.positions[:150], other.positions[:150])
    np.testing.assert_array_equal(base.equity[:149], other.equity[:149])


def test_timestamps_are_kept_and_must_increase() -> None:
    stamps = np.array(["2023-01-01T00", "2023-01-01T01", "2023-01-01T03"], dtype="datetime64[h]")
    result = run_backtest(np.ones(3), np.zeros(3), timestamps=stamps)
    assert result.to_dict(include_curve=True)["curve"]["timestamps"][2] == "2023-01-01T03"
    with pytest.raises(DataError, match=r"strictly increasing.*row 2"):
        run_backtest(np.ones(3), np.zeros(3), timestamps=stamps[[0, 2, 1]])
    with pytest.raises(DataError, match="expected 3 values"):
        run_backtest(np.ones(3), np.zeros(3), timestamps=stamps[:2])


@pytest.mark.parametrize(
    ("prob", "returns", "message"),
    [
        ([], [], "non-empty"),  # nothing to trade
        ([0.6, 0.6], [0.01], "rows"),  # misaligned
        ([0.6, float("nan")], [0.01, 0.02], "NaN"),  # a missing forecast
        ([0.6], [-1.5], "below -1"),  # not a simple return
    ],
)
def test_run_backtest_rejects_bad_input(
    prob: list[float], returns: list[float], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        run_backtest(np.array(prob), np.array(returns))


@pytest.mark.parametrize(
    "options",
    [
        {"long_threshold": 0.5, "short_threshold": 0.5},  # thresholds must not meet
        {"mode": "short_only"},  # unknown mode
        {"fee_bps": -1.0},  # negative cost
        {"leverage": 2},  # unknown option
    ],
)
def test_config_rejects_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BacktestConfig(**options)


def test_equity_figure_renders_png(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    from training.plots import equity_curve_figure, save_png

    rng = np.random.default_rng(2)
    stamps = np.arange("2023-01-01T00", "2023-01-05T00", dtype="datetime64[h]")
    result = run_backtest(
        rng.random(len(stamps)), rng.normal(0, 0.01, len(stamps)), timestamps=stamps
    )
    path = save_png(equity_curve_figure(result), tmp_path / "equity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    untimed = run_backtest(np.ones(3), np.zeros(3))
    assert save_png(equity_curve_figure(untimed), tmp_path / "untimed.png").stat().st_size > 0
