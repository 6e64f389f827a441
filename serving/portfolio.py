"""The paper-trading ledger over HTTP (``POST /portfolio``).

Reads ``gold/paper_trades`` and ``gold/paper_equity`` (written by the Dagster asset
``ml/paper_portfolio``, see :mod:`training.paper_trading` for the rules) and answers: the
portfolio's equity against buy-and-hold over the same span, its return and drawdowns, each
symbol's book, the open positions, the last fills and the portfolio's recent curve. Figures come
from the stored rows as they are; nothing is recomputed here.

Plain Python (no BentoML): ``serving/service.py`` wires :class:`PortfolioService` to the route.
The tables are re-read only when their Delta versions move (checked at most every
``refresh_s`` seconds). Until the ledger exists, :meth:`PortfolioService.portfolio` raises
:class:`warehouse.errors.DataError` (the service answers 503).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from serving.predictions import SymbolName, select_symbols
from training.paper_trading import PORTFOLIO, PaperTradingConfig
from warehouse.catalog import GOLD_PAPER_EQUITY, GOLD_PAPER_TRADES
from warehouse.errors import DataError
from warehouse.lake import Lake, read_table, table_version

SIDES: dict[int, Literal["long", "flat", "short"]] = {1: "long", 0: "flat", -1: "short"}


class PortfolioRequest(BaseModel):
    """``POST /portfolio`` body; every field is optional.

    Attributes:
        symbols: the symbols whose books, open positions and fills to show; default None:
            all. The portfolio figures are always the whole book's.
        trades: how many of the latest fills to return, newest first; default 20.
        curve_hours: the span of the portfolio curve, ending at its last hour; default 168
            (a week); 0: no curve.
    """

    model_config = ConfigDict(extra="forbid")

    symbols: list[SymbolName] | None = Field(
        default=None, min_length=1, max_length=500, examples=[["BTCUSDT", "ETHUSDT"]]
    )
    trades: int = Field(20, ge=0, le=1000, strict=True, examples=[20])
    curve_hours: int = Field(168, ge=0, le=8760, strict=True, examples=[168])


class BookFigures(BaseModel):
    """Equity (started at 1.0) against buy-and-hold over the same span, marked at a close."""

    since: datetime
    as_of: datetime
    position: float
    equity: float
    buy_and_hold_equity: float
    total_return: float
    buy_and_hold_return: float
    excess_return: float
    drawdown: float
    max_drawdown: float
    buy_and_hold_max_drawdown: float


class PortfolioFigures(BookFigures):
    """The whole book: equal weights, 1.0 of capital per symbol; ``position`` is the net
    exposure (value-weighted, -1 to 1)."""

    symbols: int


class SymbolBook(BookFigures):
    """One symbol's book: ``price`` is the last close, ``fees`` what its fills paid."""

    symbol: str
    signal: Literal["long", "flat", "short"]
    price: float
    trades: int
    fees: float


class OpenPosition(BaseModel):
    """A position held now, since its last fill; ``price_return`` is the price move in the
    position's favour since the fill (before fees)."""

    symbol: str
    side: Literal["long", "short"]
    position: int
    entry_ts: datetime
    entry_price: float
    price: float
    price_return: float
    equity: float


class Fill(BaseModel):
    """One fill of ``gold/paper_trades``: at the open of ``fill_ts``, decided by the prediction
    made with the features of ``signal_ts``."""

    symbol: str
    signal_ts: datetime
    fill_ts: datetime
    side: Literal["buy", "sell"]
    from_position: int
    to_position: int
    units: int
    price: float
    direction_probability: float
    fee_bp: float
    fee: float
    equity_after: float
    model_version: int
    horizon_hours: int


class CurvePoint(BaseModel):
    """The portfolio at one hour."""

    ts: datetime
    equity: float
    buy_and_hold_equity: float
    drawdown: float


class PortfolioResponse(BaseModel):
    """``POST /portfolio`` answer; the versions are those of the two tables read."""

    rule: PaperTradingConfig
    portfolio: PortfolioFigures
    symbols: list[SymbolBook]
    open_positions: list[OpenPosition]
    trades: list[Fill]
    curve: list[CurvePoint]
    trades_version: int
    equity_version: int
    served_at: datetime


@dataclass
class _Snapshot:
    versions: tuple[int, int]
    checked_at: float
    rule: PaperTradingConfig
    portfolio: PortfolioFigures
    books: dict[str, SymbolBook]
    portfolio_rows: pl.DataFrame
    trades: pl.DataFrame


