"""Plausible hourly candles for machines with no market data.

Model: hourly log returns follow a GARCH(1,1) with Student-t innovations (ν = 4), which gives the
heavy tails and volatility clustering of real crypto returns. Every symbol loads on a common
market factor (the first symbol plays BTC) plus its own GARCH noise, so cross-asset features have
something to find. Intra-hour high/low extend the open-close range by a half-normal multiple of
the hour's volatility; volume is log-normal and rises with the absolute return.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from warehouse.topics import INTERVALS_MS

HOUR_MS = INTERVALS_MS["1h"]

START_PRICES = {"BTC": 40_000.0, "ETH": 2_200.0, "SOL": 60.0, "BNB": 230.0, "XRP": 0.6}


@dataclass(frozen=True)
class SimulationOptions:
    """Parameters of the simulator (the defaults give about 60 % annualised volatility).

    Attributes:
        omega, alpha, beta: GARCH(1,1) parameters of the hourly variance.
        dof: Student-t degrees of freedom of the innovations.
        market_beta: loading of every non-market symbol on the market factor.
        drift: hourly log drift.
    """

    omega: float = 8.0e-7
    alpha: float = 0.08
    beta: float = 0.90
    dof: float = 4.0
    market_beta: float = 0.8
    drift: float = 0.0


def simulate_candles(
    symbols: Sequence[str],
    *,
    hours: int,
    seed: int = 0,
    end_ms: int | None = None,
    options: SimulationOptions = SimulationOptions(),
) -> Iterator[dict[str, object]]:
    """Yield ``market.candles`` messages: ``hours`` hourly bars per symbol, in time order.

    Args:
        symbols: exchange symbols, e.g. ``["BTCUSDT", "ETHUSDT"]``; the first is the market factor.
        hours: bars per symbol.
        seed: random seed; the same seed gives the same candles.
        end_ms: open time of the last bar (default: the last full hour before now).
        options: model parameters.
    """
    rng = np.random.default_rng(seed)
    if end_ms is None:
        import time

        end_ms = (int(time.time() * 1000) // HOUR_MS - 1) * HOUR_MS
    start_ms = end_ms - (hours - 1) * HOUR_MS
    market = _garch_returns(rng, hours, options)
    paths = []
    for index, symbol in enumerate(symbols):
        own = _garch_returns(rng, hours, options)
        returns = market if index == 0 else options.market_beta * market + 0.6 * own
        start = _start_price(symbol, rng)
        closes = start * np.exp(np.cumsum(returns + options.drift))
        opens = np.concatenate([[start], closes[:-1]])
        sigma = np.sqrt(np.maximum(_rolling_var(returns), options.omega / (1 - options.alpha)))
        wick_up = np.abs(rng.normal(0, 1, hours)) * sigma * 0.5
        wick_down = np.abs(rng.normal(0, 1, hours)) * sigma * 0.5
        highs = np.maximum(opens, closes) * np.exp(wick_up)
        lows = np.minimum(opens, closes) * np.exp(-wick_down)
        base_volume = 1_000_000 / start
        volumes = base_volume * np.exp(rng.normal(0, 0.4, hours)) * (1 + 40 * np.abs(returns))
        paths.append((symbol, opens, highs, lows, closes, volumes))
    for hour in range(hours):
        open_time = start_ms + hour * HOUR_MS
        for symbol, opens, highs, lows, closes, volumes in paths:
            yield {
                "symbol": symbol,
                "interval": "1h",
                "open_time": open_time,
                "open": float(opens[hour]),
                "high": float(highs[hour]),
                "low": float(lows[hour]),
                "close": float(closes[hour]),
                "volume": float(volumes[hour]),
                "source": "simulator",
            }


def _garch_returns(rng: np.random.Generator, n: int, options: SimulationOptions) -> np.ndarray:
    shocks = rng.standard_t(options.dof, n) / np.sqrt(options.dof / (options.dof - 2))
    variance = options.omega / (1 - options.alpha - options.beta)
    returns = np.empty(n)
    for i in range(n):
        returns[i] = np.sqrt(variance) * shocks[i]
        variance = options.omega + options.alpha * returns[i] ** 2 + options.beta * variance
    return returns


def _rolling_var(returns: np.ndarray, window: int = 24) -> np.ndarray:
    squared = returns**2
    cumulative = np.cumsum(np.concatenate([[0.0], squared]))
    counts = np.minimum(np.arange(1, len(returns) + 1), window)
    starts = np.arange(1, len(returns) + 1) - counts
    return (cumulative[1:] - cumulative[starts]) / counts


def _start_price(symbol: str, rng: np.random.Generator) -> float:
    for prefix, price in START_PRICES.items():
        if symbol.upper().startswith(prefix):
            return price
    return float(rng.uniform(1, 100))


@dataclass(frozen=True)
class LastBar:
    """Where a symbol's history stops: the open time (ms) and close of its newest bar."""

    open_time_ms: int
    close: float


