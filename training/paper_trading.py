"""Paper trading: follow the stored predictions with the backtest's rule and fees, bar by bar.

The rules (pure functions here; :mod:`training.paper_ledger` stores them in the lake):

- **Signal.** The signal of ``(symbol, ts)`` is the backtest's own threshold rule,
  :func:`training.backtest.positions_from_probabilities`, applied to the probability of up of the
  ``horizon_hours`` prediction made with the features of hour ``ts`` (``gold/predictions``).
  When several model versions predicted the same hour, the first one predicted wins (the
  prediction a live trader had first; ties: the higher version), so a new champion's backfill
  of old hours never rewrites what was already traded.
- **Fill.** The position changes at the **open of the next bar**: bar ``T`` (``silver/candles``,
  open time ``T``) holds the signal of the latest prediction with ``ts <= T - 1h``. Point in time:
  a fill at ``T`` uses only predictions made with features at ``T - 1h`` or earlier. A bar is
  booked once the prediction of the hour before it exists; an hour with no prediction keeps the
  position; a missing bar fills at the next one that exists.
- **Fees.** Every unit of position change pays ``fee_bps + slippage_bps`` (the backtest's
  :attr:`training.backtest.BacktestConfig.cost_rate`, 15 bp by default) of the symbol's equity,
  multiplicatively: ``equity * (1 - cost) ** units``. A long-to-short flip is two units.
- **Equity.** Starting capital 1.0 per symbol, positions in ``{-1, 0, 1}`` times the equity (no
  leverage), marked at each bar's close: the old position earns ``open_T / previous close - 1``
  (an opening gap), the new one ``close_T / open_T - 1``. No liquidation cost is charged at the
  end (the backtest charges one; a running ledger has no last bar). Buy-and-hold on the same
  span buys one unit at the open of the symbol's first booked bar (one fee) and holds it.
- **Portfolio.** Equal weights: each symbol gets 1.0 of capital when its first bar is booked and
  is never rebalanced; the portfolio's equity is chain-linked (time-weighted) over the summed
  values, so it starts at 1.0 and a symbol joining later adds capital, not profit.
- **Drawdown** is ``equity / running peak - 1`` (negative or 0), the start of 1.0 counting as a
  peak, as in the backtest.

Defaults: horizon 1 h, mode ``long_short`` (the service's ``/signals`` default), thresholds 0.55
and 0.45, 10 bp fee plus 5 bp slippage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from training.backtest import BacktestConfig, positions_from_probabilities
from training.config import MODEL_NAME
from training.dataset import datetime_bounds
from warehouse.checks import CheckOutcome

PORTFOLIO = "_portfolio"
"""The ``symbol`` of the portfolio's rows in ``gold/paper_equity`` (symbols are upper case)."""
HOUR = timedelta(hours=1)
UTC_US = pl.Datetime("us", "UTC")

TRADE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "signal_ts": UTC_US,
    "fill_ts": UTC_US,
    "side": pl.String(),
    "from_position": pl.Int8(),
    "to_position": pl.Int8(),
    "units": pl.Int8(),
    "price": pl.Float64(),
    "direction_probability": pl.Float64(),
    "fee_bp": pl.Float64(),
    "fee": pl.Float64(),
    "equity_after": pl.Float64(),
    "model_version": pl.Int64(),
    "horizon_hours": pl.Int32(),
    "rule": pl.String(),
}
"""``gold/paper_trades``: one row per fill. ``fee_bp`` is the cost per unit of change (fee plus
slippage), ``fee`` what the fill paid in units of the symbol's starting capital, ``equity_after``
the symbol's equity right after it; ``rule`` is :meth:`PaperTradingConfig.rule`."""

EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": UTC_US,
    "position": pl.Float64(),
    "price": pl.Float64(),
    "equity": pl.Float64(),
    "drawdown": pl.Float64(),
    "buy_and_hold_equity": pl.Float64(),
    "buy_and_hold_drawdown": pl.Float64(),
    "capital": pl.Float64(),
    "value": pl.Float64(),
    "buy_and_hold_value": pl.Float64(),
    "signal_ts": UTC_US,
    "rule": pl.String(),
}
"""``gold/paper_equity``: one row per (symbol, bar) marked at the close, plus one
``symbol = '_portfolio'`` row per hour. ``position`` is the position held through the bar (the
portfolio's: the net exposure, value-weighted); ``capital`` the starting capital in the book
(1.0 per symbol), ``value`` what it is worth now (a symbol's equity; the portfolio's sum);
``price`` and ``signal_ts`` are null on portfolio rows."""


class PaperTradingConfig(BaseModel):
    """The ledger's rule: which predictions it follows and the backtest options it trades by.

    Attributes:
        horizon_hours: the prediction horizon whose probability decides; default 1 (the
            shortest served).
        model_name: the registered model whose predictions are followed; default
            ``marketlake-price``.
        rule: thresholds, mode and costs; default the backtest's with ``mode="long_short"``
            (the service's ``/signals`` default), i.e. long at ``P(up) >= 0.55``, short at
            ``<= 0.45``, 10 bp fee + 5 bp slippage per unit of change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon_hours: int = Field(default=1, ge=1, le=168)
    model_name: str = MODEL_NAME
    rule: BacktestConfig = Field(default_factory=lambda: BacktestConfig(mode="long_short"))

    def rule_json(self) -> str:
        """The config as compact JSON: stored in every row, compared before continuing."""
        return self.model_dump_json()


@dataclass(frozen=True)
class SymbolState:
    """Where one symbol's book stands after its last booked bar (``ts``), decided by the
    prediction of ``signal_ts``."""

    ts: datetime
    position: float
    price: float
    equity: float
    peak: float
    buy_and_hold_equity: float
    buy_and_hold_peak: float
    signal_ts: datetime


@dataclass(frozen=True)
class PortfolioState:
    """Where the portfolio stands after its last row (``ts``)."""

    ts: datetime
    equity: float
    peak: float
    buy_and_hold_equity: float
    buy_and_hold_peak: float
    capital: float
    value: float
    buy_and_hold_value: float


def hourly_signals(predictions: pl.DataFrame, config: PaperTradingConfig) -> pl.DataFrame:
    """One signal per ``(symbol, ts)`` from the stored predictions, by the backtest's rule.

    Args:
        predictions: ``gold/predictions`` rows (``symbol, ts, horizon_hours,
            direction_probability, model_name, model_version, predicted_at``).
        config: the horizon, model name and rule.

    Returns:
        ``symbol, ts, direction_probability, model_version, position`` sorted by symbol and
        ts; the first predicted row wins where several model versions predicted one hour.
    """
    rows = (
        predictions.filter(
            (pl.col("model_name") == config.model_name)
            & (pl.col("horizon_hours") == config.horizon_hours)
        )
        .with_columns(pl.col("ts").cast(UTC_US))
        .sort("predicted_at", "model_version", descending=[False, True])
        .unique(subset=["symbol", "ts"], keep="first", maintain_order=True)
        .select("symbol", "ts", "direction_probability", "model_version")
        .sort("symbol", "ts")
    )
    positions = positions_from_probabilities(rows["direction_probability"].to_numpy(), config.rule)
    return rows.with_columns(pl.Series("position", positions, dtype=pl.Float64))


def book_symbol(
    symbol: str,
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    config: PaperTradingConfig,
    *,
    state: SymbolState | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Book the bars of one symbol after ``state`` that its signals decide.

    Args:
        symbol: the symbol.
        bars: its candles (``ts, open, close``).
        signals: its rows of :func:`hourly_signals`.
        config: the rule.
        state: the book after its last stored bar; ``None`` (default): a new book, starting at
            the bar after the first signal with 1.0 of equity and no position.

    Returns:
        ``(trades, equity)`` of :data:`TRADE_SCHEMA` and :data:`EQUITY_SCHEMA`; empty when no
        new bar can be booked yet.
    """
    if signals.is_empty():
        return pl.DataFrame(schema=TRADE_SCHEMA), pl.DataFrame(schema=EQUITY_SCHEMA)
    first_signal, last_signal = datetime_bounds(signals["ts"])
    first = first_signal + HOUR if state is None else state.ts + timedelta(microseconds=1)
    last = last_signal + HOUR
    decided = (
        bars.select(pl.col("ts").cast(UTC_US), "open", "close")
        .filter(pl.col("ts").is_between(first, last))
        .sort("ts")
        .with_columns((pl.col("ts") - HOUR).alias("decided_by"))
        .join_asof(
            signals.select(
                pl.col("ts").alias("signal_ts"),
                "position",
                "direction_probability",
                "model_version",
            ),
            left_on="decided_by",
            right_on="signal_ts",
            strategy="backward",
        )
        .filter(pl.col("signal_ts").is_not_null())
    )
    if decided.is_empty():
        return pl.DataFrame(schema=TRADE_SCHEMA), pl.DataFrame(schema=EQUITY_SCHEMA)
    opens = decided["open"].to_numpy().astype(float)
    closes = decided["close"].to_numpy().astype(float)
    target = decided["position"].to_numpy().astype(float)
    keep = 1.0 - config.rule.cost_rate
    held = np.concatenate([[0.0 if state is None else state.position], target[:-1]])
    previous_close = np.concatenate([[opens[0] if state is None else state.price], closes[:-1]])
    units = np.abs(target - held)
    start = 1.0 if state is None else state.equity
    before_fill = 1.0 + held * (opens / previous_close - 1.0)
    factors = before_fill * keep**units * (1.0 + target * (closes / opens - 1.0))
    equity = start * np.cumprod(factors)
    at_open = np.concatenate([[start], equity[:-1]]) * before_fill
    hold_factors = closes / previous_close
    if state is None:
        hold_factors[0] *= keep  # buy-and-hold's one entry at the first open
    hold = (1.0 if state is None else state.buy_and_hold_equity) * np.cumprod(hold_factors)
    equity_rows = decided.select(
        pl.lit(symbol).alias("symbol"),
        "ts",
        pl.Series("position", target),
        pl.col("close").alias("price"),
        pl.Series("equity", equity),
        pl.Series("drawdown", _drawdown(equity, 1.0 if state is None else state.peak)),
        pl.Series("buy_and_hold_equity", hold),
        pl.Series(
            "buy_and_hold_drawdown",
            _drawdown(hold, 1.0 if state is None else state.buy_and_hold_peak),
        ),
        pl.lit(1.0).alias("capital"),
        pl.Series("value", equity),
        pl.Series("buy_and_hold_value", hold),
        "signal_ts",
        pl.lit(config.rule_json()).alias("rule"),
    )
    trades = (
        decided.with_columns(
            pl.Series("from_position", held),
            pl.Series("units", units),
            pl.Series("fee", at_open * (1.0 - keep**units)),
            pl.Series("equity_after", at_open * keep**units),
        )
        .filter(pl.col("units") > 0)
        .select(
            pl.lit(symbol).alias("symbol"),
            "signal_ts",
            pl.col("ts").alias("fill_ts"),
            pl.when(pl.col("position") > pl.col("from_position"))
            .then(pl.lit("buy"))
            .otherwise(pl.lit("sell"))
            .alias("side"),
            "from_position",
            pl.col("position").alias("to_position"),
            "units",
            pl.col("open").alias("price"),
            "direction_probability",
            pl.lit(config.rule.fee_bps + config.rule.slippage_bps).alias("fee_bp"),
            "fee",
            "equity_after",
            "model_version",
            pl.lit(config.horizon_hours).alias("horizon_hours"),
            pl.lit(config.rule_json()).alias("rule"),
        )
    )
    return _conform(trades, TRADE_SCHEMA), _conform(equity_rows, EQUITY_SCHEMA)


