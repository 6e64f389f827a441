"""What the dashboard shows, kept current by polling table versions: the watcher's state.

:meth:`LiveBoard.poll` (blocking; the feed runs it in a thread about once a second) checks the
version of every watched Delta table (:class:`TableWatch`: an incremental log update, about a
millisecond per table when nothing moved) and the model the prediction service answers with (no
registry call: the champion follower already polls the registry). It reads only the tables that
moved, rebuilds their sections and returns the changes as ``(type, payload)`` pairs: the new or
changed candles and indicator rows, a prediction board that differs, the posts not sent before, a
changed ledger or status. :meth:`LiveBoard.snapshot` assembles the current sections (frozen
objects: cheap, safe to serialise in another thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import polars as pl
from pydantic import BaseModel

from serving.board_data import (
    chart_bars,
    epoch_s,
    horizon_predictions,
    indicator_rows,
    live_quality,
    outcomes_by_symbol,
    scored_predictions,
)
from serving.board_model import (
    Bar,
    CheckStatus,
    IndicatorRow,
    LayerStatus,
    MessageType,
    ModelQuality,
    PortfolioBoard,
    PredictionBoard,
    PriceUpdate,
    SentimentBoard,
    Snapshot,
    SymbolChart,
    SystemStatus,
)
from serving.board_sections import (
    NO_BATCH_PREDICTIONS,
    NO_CANDLES,
    NO_PAPER_TRADES,
    PAPER_EQUITY,
    PAPER_TRADES,
    TableWatch,
    portfolio_board,
    read_chart_candles,
    read_gold,
    read_predictions,
    sentiment_board,
)
from serving.market import MarketRequest, MarketService
from serving.model_quality import registry_quality
from serving.predictions import PricePredictionService
from serving.system_status import LAYERS, data_checks, newest_row, topic_lag
from training.registry import LoadedModel
from warehouse.catalog import (
    GOLD_FEATURES,
    GOLD_PREDICTIONS,
    SILVER_CANDLES,
    SILVER_FEAR_GREED,
    SILVER_POSTS,
)
from warehouse.errors import MarketlakeError
from warehouse.lake import Lake
from warehouse.settings import Settings

logger = logging.getLogger("bentoml.marketlake")

WATCHED: tuple[str, ...] = tuple(
    dict.fromkeys(
        [SILVER_CANDLES, SILVER_FEAR_GREED, GOLD_FEATURES, GOLD_PREDICTIONS, SILVER_POSTS]
        + [PAPER_TRADES, PAPER_EQUITY]
        + [table for _, table, _ in LAYERS]
    )
)
"""Every table whose version the watcher checks."""

Change = tuple[MessageType, BaseModel]
_Section = TypeVar("_Section", PortfolioBoard, SentimentBoard, PriceUpdate)


@dataclass(frozen=True)
class BoardSources:
    """Where the board reads from.

    Attributes:
        lake: the lake.
        market: the market service (the market table is its ``/market`` answer).
        predictions: the prediction service (its latest predictions are ``/predict``'s).
        tracking_uri: the MLflow registry, for the champion's quality; None: not shown.
        settings: for the Kafka lag; None: no lag.
        started_at: when the service started.
    """

    lake: Lake
    market: MarketService
    predictions: PricePredictionService
    tracking_uri: str | None = None
    settings: Settings | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class BoardOptions:
    """How much the page shows: chart span, outcome span, posts, sentiment window."""

    chart_hours: int = 336
    outcome_hours: int = 96
    posts: int = 50
    sentiment_window_hours: int = 24


class LiveBoard:
    """The dashboard's sections and the table versions they were built from."""

    def __init__(self, sources: BoardSources, options: BoardOptions | None = None) -> None:
        self.sources = sources
        self.options = options or BoardOptions()
        self.clients = 0
        self._lock = threading.Lock()
        self._watches = {t: TableWatch(sources.lake.location(t)) for t in WATCHED}
        self._versions: dict[str, int | None] | None = None
        self._model: tuple[str, int] | None = None
        self._bars: dict[str, dict[int, Bar]] = {}
        self._indicators: dict[str, dict[int, IndicatorRow]] = {}
        self._candles: pl.DataFrame | None = None
        self._gold: pl.DataFrame | None = None
        self._posts_seen: set[str] = set()
        self._layers: dict[str, LayerStatus] = {}
        self._quality: ModelQuality | None = None
        self._checks: list[CheckStatus] = []
        self._lag: tuple[dict[str, int | str], str | None] = ({}, "lag not measured yet")
        self.prices = PriceUpdate(note=NO_CANDLES)
        self.predictions = PredictionBoard(note="no predictions yet")
        self.sentiment = SentimentBoard(note="posts not read yet")
        self.portfolio = PortfolioBoard(note=NO_PAPER_TRADES)
        self.status = SystemStatus(generated_at=datetime.now(UTC))

    def snapshot(self) -> Snapshot:
        """Everything the page shows now."""
        return Snapshot(
            generated_at=datetime.now(UTC),
            started_at=self.sources.started_at,
            prices=self.prices,
            predictions=self.predictions,
            sentiment=self.sentiment,
            portfolio=self.portfolio,
            status=self.status,
        )

    def refresh_lag(self) -> None:
        """Measure the Kafka lag (a broker round trip: the feed calls it every few seconds)."""
        if self.sources.settings is None:
            self._lag = ({}, "lag not measured: no settings")
            return
        try:
            self._lag = topic_lag(self.sources.settings, self.sources.lake)
        except Exception as exc:  # a broker that answers badly must not stop the dashboard
            logger.warning("dashboard: cannot measure the Kafka lag: %s", exc)
            self._lag = ({}, f"lag unknown: {type(exc).__name__}: {exc}")

    def poll(self) -> list[Change]:
        """Check the versions; rebuild what moved; return the changes (none on the first call).

        Never raises on a table or a model that cannot be read: the section's note says why.
        """
        with self._lock:
            versions = {t: w.version() for t, w in self._watches.items()}
            model = self._served_model()
            model_key = None if model is None else (model.name, model.version)
            first = self._versions is None
            old = self._versions or {}
            moved = {t for t, v in versions.items() if first or old.get(t) != v}
            self._versions = versions
            changes: list[Change] = []
            if moved & {SILVER_CANDLES, SILVER_FEAR_GREED, GOLD_FEATURES}:
                changes += self._refresh_prices(versions, moved)
            if moved & {GOLD_FEATURES, GOLD_PREDICTIONS} or model_key != self._model:
                if model_key != self._model:
                    self._quality = None
                self._model = model_key
                board = self._prediction_board(versions)
                if board != self.predictions:
                    self.predictions = board
                    changes.append(("prediction_update", board))
            if SILVER_POSTS in moved:
                changes += self._refresh_sentiment(versions[SILVER_POSTS])
            if moved & {PAPER_TRADES, PAPER_EQUITY}:
                board_p = self._read(
                    lambda: portfolio_board(
                        self.sources.lake, versions[PAPER_TRADES], versions[PAPER_EQUITY]
                    ),
                    PortfolioBoard,
                )
                if board_p != self.portfolio:
                    self.portfolio = board_p
                    changes.append(("portfolio_update", board_p))
            status = self._system_status(versions, moved, model)
            if status.model_dump(exclude={"generated_at"}) != self.status.model_dump(
                exclude={"generated_at"}
            ):
                self.status = status
                changes.append(("status", status))
            return [] if first else changes

    # --- sections --------------------------------------------------------------------------

    def _served_model(self) -> LoadedModel | None:
        try:
            return self.sources.predictions.model
        except MarketlakeError:
            return None

    def _read(self, build: Callable[[], _Section], kind: type[_Section]) -> _Section:
        try:
            return build()
        except MarketlakeError as exc:
            logger.warning("dashboard: %s", exc)
            return kind(note=str(exc))

    def _refresh_prices(self, versions: dict[str, int | None], moved: set[str]) -> list[Change]:
        candles_version, gold_version = versions[SILVER_CANDLES], versions[GOLD_FEATURES]
        if candles_version is None:
            self.prices, self._bars, self._candles = PriceUpdate(note=NO_CANDLES), {}, None
            return [("price_update", self.prices)]
        hours = self.options.chart_hours
        try:
            if SILVER_CANDLES in moved or self._candles is None:
                self._candles = read_chart_candles(self.sources.lake, candles_version, hours=hours)
            if GOLD_FEATURES in moved and gold_version is not None:
                self._gold = read_gold(self.sources.lake, gold_version)
            market = self.sources.market.market(MarketRequest(), fresh=True)
        except MarketlakeError as exc:
            logger.warning("dashboard: %s", exc)
            self.prices = PriceUpdate(note=str(exc))
            return [("price_update", self.prices)]
        bars = chart_bars(self._candles)
        indicators = {} if self._gold is None else indicator_rows(self._gold, self._candles)
        delta = []
        for symbol in sorted(bars):
            new_bars = [b for b in bars[symbol] if self._bars.get(symbol, {}).get(b.time) != b]
            rows = indicators.get(symbol, [])
            seen = self._indicators.get(symbol, {})
            new_rows = [r for r in rows if seen.get(r.time) != r]
            if new_bars or new_rows:
                delta.append(SymbolChart(symbol=symbol, candles=new_bars, indicators=new_rows))
        self._bars = {s: {b.time: b for b in rows} for s, rows in bars.items()}
        self._indicators = {s: {r.time: r for r in rows} for s, rows in indicators.items()}
        self.prices = PriceUpdate(
            symbols=[
                SymbolChart(symbol=s, candles=bars[s], indicators=indicators.get(s, []))
                for s in sorted(bars)
            ],
            market=market,
            chart_hours=hours,
        )
        changed_market = SILVER_CANDLES in moved or SILVER_FEAR_GREED in moved
        if not delta and not changed_market:
            return []
        return [
            (
                "price_update",
                PriceUpdate(
                    symbols=delta, market=market if changed_market else None, chart_hours=hours
                ),
            )
        ]

    def _prediction_board(self, versions: dict[str, int | None]) -> PredictionBoard:
        try:
            latest = self.sources.predictions.latest_predictions(fresh=True)
        except MarketlakeError as exc:
            return PredictionBoard(note=str(exc))
        closes = {}
        for symbol, ts in latest.frame.select("symbol", "ts").iter_rows():
            bar = self._bars.get(symbol, {}).get(epoch_s(ts))
            if bar is not None:
                closes[symbol] = bar.close
        symbols = horizon_predictions(latest, closes)
        quality = self._model_quality(latest.model)
        outcomes_note: str | None = NO_BATCH_PREDICTIONS
        outcomes_version = None
        stored_at = versions[GOLD_PREDICTIONS]
        if stored_at is not None and self._gold is not None:
            try:
                stored = read_predictions(self.sources.lake, stored_at, latest.model.name)
            except MarketlakeError as exc:
                stored, outcomes_note = None, str(exc)
            if stored is not None and not stored.is_empty():
                served = latest.model.version
                stored_versions = set(stored["model_version"].to_list())
                outcomes_version = served if served in stored_versions else max(stored_versions)
                outcomes_note = (
                    None
                    if outcomes_version == served
                    else f"outcomes of version {outcomes_version}: the champion (v{served}) has "
                    "no batch predictions yet"
                )
                scored = scored_predictions(
                    stored.filter(pl.col("model_version") == outcomes_version), self._gold
                )
                quality = quality.model_copy(update={"live": live_quality(scored, self._gold)})
                newest = scored["ts"].max()
                assert isinstance(newest, datetime)
                recent = scored.filter(
                    pl.col("ts") > newest - timedelta(hours=self.options.outcome_hours)
                )
                by_symbol = outcomes_by_symbol(recent)
                symbols = [
                    s.model_copy(update={"outcomes": by_symbol.get(s.symbol, [])}) for s in symbols
                ]
        return PredictionBoard(
            model_name=latest.model.name,
            model_version=latest.model.version,
            outcomes_model_version=outcomes_version,
            symbols=symbols,
            quality=quality,
            outcomes_note=outcomes_note,
        )

    def _model_quality(self, model: LoadedModel) -> ModelQuality:
        cached = self._quality
        if cached is not None and cached.model_version == model.version:
            return cached
        if self.sources.tracking_uri is None:
            quality = ModelQuality(
                model_name=model.name, model_version=model.version, note="no registry configured"
            )
        else:
            quality = registry_quality(self.sources.tracking_uri, model, self.sources.lake)
        self._quality = quality
        return quality

    def _refresh_sentiment(self, version: int | None) -> list[Change]:
        try:
            board, _ = sentiment_board(
                self.sources.lake,
                version,
                limit=self.options.posts,
                window_hours=self.options.sentiment_window_hours,
                chart_hours=self.options.chart_hours,
            )
        except MarketlakeError as exc:
            board = SentimentBoard(note=str(exc))
        new = [p for p in board.posts if p.post_id not in self._posts_seen]
        self._posts_seen |= {p.post_id for p in board.posts}
        if board == self.sentiment:
            return []
        self.sentiment = board
        return [("sentiment_update", board.model_copy(update={"posts": new}))]

    def _system_status(
        self, versions: dict[str, int | None], moved: set[str], model: LoadedModel | None
    ) -> SystemStatus:
        for _, table, column in LAYERS:
            if table in moved or table not in self._layers:
                try:
                    self._layers[table] = newest_row(self.sources.lake, table, column)
                except MarketlakeError as exc:
                    logger.warning("dashboard: %s", exc)
        if moved:  # the freshness checks say how old the rows are: only re-run when data moves
            self._checks = data_checks(self._candles, self._layers)
        lag, lag_note = self._lag
        return SystemStatus(
            generated_at=datetime.now(UTC),
            lag=lag,
            lag_note=lag_note,
            layers=[self._layers[t] for _, t, _ in LAYERS if t in self._layers],
            champion=None if model is None else f"{model.name} v{model.version}",
            champion_version=None if model is None else model.version,
            checks=self._checks,
            clients=self.clients,
        )
