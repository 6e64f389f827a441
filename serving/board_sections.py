"""Read the lake for the dashboard's sections: candles, gold, predictions, posts, the ledger.

Each reader takes the table version the watcher saw (:class:`TableWatch`), so a section is built
from one snapshot of its table. Missing tables are not errors: the section's ``note`` says how to
fill it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from deltalake import DeltaTable

from serving.board_data import (
    CANDLE_COLUMNS,
    INDICATOR_INPUTS,
    POST_COLUMNS,
    UTC_US,
    post_rows,
    rolling_sentiment,
)
from serving.board_model import PortfolioBoard, SentimentBoard
from warehouse.catalog import GOLD_FEATURES, GOLD_PREDICTIONS, SILVER_CANDLES, SILVER_POSTS
from warehouse.lake import Lake, TableLocation, open_table, read_table

# --- the paper-trading ledger: tables written by the paper-trading job -------------------------
PAPER_TRADES = "gold/paper_trades"
PAPER_EQUITY = "gold/paper_equity"
NO_PAPER_TRADES = "no paper trades yet"
TRADES_SHOWN = 100
EQUITY_POINTS = 2000
TIME_COLUMNS = ("ts", "time", "closed_at", "exit_time", "opened_at", "entry_time", "created_at")
"""Columns taken, in this order, as a ledger row's time (newest rows are shown)."""

NO_CANDLES = (
    "no candles yet: produce some (`marketlake produce candles --simulate --symbols BTCUSDT "
    "--hours 200`, or `marketlake up`), then land and materialize them"
)
NO_POSTS = "no posts yet: produce some with `marketlake produce posts --file ...`"
NO_BATCH_PREDICTIONS = (
    "no batch predictions yet: materialize ml/predictions "
    "(`marketlake materialize --select ml/predictions`)"
)


class TableWatch:
    """The latest version of one Delta table, read incrementally (None: no table yet)."""

    def __init__(self, location: TableLocation) -> None:
        self.location = location
        self._table: DeltaTable | None = None

    def version(self) -> int | None:
        if self._table is not None:
            try:
                self._table.update_incremental()
                return self._table.version()
            except Exception:  # vacuumed, replaced or unreadable: open it again
                self._table = None
        self._table = open_table(self.location)
        return None if self._table is None else self._table.version()


def read_chart_candles(lake: Lake, version: int, *, hours: int) -> pl.DataFrame:
    """Each symbol's candles over the last ``hours`` hours before its newest bar."""
    candles = read_table(lake.location(SILVER_CANDLES), version=version, columns=CANDLE_COLUMNS)
    return (
        candles.with_columns(pl.col("ts").cast(UTC_US))
        .filter(pl.col("ts") > pl.col("ts").max().over("symbol") - timedelta(hours=hours))
        .sort("symbol", "ts")
    )


def read_gold(lake: Lake, version: int) -> pl.DataFrame:
    """The gold columns the page needs: indicators, ``return_1h`` and every target return."""
    location = lake.location(GOLD_FEATURES)
    table = open_table(location, version=version)
    names = [] if table is None else list(table.schema().to_arrow().names)
    wanted = [c for c in INDICATOR_INPUTS if c in names]
    wanted += [c for c in names if c == "return_1h" or c.startswith("target_return_")]
    return read_table(location, version=version, columns=wanted).with_columns(
        pl.col("ts").cast(UTC_US)
    )


def read_predictions(lake: Lake, version: int, model_name: str) -> pl.DataFrame:
    """The batch predictions of ``model_name`` (every version) in ``gold/predictions``."""
    columns = ["symbol", "ts", "horizon_hours", "direction_probability", "model_version"]
    return read_table(
        lake.location(GOLD_PREDICTIONS),
        version=version,
        columns=[*columns, "model_name"],
        filters=pl.col("model_name") == model_name,
    ).select(columns)


def sentiment_board(
    lake: Lake, version: int | None, *, limit: int, window_hours: int, chart_hours: int
) -> tuple[SentimentBoard, pl.DataFrame | None]:
    """The newest posts and the rolling score per symbol over the chart span.

    Returns:
        The board and the posts read (None without a table).
    """
    if version is None:
        return SentimentBoard(window_hours=window_hours, note=NO_POSTS), None
    posts = read_table(lake.location(SILVER_POSTS), version=version)
    present = [c for c in POST_COLUMNS if c in posts.columns]
    posts = posts.select(present).with_columns(pl.col("ts").cast(UTC_US))
    if posts.is_empty():
        return SentimentBoard(window_hours=window_hours, note=NO_POSTS), posts
    newest = posts["ts"].max()
    since = newest - timedelta(hours=chart_hours) if isinstance(newest, datetime) else None
    board = SentimentBoard(
        posts=post_rows(posts, limit=limit),
        rolling=rolling_sentiment(posts, window_hours=window_hours, since=since),
        window_hours=window_hours,
        total_posts=posts.height,
    )
    return board, posts


def portfolio_board(lake: Lake, trades: int | None, equity: int | None) -> PortfolioBoard:
    """The newest paper trades and the equity curve, as plain JSON-ready rows.

    Args:
        lake: the lake.
        trades: the version of ``gold/paper_trades``; None: no table.
        equity: the version of ``gold/paper_equity``; None: no table.
    """
    trade_rows = _ledger_rows(lake, PAPER_TRADES, trades, TRADES_SHOWN, newest_first=True)
    equity_rows = _ledger_rows(lake, PAPER_EQUITY, equity, EQUITY_POINTS, newest_first=False)
    note = None if trade_rows or equity_rows else NO_PAPER_TRADES
    return PortfolioBoard(trades=trade_rows, equity=equity_rows, note=note)


def _ledger_rows(
    lake: Lake, table: str, version: int | None, limit: int, *, newest_first: bool
) -> list[dict[str, Any]]:
    if version is None:
        return []
    frame = read_table(lake.location(table), version=version)
    by = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if by is not None:
        frame = frame.sort(by, descending=True).head(limit)
        if not newest_first:
            frame = frame.reverse()
    else:
        frame = frame.tail(limit)
    return [{k: _plain(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
