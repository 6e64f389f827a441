"""A fee-aware, one-asset backtest of direction probabilities against buy-and-hold.

Timing: row ``t`` holds the probability of up known at time ``t`` and the realised simple return
from ``t`` to the next row. The position for that holding period is decided from the probability
at ``t`` alone (long when ``prob_up >= long_threshold``; short when ``prob_up <=
short_threshold`` in ``long_short`` mode; otherwise flat), so nothing from the future is used.

Horizons above one hour: rows must not overlap, or returns would be counted twice. The
recommended way (and the one the training code uses) is to trade **hourly on the 1 h realised
return**, deciding each hour from that hour's h-hour probability; the alternative is to keep every
h-th row (``prob[::h]`` with the h-hour return) and set ``periods_per_year = 8760 / h``.

Costs: every unit of position change pays ``fee_bps + slippage_bps`` basis points of equity,
applied multiplicatively (equity times ``(1 - c) ** |change|``), including the entry at the first
row and the liquidation after the last one. A long-to-short flip is two units. Buy-and-hold is the
same engine with a position of 1 throughout (one entry, one exit).

Sign conventions: ``max_drawdown`` is negative (``-0.25`` is a 25 % fall from a peak, the initial
equity of 1 counting as a peak); statistics that are undefined (e.g. Sortino with no losing
period) are NaN, and ``None`` in ``to_dict()``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from warehouse.errors import DataError

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "PerformanceMetrics",
    "positions_from_probabilities",
    "run_backtest",
]


class BacktestConfig(BaseModel):
    """Options of one backtest.

    Attributes:
        long_threshold: go long when ``prob_up >= long_threshold``; default 0.55.
        short_threshold: go short when ``prob_up <= short_threshold`` (``long_short`` only);
            default 0.45.
        mode: ``"long_flat"`` (default) or ``"long_short"``.
        fee_bps: exchange fee per unit of position change, in basis points; default 10.
        slippage_bps: slippage per unit of position change, in basis points; default 5.
        periods_per_year: rows per year, for annualising; default 8760 (hourly).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    short_threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    mode: Literal["long_flat", "long_short"] = "long_flat"
    fee_bps: float = Field(default=10.0, ge=0.0)
    slippage_bps: float = Field(default=5.0, ge=0.0)
    periods_per_year: float = Field(default=8760.0, gt=0.0)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> BacktestConfig:
        if self.short_threshold >= self.long_threshold:
            raise ValueError(
                f"short_threshold {self.short_threshold} must be below "
                f"long_threshold {self.long_threshold}"
            )
        return self

    @property
    def cost_rate(self) -> float:
        """Cost of one unit of position change, as a fraction of equity."""
        return (self.fee_bps + self.slippage_bps) / 10_000


