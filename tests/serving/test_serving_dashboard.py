"""The dashboard's routes: the page behind the token (header or ``?token=``), its public static
files, the snapshot and ``/ws`` on the real BentoML app; the closes the market service keeps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from serving.auth import BearerAuthMiddleware
from serving.board_model import (
    PortfolioBoard,
    PredictionBoard,
    PriceUpdate,
    SentimentBoard,
    Snapshot,
    SystemStatus,
)
from serving.dashboard import (
    CONTENT_SECURITY_POLICY,
    DASHBOARD_PATH,
    PAGE_FILE,
    SNAPSHOT_PATH,
    WS_PATH,
    dashboard_app,
)
from serving.live_feed import LiveFeed
from serving.market import MarketRequest, MarketService, recent_closes
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED
from warehouse.lake import Lake, overwrite, read_table

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TOKEN = "dash-token"
VENDOR = "/dashboard/static/vendor/lightweight-charts/lightweight-charts.standalone.production.mjs"


@pytest.fixture(scope="module")
def lake(
    small_lake: Callable[..., Lake],
    tmp_path_factory: pytest.TempPathFactory,
    fear_greed_days: pl.DataFrame,
) -> Lake:
    lake = small_lake(hours=80, seed=7, root=tmp_path_factory.mktemp("dashboard"))
    overwrite(lake.location(SILVER_FEAR_GREED), fear_greed_days)
    return lake


def _bars(symbol: str, hours: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": symbol, "ts": [T0 + timedelta(hours=h) for h in hours], "close": hours}
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")), pl.col("close").cast(pl.Float64))


@pytest.mark.parametrize(
    ("hours", "kept"),
    [
        (list(range(100)), list(range(52, 100))),  # long history: the last 48 hourly bars
        (list(range(10)), list(range(10))),  # young symbol: all of its bars
        ([0, 1, 2, 60, 70, 71], [60, 70, 71]),  # gaps: only bars inside the 48 hours
    ],
)
def test_recent_closes_keep_the_last_48_hours_per_symbol(hours: list[int], kept: list[int]) -> None:
    candles = pl.concat([_bars("AAA", hours), _bars("BBB", [5, 6])]).sample(
        fraction=1.0, shuffle=True, seed=1
    )
    closes = recent_closes(candles)
    assert closes.filter(pl.col("symbol") == "AAA")["close"].to_list() == [float(h) for h in kept]
    assert closes.filter(pl.col("symbol") == "BBB")["close"].to_list() == [5.0, 6.0]


def test_market_service_serves_the_closes_from_its_snapshot(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = MarketService(lake, refresh_s=0)
    closes = service.recent_closes()
    candles = read_table(lake.location(SILVER_CANDLES))
    for symbol in ("BTCUSDT", "ETHUSDT"):
        last = candles.filter(pl.col("symbol") == symbol).sort("ts").tail(48)
        assert closes[symbol] == list(zip(last["ts"].to_list(), last["close"], strict=True))

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the lake was read again although no table version moved")

    monkeypatch.setattr("serving.market.read_table", no_read)
    assert service.recent_closes() == closes  # same table versions: the cached snapshot
    assert [p.symbol for p in service.market(MarketRequest()).prices] == list(closes)


def _still_snapshot() -> Snapshot:
    return Snapshot(
        generated_at=T0,
        started_at=None,
        prices=PriceUpdate(note="no candles"),
        predictions=PredictionBoard(note="no model"),
        sentiment=SentimentBoard(note="no posts"),
        portfolio=PortfolioBoard(note="no paper trades yet"),
        status=SystemStatus(generated_at=T0),
    )


class _StillBoard:
    """A board that never changes (the routes' tests need no lake)."""

    clients = 0

    def poll(self) -> list[Any]:
        return []

    def refresh_lag(self) -> None:
        pass

    def snapshot(self) -> Snapshot:
        return _still_snapshot()


@pytest.fixture(scope="module")
def app_client() -> Iterator[Callable[[str | None], TestClient]]:
    clients: list[TestClient] = []
    board = _StillBoard()

    def client(token: str | None) -> TestClient:
        app = dashboard_app(LiveFeed(lambda: board))  # type: ignore[arg-type, return-value]
        app.add_middleware(BearerAuthMiddleware, token=token)
        clients.append(TestClient(app))
        return clients[-1]

    yield client
    for c in clients:
        c.close()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("token", "method", "path", "headers", "status"),
    [
        (None, "GET", DASHBOARD_PATH, {}, 200),  # no token configured: open (local default)
        (TOKEN, "GET", DASHBOARD_PATH, BEARER, 200),  # right token in the header
        (TOKEN, "GET", f"{DASHBOARD_PATH}?token={TOKEN}", {}, 200),  # a browser: in the URL
        (TOKEN, "GET", DASHBOARD_PATH, {}, 401),  # token configured, none sent
        (TOKEN, "GET", f"{DASHBOARD_PATH}?token=wrong", {}, 401),  # wrong token in the URL
        (TOKEN, "GET", DASHBOARD_PATH, {"Authorization": "Bearer wrong"}, 401),  # wrong header
        (TOKEN, "GET", SNAPSHOT_PATH, BEARER, 200),  # the snapshot, with the header
        (TOKEN, "GET", f"{SNAPSHOT_PATH}?token={TOKEN}", {}, 401),  # not a browser path
        (TOKEN, "GET", VENDOR, {}, 200),  # static files are public: code, no data
        (TOKEN, "GET", "/dashboard/static/js/main.js", {}, 200),  # the page's modules too
        (TOKEN, "GET", "/dashboard/static/%2e%2e/dashboard.py", {}, 404),  # nothing outside
        (None, "POST", DASHBOARD_PATH, {}, 405),  # read-only page
        (None, "GET", "/dashboard/x", {}, 404),  # claims no other path
    ],
)
def test_the_mounted_app_serves_the_page_behind_the_token(
    app_client: Callable[[str | None], TestClient],
    token: str | None,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    answer = app_client(token).request(method, path, headers=headers)
    assert answer.status_code == status, answer.text[:200]
    if status != 200:
        return
    if path.endswith((".js", ".mjs")):
        assert answer.headers["content-type"].startswith("text/javascript")
        return
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["referrer-policy"] == "no-referrer"
    if path.startswith(SNAPSHOT_PATH):
        assert answer.json()["type"] == "snapshot"
    else:
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.text == PAGE_FILE.read_text()


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = PAGE_FILE.read_text()
    assert "http://" not in page.replace('href="https://www.tradingview.com/"', "")
    assert "https://" not in page.replace('href="https://www.tradingview.com/"', "")
    assert '<script type="module" src="/dashboard/static/js/main.js"></script>' in page
    assert "<style" not in page and " style=" not in page  # the CSP allows no inline style
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("url", "headers", "accepted"),
    [
        (f"{WS_PATH}?token={TOKEN}", {}, True),  # a browser: the token in the URL
        (WS_PATH, BEARER, True),  # any other client: the header
        (WS_PATH, {}, False),  # nothing: closed with 1008
        (f"{WS_PATH}?token=wrong", {}, False),  # wrong token
        (WS_PATH, {"Authorization": "Bearer wrong"}, False),  # wrong header
    ],
)
def test_the_socket_needs_the_token(
    app_client: Callable[[str | None], TestClient],
    url: str,
    headers: dict[str, str],
    accepted: bool,
) -> None:
    with app_client(TOKEN).websocket_connect(url, headers=headers) as socket:
        if accepted:
            first = json.loads(socket.receive_text())
            assert first["type"] == "snapshot"
            assert first["payload"]["portfolio"]["note"] == "no paper trades yet"
            return
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()
    assert closed.value.code == 1008
    assert "bearer token" in closed.value.reason


