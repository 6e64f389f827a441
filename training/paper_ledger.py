"""The paper-trading ledger in the lake: ``gold/paper_trades`` and ``gold/paper_equity``.

:func:`paper_portfolio_from_lake` follows ``gold/predictions`` and ``silver/candles`` with the
rules of :mod:`training.paper_trading` and **continues from the last stored hour**: each symbol's
book resumes from its last row in ``gold/paper_equity`` (position, equity, last close, peaks),
only bars after it are booked, and the portfolio resumes from its last row. History is frozen:
what was booked is never revised (a prediction or a candle corrected later changes only the bars
booked after it; the marks chain through the stored closes, so no profit or loss is lost).

Idempotent: a run with nothing new to book writes nothing; each table's new rows replace, in one
commit per table, exactly the rows after the stored state (trades first, equity last), so a run
that stopped between the two commits is completed by the next one without duplicates. The rule
(:meth:`PaperTradingConfig.rule_json`) is stored in every row; continuing with another rule is a
:class:`warehouse.errors.ConfigError` unless ``rebuild=True``, which books everything again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from training.paper_trading import (
    EQUITY_SCHEMA,
    PORTFOLIO,
    TRADE_SCHEMA,
    PaperTradingConfig,
    PortfolioState,
    SymbolState,
    book_portfolio,
    book_symbol,
    hourly_signals,
)
from warehouse.catalog import GOLD_PAPER_EQUITY, GOLD_PAPER_TRADES, GOLD_PREDICTIONS, SILVER_CANDLES
from warehouse.errors import ConfigError
from warehouse.lake import Lake, TableLocation, open_table, overwrite, read_table

PREDICTION_COLUMNS = (
    "symbol",
    "ts",
    "horizon_hours",
    "direction_probability",
    "model_name",
    "model_version",
    "predicted_at",
)
"""The columns of ``gold/predictions`` the ledger reads."""


@dataclass(frozen=True)
class PaperLedgerReport:
    """What one run of the ledger booked, and where the whole book stands.

    Attributes:
        mode: ``"rebuild"`` (the tables were written from scratch), ``"incremental"``,
            ``"up to date"`` (nothing new to book) or ``"skipped"`` (see ``skipped``).
        skipped: why nothing could be booked (an input table missing); else None.
        trades_added: fills booked in this run.
        bars_added: symbol rows booked in this run.
        first_ts: the first bar booked in this run (ISO), or None.
        last_ts: the last bar booked in this run (ISO), or None.
        trades_total: fills in the ledger after the run.
        as_of: the portfolio's last hour (ISO), or None.
        equity: the portfolio's equity then (started at 1.0), or None.
        buy_and_hold_equity: buy-and-hold over the same span, or None.
        max_drawdown: the portfolio's deepest drawdown so far (negative or 0), or None.
        buy_and_hold_max_drawdown: buy-and-hold's, or None.
        trades_version: the ``gold/paper_trades`` version after the run, or None.
        equity_version: the ``gold/paper_equity`` version after the run, or None.
        predictions_version: the ``gold/predictions`` version read, or None.
        candles_version: the ``silver/candles`` version read, or None.
        rule: :meth:`PaperTradingConfig.rule_json`.
    """

    mode: str
    rule: str
    skipped: str | None = None
    trades_added: int = 0
    bars_added: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    trades_total: int = 0
    as_of: str | None = None
    equity: float | None = None
    buy_and_hold_equity: float | None = None
    max_drawdown: float | None = None
    buy_and_hold_max_drawdown: float | None = None
    trades_version: int | None = None
    equity_version: int | None = None
    predictions_version: int | None = None
    candles_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def paper_portfolio_from_lake(
    lake: Lake, config: PaperTradingConfig | None = None, *, rebuild: bool = False
) -> PaperLedgerReport:
    """Book every bar the stored predictions decide that the ledger does not hold yet.

    Args:
        lake: the lake holding ``gold/predictions`` and ``silver/candles``.
        config: the rule; ``None`` (default) means ``PaperTradingConfig()`` (1 h, long_short,
            0.55/0.45, 15 bp per unit of change).
        rebuild: book everything from the first prediction again and replace both tables;
            default False: continue from the stored state.

    Raises:
        ConfigError: the stored ledger was booked with another rule (and ``rebuild`` is False).
    """
    config = config or PaperTradingConfig()
    rule = config.rule_json()
    predictions_at = lake.location(GOLD_PREDICTIONS)
    candles_at = lake.location(SILVER_CANDLES)
    predictions_table, candles_table = open_table(predictions_at), open_table(candles_at)
    if predictions_table is None or candles_table is None:
        missing = GOLD_PREDICTIONS if predictions_table is None else SILVER_CANDLES
        return PaperLedgerReport(mode="skipped", rule=rule, skipped=f"{missing} does not exist yet")
    versions = {
        "predictions_version": predictions_table.version(),
        "candles_version": candles_table.version(),
    }
    trades_at, equity_at = lake.location(GOLD_PAPER_TRADES), lake.location(GOLD_PAPER_EQUITY)
    fresh = rebuild or open_table(trades_at) is None or open_table(equity_at) is None
    stored = pl.DataFrame(schema=EQUITY_SCHEMA) if fresh else read_table(equity_at)
    _require_rule(stored, rule, equity_at)
    symbol_rows = stored.filter(pl.col("symbol") != PORTFOLIO)
    states = symbol_states(symbol_rows)
    wanted = (pl.col("model_name") == config.model_name) & (
        pl.col("horizon_hours") == config.horizon_hours
    )
    predictions = read_table(
        predictions_at,
        version=versions["predictions_version"],
        columns=[*PREDICTION_COLUMNS],
        filters=wanted & _since(states, "signal_ts"),
    )
    signals = hourly_signals(predictions, config)
    candles = read_table(
        candles_at,
        version=versions["candles_version"],
        columns=["symbol", "ts", "open", "close"],
        filters=_since(states, "ts"),
    ).with_columns(pl.col("ts").cast(EQUITY_SCHEMA["ts"]))
    trade_parts, equity_parts = [], []
    for (symbol,), symbol_signals in signals.group_by("symbol", maintain_order=True):
        trades, rows = book_symbol(
            str(symbol),
            candles.filter(pl.col("symbol") == symbol),
            symbol_signals,
            config,
            state=states.get(str(symbol)),
        )
        trade_parts.append(trades)
        equity_parts.append(rows)
    new_trades = pl.concat([pl.DataFrame(schema=TRADE_SCHEMA), *trade_parts])
    new_rows = pl.concat([pl.DataFrame(schema=EQUITY_SCHEMA), *equity_parts])
    if new_rows.is_empty():
        return _report("up to date", rule, stored, new_trades, new_rows, versions, lake)
    last_stored = symbol_rows.sort("ts").group_by("symbol").last()
    portfolio = book_portfolio(
        last_stored.select(list(EQUITY_SCHEMA)),
        new_rows,
        config,
        state=portfolio_state(stored.filter(pl.col("symbol") == PORTFOLIO)),
    )
    booked = pl.concat([new_rows, portfolio])
    metadata = {
        "marketlake.sources": f"{GOLD_PREDICTIONS}@{versions['predictions_version']},"
        f"{SILVER_CANDLES}@{versions['candles_version']}"
    }
    if fresh:
        overwrite(trades_at, new_trades, metadata=metadata)
        overwrite(equity_at, booked, metadata=metadata)
    else:
        after = {s: state.ts for s, state in states.items()}
        after[PORTFOLIO] = stored.filter(pl.col("symbol") == PORTFOLIO)["ts"].max()  # type: ignore[assignment]
        new_symbols = set(new_rows["symbol"].unique().to_list()) - set(after)
        overwrite(
            trades_at,
            new_trades,
            predicate=_after(after, new_symbols, "fill_ts"),
            metadata=metadata,
        )
        overwrite(equity_at, booked, predicate=_after(after, new_symbols, "ts"), metadata=metadata)
    mode = "rebuild" if fresh else "incremental"
    return _report(mode, rule, pl.concat([stored, booked]), new_trades, new_rows, versions, lake)


def _since(states: dict[str, SymbolState], field: str) -> pl.Expr:
    """Rows a continued run needs: every row of a symbol with no book yet; for the others, from
    the earliest ``field`` (``ts``: last booked bar; ``signal_ts``: the signal in force there)."""
    if not states:
        return pl.lit(True)
    bound = min(getattr(state, field) for state in states.values())
    return pl.col("symbol").is_in(list(states)).not_() | (pl.col("ts") >= bound)


def symbol_states(rows: pl.DataFrame) -> dict[str, SymbolState]:
    """Each symbol's book after its last row of ``gold/paper_equity`` (symbol rows only)."""
    last = (
        rows.sort("ts")
        .group_by("symbol")
        .agg(
            pl.col("ts", "position", "price", "equity", "buy_and_hold_equity", "signal_ts").last(),
            pl.col("equity").max().alias("peak"),
            pl.col("buy_and_hold_equity").max().alias("buy_and_hold_peak"),
        )
    )
    return {
        row["symbol"]: SymbolState(
            ts=row["ts"],
            position=row["position"],
            price=row["price"],
            equity=row["equity"],
            peak=max(1.0, row["peak"]),
            buy_and_hold_equity=row["buy_and_hold_equity"],
            buy_and_hold_peak=max(1.0, row["buy_and_hold_peak"]),
            signal_ts=row["signal_ts"],
        )
        for row in last.iter_rows(named=True)
    }


