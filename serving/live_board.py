"""What the dashboard shows, kept current by polling table versions: the watcher's state.

:meth:`LiveBoard.poll` (blocking; the feed runs it in a thread about once a second) checks the
version of every watched Delta table (:class:`TableWatch`: an incremental log update, about a
millisecond per table when nothing moved) and the model the prediction service answers with (no
registry call: the champion follower already polls the registry). It reads only the tables that
moved, rebuilds their sections and returns the changes as ``(type, payload)`` pairs: the new or
changed candles and indicator rows, a prediction board that differs, the posts not sent before, a
changed ledger or status. A section's table versions are recorded only once it was rebuilt
(:class:`SectionVersions`): one whose rebuild raised is rebuilt again at the next poll.
:meth:`LiveBoard.snapshot` assembles the current sections (frozen objects: cheap, safe to
serialise in another thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import polars as pl
from pydantic import BaseModel

from serving.board_data import (
    chart_bars,
    epoch_s,
    horizon_predictions,
    indicator_rows,
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
    NO_CANDLES,
    NO_PAPER_TRADES,
    PAPER_EQUITY,
    PAPER_TRADES,
    SectionVersions,
    TableWatch,
    batch_outcomes,
    portfolio_board,
    read_chart_candles,
    read_gold,
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
        self._sections = SectionVersions()
        self._polled = False
        self._model: tuple[str, int] | None = None
        self._bars: dict[str, dict[int, Bar]] = {}
        self._indicators: dict[str, dict[int, IndicatorRow]] = {}
        self._candles: pl.DataFrame | None = None
        self._gold: pl.DataFrame | None = None
        self._posts_seen: set[str] = set()  # the ids of the posts the board holds: at most `posts`
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

        Never raises on a table or a model that cannot be read: the section's note says why. A
        section whose rebuild raises anything else keeps what it showed, and its tables count as
        moved until a rebuild works (logged once per failure streak).
        """
        with self._lock:
            versions = {t: w.version() for t, w in self._watches.items()}
            model = self._served_model()
            model_key = None if model is None else (model.name, model.version)
            first, self._polled = not self._polled, True
            sections = self._sections
            changes: list[Change] = sections.rebuild(
                "prices",
                _of(versions, SILVER_CANDLES, SILVER_FEAR_GREED, GOLD_FEATURES),
                partial(self._refresh_prices, versions),
            )
            # the predictions are scored on the gold the prices section read: they move with it
            gold_read = sections.built("prices", GOLD_FEATURES)
            changes += sections.rebuild(
                "predictions",
                {GOLD_FEATURES: gold_read, GOLD_PREDICTIONS: versions[GOLD_PREDICTIONS]},
                partial(self._refresh_predictions, versions, model_key),
                force=model_key != self._model,
            )
            changes += sections.rebuild(
                "sentiment",
                _of(versions, SILVER_POSTS),
                partial(self._refresh_sentiment, versions[SILVER_POSTS]),
            )
            changes += sections.rebuild(
                "portfolio",
                _of(versions, PAPER_TRADES, PAPER_EQUITY),
                partial(self._refresh_portfolio, versions),
            )
            for _, table, column in LAYERS:
                sections.rebuild(
                    f"status of {table}",
                    _of(versions, table),
                    partial(self._refresh_layer, table, column),
                )
            candles_read = sections.built("prices", SILVER_CANDLES)  # the checks run on them too
            checks_on = {**versions, SILVER_CANDLES: candles_read}
            sections.rebuild("data checks", checks_on, self._refresh_checks)
            status = self._system_status(model)
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

    def _refresh_prices(self, versions: Mapping[str, int | None], moved: set[str]) -> list[Change]:
        candles_version, gold_version = versions[SILVER_CANDLES], versions[GOLD_FEATURES]
        if candles_version is None:
            self.prices, self._bars, self._candles = PriceUpdate(note=NO_CANDLES), {}, None
            return [("price_update", self.prices)]
        hours = self.options.chart_hours
        try:
            if SILVER_CANDLES in moved or self._candles is None:
                self._candles = read_chart_candles(self.sources.lake, candles_version, hours=hours)
            if (GOLD_FEATURES in moved or self._gold is None) and gold_version is not None:
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

    def _refresh_predictions(
        self, versions: Mapping[str, int | None], model: tuple[str, int] | None, _moved: set[str]
    ) -> list[Change]:
        if model != self._model:
            self._quality = None
        board = self._prediction_board(versions)
        self._model = model
        if board == self.predictions:
            return []
        self.predictions = board
        return [("prediction_update", board)]

    def _prediction_board(self, versions: Mapping[str, int | None]) -> PredictionBoard:
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
        outcomes = batch_outcomes(
            self.sources.lake,
            versions[GOLD_PREDICTIONS],
            latest.model,
            self._gold,
            hours=self.options.outcome_hours,
        )
        if outcomes.live is not None:
            quality = quality.model_copy(update={"live": outcomes.live})
            symbols = [
                s.model_copy(update={"outcomes": outcomes.by_symbol.get(s.symbol, [])})
                for s in symbols
            ]
        return PredictionBoard(
            model_name=latest.model.name,
            model_version=latest.model.version,
            outcomes_model_version=outcomes.model_version,
            symbols=symbols,
            quality=quality,
            outcomes_note=outcomes.note,
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

    def _refresh_sentiment(self, version: int | None, _moved: set[str]) -> list[Change]:
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
        self._posts_seen = {p.post_id for p in board.posts}  # bounded by the board's `posts`
        if board == self.sentiment:
            return []
        self.sentiment = board
        return [("sentiment_update", board.model_copy(update={"posts": new}))]

    def _refresh_portfolio(
        self, versions: Mapping[str, int | None], _moved: set[str]
    ) -> list[Change]:
        try:
            board = portfolio_board(
                self.sources.lake, versions[PAPER_TRADES], versions[PAPER_EQUITY]
            )
        except MarketlakeError as exc:
            logger.warning("dashboard: %s", exc)
            board = PortfolioBoard(note=str(exc))
        if board == self.portfolio:
            return []
        self.portfolio = board
        return [("portfolio_update", board)]

    def _refresh_layer(self, table: str, column: str, _moved: set[str]) -> list[Change]:
        snapshot = self._watches[table].table  # the version just checked: nothing is reopened
        self._layers[table] = newest_row(self.sources.lake, table, column, snapshot=snapshot)
        return []

    def _refresh_checks(self, _moved: set[str]) -> list[Change]:
        # the freshness checks say how old the rows are: only re-run when data moves
        self._checks = data_checks(self._candles, self._layers)
        return []

    def _system_status(self, model: LoadedModel | None) -> SystemStatus:
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


def _of(versions: Mapping[str, int | None], *tables: str) -> dict[str, int | None]:
    """The versions of ``tables`` only."""
    return {t: versions[t] for t in tables}
