"""The BentoML service: predictions, trading signals, text sentiment and market prices.

Started by ``marketlake serve`` (``bentoml serve serving.service:MarketlakeService``). It follows
the ``champion`` of ``marketlake-price`` (checked every ``MARKETLAKE_MODEL_REFRESH_S`` seconds,
default 5: a promotion or a rollback is served without a restart, see ``serving/champion.py``),
loads the sentiment model once, and reads the lake and the registry named by the same environment
variables as every other command. It starts without a champion: ``/readyz`` answers 503 and
``/predict`` and ``/signals`` answer 503 saying how to get one until a champion is loaded, while
``/sentiment``, ``/market`` and the dashboard work. Routes: ``POST /predict``, ``/signals``,
``/sentiment``, ``/market`` and ``/portfolio``, and the live dashboard (``GET /dashboard``, its
static files, ``GET /dashboard/snapshot.json`` and the ``/ws`` WebSocket, mounted as a small
Starlette app, see ``serving/dashboard.py``); BentoML adds the probes (``/livez``, ``/healthz``,
``/readyz``) and ``/metrics``. With ``MARKETLAKE_API_TOKEN`` set, every route but the probes, the
metrics and the dashboard's static files needs ``Authorization: Bearer <token>`` (``/dashboard`` and
``/ws`` also take ``?token=``).

The logic lives in plain modules (``serving/predictions.py``, ``signals.py``, ``text_sentiment.py``,
``market.py``, ``live_board.py``, ``live_feed.py``, ``dashboard.py``, ``auth.py``); this class only
wires them to HTTP."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Annotated, Literal

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable
from pydantic import Field
from starlette.responses import JSONResponse

from serving.auth import PUBLIC_PATHS, BearerAuthMiddleware, install_token_redaction
from serving.champion import ChampionFollower, NoChampionError, model_refresh_s
from serving.client_errors import install_client_error_filter
from serving.dashboard import dashboard_app
from serving.live_board import BoardSources, LiveBoard
from serving.live_feed import LiveFeed
from serving.market import MarketRequest, MarketResponse, MarketService
from serving.portfolio import PortfolioRequest, PortfolioResponse, portfolio_service
from serving.prediction_log import PredictionLog
from serving.predictions import (
    PredictRequest,
    PredictResponse,
    PricePredictionService,
    RequestError,
    SymbolName,
)
from serving.signals import SignalService, SignalsRequest, SignalsResponse
from serving.text_sentiment import SentimentRequest, SentimentResponse, TextSentimentService
from training.config import MODEL_NAME
from training.sentiment import load_sentiment_model
from warehouse.catalog import GOLD_SERVED_PREDICTIONS
from warehouse.errors import MarketlakeError
from warehouse.lake import Lake
from warehouse.settings import apply_tool_homes, load_settings

logger = logging.getLogger("bentoml.marketlake")


def _http_error(exc: MarketlakeError) -> Exception:
    """404 for symbols the service does not hold, 400 for any other bad field, 503 when the lake
    cannot answer yet (a table not materialized): BentoML hides the text of 5xx answers, so that
    one is logged too."""
    if isinstance(exc, RequestError):
        if exc.field in ("symbol", "symbols"):
            return NotFound(f"{exc.field}: {exc}")
        return InvalidArgument(f"{exc.field}: {exc}")
    logger.warning("answering 503: %s", exc)
    return ServiceUnavailable(str(exc))


def _no_champion_answer(exc: NoChampionError, retry_after_s: float) -> JSONResponse:
    """503 with the reason in the body (BentoML would hide the text of a raised 5xx) and a
    ``Retry-After`` of one champion check. Logged at INFO: the follower logs the waiting once."""
    logger.info("answering 503: %s", exc)
    return JSONResponse(
        {"error": str(exc)},
        status_code=503,
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


def live_board() -> LiveBoard:
    """The dashboard board of the running service instance (one per worker)."""
    board: LiveBoard = bentoml.get_current_service().live_board
    return board


# one feed (and so one watcher) per worker: `bentoml serve` imports this module in each worker
LIVE_FEED = LiveFeed(live_board)


@bentoml.service(name="marketlake", traffic={"timeout": 30})
@bentoml.asgi_app(dashboard_app(LIVE_FEED), path="/", name="dashboard")
class MarketlakeService:
    """Price predictions, signals, sentiment and market prices from the lake and the registry."""

    def __init__(self) -> None:
        settings = load_settings()
        apply_tool_homes(settings)
        install_client_error_filter()
        install_token_redaction()
        if settings.api_token is None:
            logger.warning(
                "MARKETLAKE_API_TOKEN is not set: every route is open; set it to require "
                "'Authorization: Bearer <token>' on all routes but %s",
                ", ".join(sorted(PUBLIC_PATHS)),
            )
        self.champion = ChampionFollower(
            settings.mlflow_tracking_uri, MODEL_NAME, refresh_s=model_refresh_s()
        ).start()
        lake = Lake(settings.lake_uri, settings.storage_options)
        self.prediction_log = PredictionLog(lake.location(GOLD_SERVED_PREDICTIONS))
        self.predictions = PricePredictionService(
            self.champion, lake, prediction_log=self.prediction_log
        )
        self.signal_service = SignalService(self.predictions)
        self.sentiment = TextSentimentService(load_sentiment_model(settings.sentiment_model))
        self.market_service = MarketService(lake)
        self.started_at = datetime.now(UTC)
        self.live_board = LiveBoard(
            BoardSources(
                lake=lake,
                market=self.market_service,
                predictions=self.predictions,
                tracking_uri=settings.mlflow_tracking_uri,
                settings=settings,
                started_at=self.started_at,
            )
        )
        logger.info("sentiment model: %s", self.sentiment.model.name)

    def __is_ready__(self) -> bool:
        """``/readyz``: ready once a champion model is loaded (BentoML answers 503 before)."""
        return self.champion.current is not None

    @bentoml.on_shutdown
    def write_prediction_log(self) -> None:
        """Stop following the registry; write the served predictions still in the buffer."""
        self.champion.stop()
        self.prediction_log.close()

    # input_spec: the request model (extra="forbid"); output_spec: the answer's schema, given
    # because a no-champion 503 is returned as a JSONResponse (see _no_champion_answer)
    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    def predict(
        self,
        symbol: Annotated[str, Field(min_length=1, max_length=32, examples=["BTCUSDT"])],
        horizon: Annotated[int, Field(ge=1, le=168, description="hours ahead")] = 1,
    ) -> PredictResponse | JSONResponse:
        """Forward return and up-probability of ``symbol`` over ``horizon`` hours."""
        try:
            return self.predictions.predict(PredictRequest(symbol=symbol, horizon=horizon))
        except NoChampionError as exc:
            return _no_champion_answer(exc, self.champion.refresh_s)
        except MarketlakeError as exc:
            raise _http_error(exc) from exc

    @bentoml.api(route="/signals", input_spec=SignalsRequest, output_spec=SignalsResponse)  # idem
    def signals(
        self,
        symbols: list[SymbolName] | None = None,
        horizon: int = 1,
        long_threshold: float = 0.55,
        short_threshold: float = 0.45,
        mode: Literal["long_short", "long_flat"] = "long_short",
    ) -> SignalsResponse | JSONResponse:
        """Long, flat or short per symbol, by the backtest's threshold rule."""
        request = SignalsRequest(
            symbols=symbols,
            horizon=horizon,
            long_threshold=long_threshold,
            short_threshold=short_threshold,
            mode=mode,
        )
        try:
            return self.signal_service.signals(request)
        except NoChampionError as exc:
            return _no_champion_answer(exc, self.champion.refresh_s)
        except MarketlakeError as exc:
            raise _http_error(exc) from exc

    @bentoml.api(route="/sentiment", input_spec=SentimentRequest)  # extra="forbid"
    def sentiment_scores(self, texts: list[str]) -> SentimentResponse:
        """Score, label and confidence of each text, and the model that scored them."""
        try:
            return self.sentiment.score(SentimentRequest(texts=texts))
        except MarketlakeError as exc:
            raise _http_error(exc) from exc

    @bentoml.api(route="/market", input_spec=MarketRequest)  # extra="forbid"
    def market(self, symbols: list[SymbolName] | None = None) -> MarketResponse:
        """Latest price and 24 h change, volatility and volume per symbol; Fear & Greed; summary."""
        try:
            return self.market_service.market(MarketRequest(symbols=symbols))
        except MarketlakeError as exc:
            raise _http_error(exc) from exc

    @bentoml.api(route="/portfolio", input_spec=PortfolioRequest)  # extra="forbid"
    def portfolio(
        self,
        symbols: list[SymbolName] | None = None,
        trades: int = 20,
        curve_hours: int = 168,
    ) -> PortfolioResponse:
        """Paper trading: equity vs buy-and-hold, drawdown, open positions, the last fills."""
        request = PortfolioRequest(symbols=symbols, trades=trades, curve_hours=curve_hours)
        try:
            return portfolio_service(self.market_service.lake).portfolio(request)
        except MarketlakeError as exc:
            raise _http_error(exc) from exc


# BentoML takes middlewares when the service class is defined, so the token is read here, at
# import (`bentoml serve` imports this module once per worker, with the serving environment).
# mypy keeps the class type through the decorator; at run time this is a bentoml Service.
MarketlakeService.add_asgi_middleware(  # type: ignore[attr-defined]
    BearerAuthMiddleware, token=load_settings().api_token
)
