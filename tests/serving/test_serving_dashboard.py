"""The ``GET /dashboard`` page: data gathered from a real small lake and a registered model,
rendered to self-contained HTML, served by the mounted app behind the bearer-token middleware."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from starlette.testclient import TestClient

from serving.auth import BearerAuthMiddleware
from serving.dashboard import (
    DASHBOARD_PATH,
    DashboardData,
    dashboard_app,
    gather_dashboard,
    render_dashboard,
    sparkline_svg,
)
from serving.market import (
    FearGreed,
    MarketRequest,
    MarketService,
    MarketSummary,
    SymbolPrice,
    recent_closes,
)
from serving.predictions import PricePredictionService
from serving.signals import Signal, SignalService, SignalsRequest, SignalsResponse
from training.registry import LoadedModel
from warehouse.catalog import SILVER_CANDLES, SILVER_FEAR_GREED
from warehouse.lake import Lake, overwrite, read_table

T0 = datetime(2024, 3, 1, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def lake(
    small_lake: Callable[..., Lake],
    tmp_path_factory: pytest.TempPathFactory,
    fear_greed_days: pl.DataFrame,
) -> Lake:
    lake = small_lake(hours=80, seed=7, root=tmp_path_factory.mktemp("dashboard"))
    overwrite(
        lake.location(SILVER_FEAR_GREED),
        fear_greed_days,
    )
    return lake


@pytest.fixture(scope="module")
def services(lake: Lake, registered_model: LoadedModel) -> tuple[MarketService, SignalService]:
    predictions = PricePredictionService(registered_model, lake, refresh_s=0)
    return MarketService(lake, refresh_s=0), SignalService(predictions)


@pytest.fixture(scope="module")
def data(services: tuple[MarketService, SignalService]) -> DashboardData:
    return gather_dashboard(*services, started_at=T0)


@pytest.fixture(scope="module")
def page(data: DashboardData) -> str:
    return render_dashboard(data)


class _TagChecker(HTMLParser):
    """Collects start tags and fails on a closing tag that does not close the open element."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "input", "link", "hr", "circle", "polyline"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _parsed(page: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [], f"unclosed elements: {checker.stack}"
    return checker


def test_page_is_well_formed_and_self_contained(page: str) -> None:
    tags = _parsed(page).tags
    assert page.startswith("<!DOCTYPE html>")
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert not re.search(r"(src|href)=|https?://|url\(", page)  # nothing loaded from anywhere
    assert '<meta http-equiv="refresh" content="60">' in page


def test_market_table_shows_each_symbol_with_its_figures_and_sparkline(
    page: str, lake: Lake
) -> None:
    candles = read_table(lake.location(SILVER_CANDLES))
    answer = MarketService(lake).market(MarketRequest())
    prices_section = page[page.index("<h2>Prices</h2>") : page.index("<h2>Signals</h2>")]
    rows = prices_section.split("<tr>")[2:]  # after the header row
    assert [re.search(r"<th scope=row>(\w+)</th>", r)[1] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    for row, price in zip(rows, answer.prices, strict=True):
        assert f"{price.close:,.2f}" in row
        assert price.change_24h is not None and price.volatility_24h is not None
        colour = "up" if price.change_24h > 0 else "down"
        assert f'<span class="{colour}">{price.change_24h:+.2%}</span>' in row
        assert f"{price.volatility_24h:.2%}" in row
        assert row.count("<svg") == 1
        last = candles.filter(pl.col("symbol") == price.symbol).sort("ts").tail(48)
        assert f"48 closes from {last['ts'][0]:%Y-%m-%d %H:%M} UTC" in row


def test_fear_greed_breadth_and_model_are_shown(page: str, data: DashboardData) -> None:
    assert re.search(r">71 <small>Greed</small>", page)
    assert data.market is not None and data.market.summary.symbols == 2
    assert "2 symbols" in page and f"candles v{data.market.candles_version}" in page
    assert "model <b>marketlake-price</b> v1" in page
    assert "serving since 2024-03-01 00:00 UTC" in page
    assert f"page served {data.generated_at:%Y-%m-%d %H:%M} UTC" in page
    assert data.problems == ()


def test_signals_show_every_served_horizon_as_the_signal_service_answers(
    page: str, services: tuple[MarketService, SignalService]
) -> None:
    _, signal_service = services
    horizons = signal_service.predictions.horizons
    section = page[page.index("<h2>Signals</h2>") :]
    assert [int(h) for h in re.findall(r"<th>(\d+)h</th>", section)] == horizons
    for horizon in horizons:
        for signal in signal_service.signals(SignalsRequest(horizon=horizon)).signals:
            row = section[section.index(f"<th scope=row>{signal.symbol}</th>") :]
            row = row[: row.index("</tr>")]
            assert f'<span class="badge {signal.signal}">{signal.signal}</span>' in row
            assert f"P(up) {signal.direction_probability:.3f}" in row
            assert f"{signal.predicted_return:+.3%}" in row
            assert f"{signal.feature_time:%Y-%m-%d %H:%M} UTC" in row
    assert "long when P(up) ≥ 0.55, short when P(up) ≤ 0.45 (long_short)" in section


def _evil_data() -> DashboardData:
    ts = T0 + timedelta(hours=47)
    market = {
        "prices": [
            SymbolPrice(
                symbol=EVIL,
                ts=ts,
                close=0.00012345,
                change_24h=None,
                volatility_24h=None,
                volume_24h=2.5e6,
            )
        ],
        "fear_greed": FearGreed(value=10, classification="<b>Fear</b>", ts=T0),
        "summary": MarketSummary(
            symbols=1, up=0, down=0, unchanged=0, mean_change_24h=None, as_of=ts
        ),
        "candles_version": 3,
        "served_at": ts,
    }
    signals = SignalsResponse(
        horizon_hours=1,
        long_threshold=0.55,
        short_threshold=0.45,
        mode="long_short",
        model_name=f"price{EVIL}",
        model_version=7,
        served_at=ts,
        signals=[
            Signal(
                symbol=EVIL,
                signal="short",
                position=-1,
                direction_probability=0.2,
                predicted_return=-0.01,
                feature_time=ts,
            )
        ],
    )
    from serving.market import MarketResponse

    return DashboardData(
        market=MarketResponse(**market),
        signals=(signals,),
        closes={EVIL: [(T0 + timedelta(hours=h), 1.0 + h) for h in range(48)]},
        generated_at=ts,
        problems=(f"signals: unknown symbol {EVIL}",),
    )


def test_text_from_the_lake_and_the_registry_is_escaped() -> None:
    page = render_dashboard(_evil_data(), refresh_s=None)
    tags = _parsed(page).tags
    assert "script" not in tags and "b" in tags  # only the page's own <b> (the model name)
    assert "<script>" not in page and "<b>Fear" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4  # price, signal, model, problem
    assert "&lt;b&gt;Fear&lt;/b&gt;" in page
    assert "http-equiv" not in page  # refresh_s=None: no reload
    assert "0.00012345" in page and "2.50M" in page  # small price, compact volume
    assert '<span class="muted">–</span>' in page  # no 24 h change or volatility


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        # rising: green, first point at the left bottom, last at the right top
        ([(0, 1.0), (1, 2.0), (2, 3.0)], ("#1a7f37", [(2.0, 34.0), (80.0, 18.0), (158.0, 2.0)])),
        # falling: red
        ([(0, 3.0), (1, 1.0)], ("#cf222e", [(2.0, 2.0), (158.0, 34.0)])),
        # flat: a level line through the middle, green (last >= first)
        ([(0, 5.0), (1, 5.0), (3, 5.0)], ("#1a7f37", [(2.0, 18.0), (54.0, 18.0), (158.0, 18.0)])),
        # a gap: x follows time, not the bar count; NaN closes are dropped
        (
            [(0, 1.0), (1, math.nan), (3, 2.0), (4, 1.0)],
            ("#1a7f37", [(2, 34), (119, 2), (158, 34)]),
        ),
        # fewer than two points: a dash instead of a drawing
        ([(0, 1.0)], None),
        ([], None),
    ],
)
def test_sparkline(
    closes: list[tuple[int, float]], expected: tuple[str, list[tuple[float, float]]] | None
) -> None:
    svg = sparkline_svg([(T0 + timedelta(hours=h), c) for h, c in closes], width=160, height=36)
    if expected is None:
        assert "<svg" not in svg and "–" in svg
        return
    colour, points = expected
    assert f'stroke="{colour}"' in svg
    polyline = re.search(r'<polyline points="([^"]+)"', svg)
    assert polyline is not None
    drawn = [tuple(float(v) for v in p.split(",")) for p in polyline[1].split()]
    assert drawn == [pytest.approx(p, abs=0.06) for p in points]
    assert svg.startswith('<svg class="spark" width="160" height="36"')
    _parsed(svg)


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