@dataclass(frozen=True)
class PerformanceMetrics:
    """Performance of one position series (see the module docstring for conventions).

    Attributes:
        total_return: final equity minus 1.
        annualised_return: geometric, ``equity ** (periods_per_year / n) - 1``.
        sharpe: mean over standard deviation (ddof 1) of period returns, annualised.
        sortino: mean over downside deviation (target 0) of period returns, annualised.
        calmar: annualised return over the absolute maximum drawdown.
        max_drawdown: the deepest fall from a running peak, negative or 0.
        win_rate: share of trades whose return after costs is above 0.
        profit_factor: sum of winning trade returns over the absolute sum of losing ones.
        turnover: total units of position change, liquidation included.
        n_trades: number of runs of one non-zero position.
        exposure: share of periods with a non-zero position.
        n_periods: number of periods.
    """

    total_return: float
    annualised_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    turnover: float
    n_trades: int
    exposure: float
    n_periods: int

    def to_dict(self) -> dict[str, float | int | None]:
        """The metrics as JSON-serialisable values; NaN and infinities become ``None``."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """A backtest's curves and metrics, beside buy-and-hold over the same rows.

    ``equity[i]`` is the equity at the end of the holding period that starts at
    ``timestamps[i]`` (the last one after liquidation); the curves start from 1.
    """

    config: BacktestConfig
    timestamps: np.ndarray | None
    positions: np.ndarray
    net_returns: np.ndarray
    equity: np.ndarray
    buy_and_hold_equity: np.ndarray
    strategy: PerformanceMetrics
    buy_and_hold: PerformanceMetrics

    def to_dict(self, *, include_curve: bool = False) -> dict[str, Any]:
        """Config and metrics (and with ``include_curve=True``, default False, the curves)."""
        out: dict[str, Any] = {
            "config": self.config.model_dump(),
            "strategy": self.strategy.to_dict(),
            "buy_and_hold": self.buy_and_hold.to_dict(),
            "excess_total_return": self.strategy.total_return - self.buy_and_hold.total_return,
        }
        if include_curve:
            stamps = None if self.timestamps is None else [str(t) for t in self.timestamps]
            out["curve"] = {
                "timestamps": stamps,
                "position": self.positions.tolist(),
                "equity": self.equity.tolist(),
                "buy_and_hold_equity": self.buy_and_hold_equity.tolist(),
            }
        return out

    def scalars(self, *, prefix: str = "") -> dict[str, float]:
        """Finite metrics as ``{prefix}strategy_<name>`` and ``{prefix}buy_and_hold_<name>``."""
        out: dict[str, float] = {}
        for side in ("strategy", "buy_and_hold"):
            metrics = getattr(self, side).to_dict()
            out.update(
                {f"{prefix}{side}_{k}": float(v) for k, v in metrics.items() if v is not None}
            )
        return out


def positions_from_probabilities(
    prob_up: np.ndarray, config: BacktestConfig | None = None
) -> np.ndarray:
    """Positions in ``{-1, 0, 1}`` from the probabilities of up.

    Args:
        prob_up: probabilities of up, one per row.
        config: thresholds and mode; ``None`` means ``BacktestConfig()``.
    """
    cfg = config or BacktestConfig()
    p = np.asarray(prob_up, dtype=float)
    pos = np.where(p >= cfg.long_threshold, 1.0, 0.0)
    if cfg.mode == "long_short":
        pos = np.where(p <= cfg.short_threshold, -1.0, pos)
    return pos


def run_backtest(
    prob_up: np.ndarray,
    realised_return: np.ndarray,
    *,
    timestamps: np.ndarray | None = None,
    config: BacktestConfig | None = None,
) -> BacktestResult:
    """Trade the probabilities and compare with buy-and-hold over the same rows.

    Args:
        prob_up: probability of up known at each row's time.
        realised_return: simple return from each row's time to the next row's.
        timestamps: one per row, strictly increasing; ``None`` (default) leaves the curve
            unlabelled.
        config: thresholds, mode, costs; ``None`` means ``BacktestConfig()``.

    Raises:
        DataError: when there are no rows, lengths differ, values are not finite, a return is
            below -1, or the timestamps are not strictly increasing.
    """
    cfg = config or BacktestConfig()
    p = _finite_1d(prob_up, "prob_up")
    r = _finite_1d(realised_return, "realised_return")
    if len(p) != len(r):
        raise DataError(f"prob_up has {len(p)} rows, realised_return {len(r)}")
    if np.any(r < -1):
        raise DataError(f"realised_return: {int(np.sum(r < -1))} simple returns below -1")
    stamps = _check_timestamps(timestamps, len(r))
    positions = positions_from_probabilities(p, cfg)
    net, equity, trades = _simulate(positions, r, cfg.cost_rate)
    hold = np.ones_like(r)
    hold_net, hold_equity, hold_trades = _simulate(hold, r, cfg.cost_rate)
    return BacktestResult(
        config=cfg,
        timestamps=stamps,
        positions=positions,
        net_returns=net,
        equity=equity,
        buy_and_hold_equity=hold_equity,
        strategy=_performance(positions, net, equity, trades, cfg.periods_per_year),
        buy_and_hold=_performance(hold, hold_net, hold_equity, hold_trades, cfg.periods_per_year),
    )


def _simulate(
    positions: np.ndarray, returns: np.ndarray, cost_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Net period returns, the equity curve and the per-trade returns after costs."""
    previous = np.concatenate([[0.0], positions[:-1]])
    change = np.abs(positions - previous)
    change[-1] += abs(positions[-1])  # liquidation after the last period
    keep = 1.0 - cost_rate
    factors = keep**change * (1.0 + positions * returns)
    equity = np.cumprod(factors)
    trade_factors = []
    start = 0
    for end in range(1, len(positions) + 1):
        if end == len(positions) or positions[end] != positions[start]:
            if positions[start] != 0:
                units = abs(positions[start])
                gross = np.prod(1.0 + positions[start:end] * returns[start:end])
                trade_factors.append(keep ** (2 * units) * gross)
            start = end
    return factors - 1.0, equity, np.asarray(trade_factors) - 1.0