def portfolio_state(rows: pl.DataFrame) -> PortfolioState | None:
    """The portfolio after its last row (``None`` when there is none)."""
    if rows.is_empty():
        return None
    last = rows.sort("ts").row(-1, named=True)
    return PortfolioState(
        ts=last["ts"],
        equity=last["equity"],
        peak=max(1.0, float(rows["equity"].max())),  # type: ignore[arg-type]
        buy_and_hold_equity=last["buy_and_hold_equity"],
        buy_and_hold_peak=max(1.0, float(rows["buy_and_hold_equity"].max())),  # type: ignore[arg-type]
        capital=last["capital"],
        value=last["value"],
        buy_and_hold_value=last["buy_and_hold_value"],
    )


def _require_rule(stored: pl.DataFrame, rule: str, location: TableLocation) -> None:
    rules = set(stored["rule"].unique().to_list())
    if rules and rules != {rule}:
        raise ConfigError(
            f"{location.uri} was booked with the rule {sorted(rules)[0]}, not {rule}: keep "
            "the stored rule, or pass rebuild=True (materialize ml/paper_portfolio with "
            "config rebuild: true) to book the whole history again with the new one"
        )


def _after(after: dict[str, datetime], new_symbols: set[str], column: str) -> str:
    """SQL selecting each known symbol's rows after its stored state, and every new symbol's."""
    clauses = [f"(symbol = {_text(s)} AND {column} > '{_iso(ts)}')" for s, ts in after.items()]
    clauses += [f"(symbol = {_text(s)})" for s in sorted(new_symbols)]
    return " OR ".join(clauses)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _report(
    mode: str,
    rule: str,
    book: pl.DataFrame,
    new_trades: pl.DataFrame,
    new_rows: pl.DataFrame,
    versions: dict[str, int],
    lake: Lake,
) -> PaperLedgerReport:
    portfolio = book.filter(pl.col("symbol") == PORTFOLIO).sort("ts")
    trades_table = open_table(lake.location(GOLD_PAPER_TRADES))
    equity_table = open_table(lake.location(GOLD_PAPER_EQUITY))
    last = portfolio.row(-1, named=True) if portfolio.height else None
    return PaperLedgerReport(
        mode=mode,
        rule=rule,
        trades_added=new_trades.height,
        bars_added=new_rows.height,
        first_ts=None if new_rows.is_empty() else new_rows["ts"].min().isoformat(),  # type: ignore[union-attr]
        last_ts=None if new_rows.is_empty() else new_rows["ts"].max().isoformat(),  # type: ignore[union-attr]
        trades_total=0 if trades_table is None else int(trades_table.count()),
        as_of=None if last is None else last["ts"].isoformat(),
        equity=None if last is None else last["equity"],
        buy_and_hold_equity=None if last is None else last["buy_and_hold_equity"],
        max_drawdown=None if last is None else float(portfolio["drawdown"].min()),  # type: ignore[arg-type]
        buy_and_hold_max_drawdown=(
            None if last is None else float(portfolio["buy_and_hold_drawdown"].min())  # type: ignore[arg-type]
        ),
        trades_version=None if trades_table is None else trades_table.version(),
        equity_version=None if equity_table is None else equity_table.version(),
        predictions_version=versions["predictions_version"],
        candles_version=versions["candles_version"],
    )