def test_missing_tables_leave_a_page_that_says_what_is_missing(
    tmp_path: Path, registered_model: LoadedModel
) -> None:
    empty = Lake(str(tmp_path / "lake"))
    data = gather_dashboard(
        MarketService(empty), SignalService(PricePredictionService(registered_model, empty))
    )
    page = render_dashboard(data)
    _parsed(page)
    assert data.market is None and data.signals == () and len(data.problems) == 2
    assert "silver/candles" in page and "gold feature table" in page
    assert "no model predictions" in page


TOKEN = "dash-token"


@pytest.fixture(scope="module")
def app_client(page: str) -> Iterator[Callable[[str | None], TestClient]]:
    clients: list[TestClient] = []

    def client(token: str | None) -> TestClient:
        app = dashboard_app(lambda: page)
        app.add_middleware(BearerAuthMiddleware, token=token)
        clients.append(TestClient(app))
        return clients[-1]

    yield client
    for c in clients:
        c.close()


@pytest.mark.parametrize(
    ("token", "method", "path", "headers", "status"),
    [
        (None, "GET", DASHBOARD_PATH, {}, 200),  # no token configured: open (local default)
        (TOKEN, "GET", DASHBOARD_PATH, {"Authorization": f"Bearer {TOKEN}"}, 200),  # right token
        (TOKEN, "GET", DASHBOARD_PATH, {}, 401),  # token configured, none sent
        (TOKEN, "GET", f"{DASHBOARD_PATH}?token={TOKEN}", {}, 401),  # no token in the URL
        (TOKEN, "GET", DASHBOARD_PATH, {"Authorization": "Bearer wrong"}, 401),  # wrong token
        (None, "POST", DASHBOARD_PATH, {}, 405),  # read-only page
        (None, "GET", "/dashboard/x", {}, 404),  # claims no other path
    ],
)
def test_the_mounted_app_serves_the_page_behind_the_token(
    app_client: Callable[[str | None], TestClient],
    page: str,
    token: str | None,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    answer = app_client(token).request(method, path, headers=headers)
    assert answer.status_code == status
    if status == 200:
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.text == page


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


def test_the_service_mounts_the_dashboard_behind_its_token(bento_client: TestClient) -> None:
    page = bento_client.get(DASHBOARD_PATH, headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "BTCUSDT" in page.text and "<svg" in page.text
    assert bento_client.get(DASHBOARD_PATH).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert bento_client.post("/market", json={}, headers=auth).status_code == 200  # API routes
    assert bento_client.get("/", headers=auth).status_code == 200  # BentoML's own index page
    assert bento_client.get("/livez").status_code == 200  # probes stay open