def book_portfolio(
    stored: pl.DataFrame,
    new: pl.DataFrame,
    config: PaperTradingConfig,
    *,
    state: PortfolioState | None = None,
) -> pl.DataFrame:
    """The portfolio rows of every new hour, chain-linked from ``state``.

    At each hour ``t`` every symbol is valued at its latest row at or before ``t``; the
    portfolio's equity moves by ``value_t / (value_before + new capital_t)``, where new capital
    is 1.0 per symbol booked for the first time.

    Args:
        stored: the last stored row of each symbol (:data:`EQUITY_SCHEMA`, symbols only).
        new: the symbol rows booked in this run.
        config: the rule (stored in each row).
        state: the portfolio after its last row; ``None`` (default): no portfolio yet.

    Returns:
        Rows of :data:`EQUITY_SCHEMA` with ``symbol = PORTFOLIO``, one per hour of ``new`` after
        ``state.ts``.
    """
    hours = new.select("ts").unique()
    if state is not None:
        hours = hours.filter(pl.col("ts") > state.ts)
    if hours.is_empty():
        return pl.DataFrame(schema=EQUITY_SCHEMA)
    rows = pl.concat([stored, new]).select(
        "symbol", "ts", "position", "value", "buy_and_hold_value"
    )
    grid = (
        hours.join(rows.select("symbol").unique(), how="cross")
        .sort("ts")
        .join_asof(
            rows.sort("ts"), on="ts", by="symbol", strategy="backward", check_sortedness=False
        )
        .group_by("ts")
        .agg(
            pl.col("value").sum(),
            pl.col("buy_and_hold_value").sum(),
            (pl.col("position") * pl.col("value")).sum().alias("exposure"),
            pl.col("value").count().cast(pl.Float64).alias("capital"),
        )
        .sort("ts")
    )
    capital = grid["capital"].to_numpy()
    value = grid["value"].to_numpy()
    hold_value = grid["buy_and_hold_value"].to_numpy()
    capital_before = np.concatenate([[0.0 if state is None else state.capital], capital[:-1]])
    invested = capital - capital_before
    equity = _chain(value, invested, None if state is None else (state.value, state.equity))
    hold = _chain(
        hold_value,
        invested,
        None if state is None else (state.buy_and_hold_value, state.buy_and_hold_equity),
    )
    frame = grid.select(
        pl.lit(PORTFOLIO).alias("symbol"),
        "ts",
        (pl.col("exposure") / pl.col("value")).alias("position"),
        pl.lit(None, dtype=pl.Float64).alias("price"),
        pl.Series("equity", equity),
        pl.Series("drawdown", _drawdown(equity, 1.0 if state is None else state.peak)),
        pl.Series("buy_and_hold_equity", hold),
        pl.Series(
            "buy_and_hold_drawdown",
            _drawdown(hold, 1.0 if state is None else state.buy_and_hold_peak),
        ),
        "capital",
        "value",
        "buy_and_hold_value",
        pl.lit(None, dtype=UTC_US).alias("signal_ts"),
        pl.lit(config.rule_json()).alias("rule"),
    )
    return _conform(frame, EQUITY_SCHEMA)


def fills_after_signals(trades: pl.DataFrame) -> CheckOutcome:
    """Passes when every fill is at least one hour after the prediction that decided it."""
    early = trades.filter(pl.col("fill_ts") < pl.col("signal_ts") + HOUR)
    return CheckOutcome(
        "fills_after_signals",
        early.is_empty(),
        f"{early.height} of {trades.height} fills are less than 1 h after their signal",
        {
            "trades": trades.height,
            "early_fills": early.height,
            "examples": [
                str(r) for r in early.select("symbol", "signal_ts", "fill_ts").head(3).rows()
            ],
        },
    )


def _chain(
    value: np.ndarray, invested: np.ndarray, start: tuple[float, float] | None
) -> np.ndarray:
    """Time-weighted equity of a book whose ``value`` moves and takes ``invested`` capital."""
    value_before, equity_before = (0.0, 1.0) if start is None else start
    previous = np.concatenate([[value_before], value[:-1]])
    return equity_before * np.cumprod(value / (previous + invested))


def _drawdown(equity: np.ndarray, peak: float) -> np.ndarray:
    peaks = np.maximum.accumulate(np.concatenate([[peak], equity]))[1:]
    return equity / peaks - 1.0


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