@pytest.fixture
def bento_client(
    lake: Lake, model_registry: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The real BentoML ASGI app of the service, on the test lake and registry, token ``TOKEN``.

    The token is read when ``serving.service`` is imported (BentoML takes middlewares at class
    definition), so the middleware's registered option is set here instead of the variable.
    """
    import serving.service as service_module

    monkeypatch.setenv("MARKETLAKE_LAKE_URI", lake.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model_registry)
    monkeypatch.setenv("MARKETLAKE_SENTIMENT_MODEL", "lexicon")
    service = service_module.MarketlakeService
    [options] = [o for cls, o in service.middlewares if cls is BearerAuthMiddleware]
    monkeypatch.setitem(options, "token", TOKEN)
    with TestClient(service.to_asgi()) as client:
        yield client


def test_the_service_mounts_the_dashboard_behind_its_token(
    bento_client: TestClient, lake: Lake
) -> None:
    page = bento_client.get(DASHBOARD_PATH, headers=BEARER)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert bento_client.get(DASHBOARD_PATH).status_code == 401
    assert bento_client.get(f"{DASHBOARD_PATH}?token={TOKEN}").status_code == 200
    assert bento_client.get(VENDOR).status_code == 200  # public static file
    snapshot = bento_client.get(SNAPSHOT_PATH, headers=BEARER).json()
    assert snapshot["type"] == "snapshot"
    candles = read_table(lake.location(SILVER_CANDLES))
    charted = {s["symbol"]: s["candles"] for s in snapshot["payload"]["prices"]["symbols"]}
    assert sorted(charted) == ["BTCUSDT", "ETHUSDT"]
    for symbol, bars in charted.items():
        last = candles.filter(pl.col("symbol") == symbol).sort("ts").row(-1, named=True)
        assert bars[-1]["close"] == last["close"]
        assert bars[-1]["time"] == int(last["ts"].timestamp())
    with bento_client.websocket_connect(f"{WS_PATH}?token={TOKEN}") as socket:
        first = json.loads(socket.receive_text())
    assert first["type"] == "snapshot"
    assert first["payload"]["predictions"]["model_version"] == 1
    with bento_client.websocket_connect(WS_PATH) as socket, pytest.raises(WebSocketDisconnect):
        socket.receive_text()
    assert bento_client.post("/market", json={}, headers=BEARER).status_code == 200  # API routes
    assert bento_client.post(f"/market?token={TOKEN}", json={}).status_code == 401  # no URL token
    assert bento_client.get("/", headers=BEARER).status_code == 200  # BentoML's own index page
    assert bento_client.get("/livez").status_code == 200  # probes stay open