class PortfolioService:
    """Answers ``POST /portfolio`` from the stored ledger.

    Args:
        lake: the lake holding ``gold/paper_trades`` and ``gold/paper_equity``.
        refresh_s: how often to check the table versions; default 5 s.
    """

    def __init__(self, lake: Lake, *, refresh_s: float = 5.0) -> None:
        self.lake = lake
        self.refresh_s = refresh_s
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def portfolio(self, request: PortfolioRequest, *, fresh: bool = False) -> PortfolioResponse:
        """The ledger's figures for ``request``.

        Args:
            request: the symbols, number of fills and curve span.
            fresh: check the table versions now; default False: at most every ``refresh_s``.

        Raises:
            RequestError: on ``symbols`` naming symbols the ledger does not hold.
            DataError: when the ledger's tables do not exist yet.
        """
        snapshot = self._current(fresh=fresh)
        symbols = select_symbols(request.symbols, sorted(snapshot.books))
        books = [snapshot.books[s] for s in symbols]
        fills = snapshot.trades.filter(pl.col("symbol").is_in(symbols))
        curve = snapshot.portfolio_rows.filter(
            pl.col("ts") > snapshot.portfolio.as_of - timedelta(hours=request.curve_hours)
        )
        return PortfolioResponse(
            rule=snapshot.rule,
            portfolio=snapshot.portfolio,
            symbols=books,
            open_positions=open_positions(books, fills),
            trades=[
                Fill(**row)
                for row in fills.sort("fill_ts", "symbol", descending=[True, False])
                .head(request.trades)
                .iter_rows(named=True)
            ],
            curve=[
                CurvePoint(**row)
                for row in curve.select(
                    "ts", "equity", "buy_and_hold_equity", "drawdown"
                ).iter_rows(named=True)
            ],
            trades_version=snapshot.versions[0],
            equity_version=snapshot.versions[1],
            served_at=datetime.now(UTC),
        )

    def _current(self, *, fresh: bool) -> _Snapshot:
        with self._lock:
            now = time.monotonic()
            cached = self._snapshot
            if cached is not None and not fresh and now - cached.checked_at < self.refresh_s:
                return cached
            trades_at = self.lake.location(GOLD_PAPER_TRADES)
            equity_at = self.lake.location(GOLD_PAPER_EQUITY)
            trades_version, equity_version = table_version(trades_at), table_version(equity_at)
            if trades_version is None or equity_version is None:
                raise DataError(
                    f"the paper-trading ledger ({GOLD_PAPER_TRADES}, {GOLD_PAPER_EQUITY}) does "
                    "not exist yet: materialize ml/paper_portfolio once gold/predictions exists"
                )
            versions = (trades_version, equity_version)
            if cached is not None and cached.versions == versions:
                cached.checked_at = now
                return cached
            trades = read_table(trades_at, version=trades_version)
            equity = read_table(equity_at, version=equity_version).sort("symbol", "ts")
            self._snapshot = snapshot_of(versions, now, trades, equity)
            return self._snapshot


def snapshot_of(
    versions: tuple[int, int], checked_at: float, trades: pl.DataFrame, equity: pl.DataFrame
) -> _Snapshot:
    """The figures of one pair of table versions (``equity`` sorted by symbol and ts)."""
    portfolio_rows = equity.filter(pl.col("symbol") == PORTFOLIO)
    if portfolio_rows.is_empty():
        raise DataError(f"{GOLD_PAPER_EQUITY} holds no portfolio row yet")
    fees = trades.group_by("symbol").agg(pl.len().alias("trades"), pl.col("fee").sum())
    books = {}
    for (symbol,), rows in equity.filter(pl.col("symbol") != PORTFOLIO).group_by("symbol"):
        rows = rows.sort("ts")
        counts = fees.filter(pl.col("symbol") == symbol)
        last = rows.row(-1, named=True)
        books[str(symbol)] = SymbolBook(
            symbol=str(symbol),
            signal=SIDES[int(last["position"])],
            price=last["price"],
            trades=int(counts["trades"].sum()),
            fees=float(counts["fee"].sum()),
            **_figures(rows),
        )
    last = portfolio_rows.row(-1, named=True)
    return _Snapshot(
        versions=versions,
        checked_at=checked_at,
        rule=PaperTradingConfig.model_validate_json(last["rule"]),
        portfolio=PortfolioFigures(symbols=int(last["capital"]), **_figures(portfolio_rows)),
        books=books,
        portfolio_rows=portfolio_rows,
        trades=trades.drop("rule"),
    )


def open_positions(books: list[SymbolBook], trades: pl.DataFrame) -> list[OpenPosition]:
    """The books holding a position now, each with the fill that opened it.

    Args:
        books: the symbols' books.
        trades: their fills (``gold/paper_trades`` rows).
    """
    entries = trades.sort("fill_ts").group_by("symbol").last()
    entry_of = {row["symbol"]: row for row in entries.iter_rows(named=True)}
    positions = []
    for book in books:
        position = int(book.position)
        entry = entry_of.get(book.symbol)
        if position == 0 or entry is None:
            continue
        positions.append(
            OpenPosition(
                symbol=book.symbol,
                side="long" if position > 0 else "short",
                position=position,
                entry_ts=entry["fill_ts"],
                entry_price=entry["price"],
                price=book.price,
                price_return=position * (book.price / entry["price"] - 1.0),
                equity=book.equity,
            )
        )
    return positions


def _figures(rows: pl.DataFrame) -> dict[str, Any]:
    """:class:`BookFigures` of one book's rows (sorted by ts)."""
    last = rows.row(-1, named=True)
    total, hold = last["equity"] - 1.0, last["buy_and_hold_equity"] - 1.0
    return {
        "since": rows["ts"][0],
        "as_of": last["ts"],
        "position": last["position"],
        "equity": last["equity"],
        "buy_and_hold_equity": last["buy_and_hold_equity"],
        "total_return": total,
        "buy_and_hold_return": hold,
        "excess_return": total - hold,
        "drawdown": last["drawdown"],
        "max_drawdown": rows["drawdown"].min(),
        "buy_and_hold_max_drawdown": rows["buy_and_hold_drawdown"].min(),
    }


_SERVICES: dict[tuple[str, tuple[tuple[str, str], ...]], PortfolioService] = {}
_SERVICES_LOCK = threading.Lock()


def portfolio_service(lake: Lake) -> PortfolioService:
    """The one :class:`PortfolioService` of ``lake`` in this process (created on first use)."""
    key = (lake.uri, tuple(sorted(lake.storage_options.items())))
    with _SERVICES_LOCK:
        if key not in _SERVICES:
            _SERVICES[key] = PortfolioService(lake)
        return _SERVICES[key]