class CandleStream:
    """Hour after hour of simulated candles that continue each symbol from its last bar.

    The same model as :func:`simulate_candles` (GARCH(1,1)-t returns on a common market factor),
    kept as running state so a live source can ask for one more hour at a time. Each symbol
    opens at its last close; symbols without history start at :data:`START_PRICES` one hour
    after the newest bar of any symbol (or ``start_ms``).

    Args:
        symbols: exchange symbols; the first is the market factor.
        last: symbol -> its last bar in the lake (symbols missing here start fresh).
        start_ms: open time of the first bar of symbols without history and no other history
            (default: the last full hour before now).
        seed: random seed.
        options: model parameters.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        last: dict[str, LastBar],
        *,
        start_ms: int | None = None,
        seed: int = 0,
        options: SimulationOptions = SimulationOptions(),
    ) -> None:
        self.symbols = list(symbols)
        self.options = options
        self.rng = np.random.default_rng(seed)
        if start_ms is None:
            import time

            start_ms = (int(time.time() * 1000) // HOUR_MS - 1) * HOUR_MS
        newest = max((bar.open_time_ms for bar in last.values()), default=start_ms - HOUR_MS)
        self.next_open_ms = newest + HOUR_MS
        self.close = {
            s: last[s].close if s in last else _start_price(s, self.rng) for s in self.symbols
        }
        unconditional = options.omega / (1 - options.alpha - options.beta)
        self.variance = dict.fromkeys(["__market__", *self.symbols], unconditional)

    def _shock(self, name: str) -> float:
        o = self.options
        draw = float(self.rng.standard_t(o.dof)) / float(np.sqrt(o.dof / (o.dof - 2)))
        value = float(np.sqrt(self.variance[name])) * draw
        self.variance[name] = o.omega + o.alpha * value**2 + o.beta * self.variance[name]
        return value

    def next_hour(self) -> list[dict[str, object]]:
        """The bars of the next hour, one per symbol (``market.candles`` messages)."""
        o = self.options
        open_time = self.next_open_ms
        market = self._shock("__market__")
        bars = []
        for index, symbol in enumerate(self.symbols):
            own = self._shock(symbol)
            ret = market if index == 0 else o.market_beta * market + 0.6 * own
            open_ = self.close[symbol]
            close = open_ * float(np.exp(ret + o.drift))
            sigma = float(np.sqrt(max(self.variance[symbol], o.omega / (1 - o.alpha))))
            high = max(open_, close) * float(np.exp(abs(self.rng.normal()) * sigma * 0.5))
            low = min(open_, close) * float(np.exp(-abs(self.rng.normal()) * sigma * 0.5))
            volume = (
                (1_000_000 / open_) * float(np.exp(self.rng.normal(0, 0.4))) * (1 + 40 * abs(ret))
            )
            bars.append(
                {
                    "symbol": symbol,
                    "interval": "1h",
                    "open_time": open_time,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "source": "simulator",
                }
            )
            self.close[symbol] = close
        self.next_open_ms = open_time + HOUR_MS
        return bars