def _performance(
    positions: np.ndarray,
    net: np.ndarray,
    equity: np.ndarray,
    trades: np.ndarray,
    periods_per_year: float,
) -> PerformanceMetrics:
    n = len(net)
    final = float(equity[-1])
    annualised = _annualise(final, periods_per_year / n)
    mean = float(net.mean())
    std = float(net.std(ddof=1)) if n > 1 else float("nan")
    downside = math.sqrt(float(np.mean(np.minimum(net, 0.0) ** 2)))
    sqrt_year = math.sqrt(periods_per_year)
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    max_drawdown = float(np.min(equity / peaks - 1.0))
    wins = trades[trades > 0]
    losses = trades[trades < 0]
    return PerformanceMetrics(
        total_return=final - 1.0,
        annualised_return=annualised,
        sharpe=_ratio(mean, std) * sqrt_year,
        sortino=_ratio(mean, downside) * sqrt_year,
        calmar=_ratio(annualised, abs(max_drawdown)),
        max_drawdown=max_drawdown,
        win_rate=len(wins) / len(trades) if len(trades) else float("nan"),
        profit_factor=_ratio(float(wins.sum()), abs(float(losses.sum()))),
        turnover=float(np.sum(np.abs(np.diff(np.concatenate([[0.0], positions, [0.0]]))))),
        n_trades=len(trades),
        exposure=float(np.mean(positions != 0)),
        n_periods=n,
    )


def _annualise(final_equity: float, periods_scale: float) -> float:
    """``final_equity ** periods_scale - 1``; -1 when the equity is gone, inf on overflow."""
    if final_equity <= 0:
        return -1.0
    try:
        return final_equity**periods_scale - 1.0
    except OverflowError:
        return math.inf


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; 0 when both are 0, NaN when only the denominator is 0 or NaN."""
    if math.isnan(denominator) or denominator == 0:
        return 0.0 if numerator == 0 else float("nan")
    return numerator / denominator


def _finite_or_none(value: float | int) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _finite_1d(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    bad = int(np.sum(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{name}: {bad} of {arr.size} values are NaN or infinite")
    return arr


def _check_timestamps(timestamps: np.ndarray | None, n: int) -> np.ndarray | None:
    if timestamps is None:
        return None
    stamps = np.asarray(timestamps)
    if stamps.shape != (n,):
        raise DataError(f"timestamps: expected {n} values, got shape {stamps.shape}")
    if stamps.dtype.kind in "Mmiuf" and n > 1:
        steps = np.diff(stamps)
        bad = int(np.sum(steps <= np.zeros(1, dtype=steps.dtype)))
        if bad:
            first = int(np.argmax(steps <= np.zeros(1, dtype=steps.dtype)))
            raise DataError(
                f"timestamps must be strictly increasing: {bad} steps are not, first at row "
                f"{first + 1} ({stamps[first]} -> {stamps[first + 1]})"
            )
    return stamps
