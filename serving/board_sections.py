"""Read the lake for the dashboard's sections: candles, gold, predictions, posts, the ledger.

Each reader takes the table version the watcher saw (:class:`TableWatch`), so a section is built
from one snapshot of its table; :class:`SectionVersions` records which versions each section was
built from, once it was. Missing tables are not errors: the section's ``note`` says how to fill
it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import polars as pl
from deltalake import DeltaTable

from serving.board_data import (
    CANDLE_COLUMNS,
    INDICATOR_INPUTS,
    POST_COLUMNS,
    UTC_US,
    live_quality,
    outcomes_by_symbol,
    post_rows,
    rolling_sentiment,
    scored_predictions,
)
from serving.board_model import HorizonQuality, Outcome, PortfolioBoard, SentimentBoard
from training.registry import LoadedModel
from warehouse.catalog import GOLD_FEATURES, GOLD_PREDICTIONS, SILVER_CANDLES, SILVER_POSTS
from warehouse.errors import MarketlakeError
from warehouse.lake import Lake, TableLocation, open_table, read_table

# --- the paper-trading ledger: tables written by the paper-trading job -------------------------
PAPER_TRADES = "gold/paper_trades"
PAPER_EQUITY = "gold/paper_equity"
NO_PAPER_TRADES = "no paper trades yet"
TRADES_SHOWN = 100
EQUITY_POINTS = 2000
TIME_COLUMNS = ("ts", "time", "closed_at", "exit_time", "opened_at", "entry_time", "created_at")
"""Columns taken, in this order, as a ledger row's time (newest rows are shown)."""

logger = logging.getLogger("bentoml.marketlake")
_Change = TypeVar("_Change")

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
        self._failing = False

    @property
    def table(self) -> DeltaTable | None:
        """The table as of the last :meth:`version` (None: no table yet, or never checked)."""
        return self._table

    def version(self) -> int | None:
        """The table's latest version (None: no table yet).

        A table that cannot be updated in place (vacuumed, replaced or unreadable) is opened
        again; the first failure of a streak is logged (WARNING), the streak ends at the next
        update that works.

        Raises:
            LakeError: the table cannot be opened again.
        """
        if self._table is not None:
            try:
                self._table.update_incremental()
            except Exception as exc:  # vacuumed, replaced or unreadable: open it again
                if not self._failing:
                    logger.warning(
                        "dashboard: cannot update %s in place (%s: %s); opening it again "
                        "(logged once until an update works)",
                        self.location.uri,
                        type(exc).__name__,
                        exc,
                        exc_info=exc,
                    )
                self._failing = True
                self._table = None
            else:
                self._failing = False
                return self._table.version()
        self._table = open_table(self.location)
        return None if self._table is None else self._table.version()


class SectionVersions:
    """The table versions each dashboard section was last built from, and its failure streaks.

    A section's versions are recorded only once it was rebuilt: a section whose rebuild raised
    keeps its old versions, so its tables still count as moved and the next poll rebuilds it
    again. The first failure of a streak is logged (WARNING, with the exception).
    """

    def __init__(self) -> None:
        self._built: dict[str, dict[str, int | None]] = {}
        self._failing: set[str] = set()

    def built(self, section: str, table: str) -> int | None:
        """The version of ``table`` that ``section`` was last built from (None: never, no table)."""
        return self._built.get(section, {}).get(table)

    def rebuild(
        self,
        section: str,
        versions: Mapping[str, int | None],
        build: Callable[[set[str]], list[_Change]],
        *,
        force: bool = False,
    ) -> list[_Change]:
        """Rebuild ``section`` if one of its tables moved (or ``force``); record the versions.

        Args:
            section: the section's name, as the log shows it.
            versions: the version of each table the section is built from (None: no table).
            build: rebuilds the section from the tables that moved; returns its changes.
            force: rebuild even if no table moved (the served model changed); default False.

        Returns:
            The changes ``build`` returned; none when nothing moved or the rebuild raised.
        """
        built = self._built.get(section)
        moved = {t for t, v in versions.items() if built is None or t not in built or built[t] != v}
        if not moved and not force:
            return []
        try:
            changes = build(moved)
        except Exception as exc:  # retried at the next poll: the versions are not recorded
            if section not in self._failing:
                self._failing.add(section)
                logger.warning(
                    "dashboard: cannot rebuild the %s (retried at every poll, logged once until "
                    "it works): %s: %s",
                    section,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
            return []
        if section in self._failing:
            self._failing.discard(section)
            logger.info("dashboard: the %s is rebuilt again", section)
        self._built[section] = dict(versions)
        return changes


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


@dataclass(frozen=True)
class BatchOutcomes:
    """A model's batch predictions scored on gold: what the prediction board shows of them.

    Attributes:
        model_version: the version whose predictions are scored (None: none stored).
        note: why there are none, or that they are another version's (None: the served one's).
        live: the live quality per horizon (None: nothing scored).
        by_symbol: the outcomes of the last hours per symbol.
    """

    model_version: int | None = None
    note: str | None = NO_BATCH_PREDICTIONS
    live: list[HorizonQuality] | None = None
    by_symbol: dict[str, list[Outcome]] = field(default_factory=dict)


def batch_outcomes(
    lake: Lake, version: int | None, model: LoadedModel, gold: pl.DataFrame | None, *, hours: int
) -> BatchOutcomes:
    """The served model's batch predictions in ``gold/predictions``, scored on ``gold``.

    The served version's predictions when the table holds some, else the newest version's it
    holds (the note says so).

    Args:
        lake: the lake.
        version: the version of ``gold/predictions``; None: no table.
        model: the model served.
        gold: the gold rows read (:func:`read_gold`); None: not read yet (nothing is scored).
        hours: the outcomes shown: those of the last ``hours`` hours before the newest one.
    """
    if version is None or gold is None:
        return BatchOutcomes()
    try:
        stored = read_predictions(lake, version, model.name)
    except MarketlakeError as exc:
        return BatchOutcomes(note=str(exc))
    if stored.is_empty():
        return BatchOutcomes()
    stored_versions = set(stored["model_version"].to_list())
    shown = model.version if model.version in stored_versions else max(stored_versions)
    note = (
        None
        if shown == model.version
        else f"outcomes of version {shown}: the champion (v{model.version}) has "
        "no batch predictions yet"
    )
    scored = scored_predictions(stored.filter(pl.col("model_version") == shown), gold)
    newest = scored["ts"].max()
    assert isinstance(newest, datetime)
    recent = scored.filter(pl.col("ts") > newest - timedelta(hours=hours))
    return BatchOutcomes(shown, note, live_quality(scored, gold), outcomes_by_symbol(recent))


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
