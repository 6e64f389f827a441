"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright; no
browser download): it refuses a visit without the token, draws every symbol's real candles from
the lake, shows a candle landed while it is open and the new prediction without a reload, and
logs no console error. A screenshot of each state is saved under the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dashboard_support import TOKEN, Served, copy_registry, next_candle, populate, serve

from warehouse.catalog import SILVER_CANDLES
from warehouse.lake import Lake, read_table

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
if CHROMIUM is None:
    pytest.skip(f"no chromium on this machine: {INSTALL}", allow_module_level=True)

CHART_HOURS = 336


@pytest.fixture(scope="module")
def served(
    small_lake: Callable[..., Lake],
    tmp_path_factory: pytest.TempPathFactory,
    model_registry: str,
    land: Callable[..., None],
    fear_greed_days: pl.DataFrame,
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("browser-home")
    lake = small_lake(hours=200, seed=21, root=home)
    tracking_uri = copy_registry(model_registry, home)
    populate(lake, tracking_uri, land=land, fear_greed=fear_greed_days)
    with serve(home, lake, tracking_uri) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\ndashboard screenshots: {folder}")
    return folder


class Page:
    """A browser tab on the dashboard that records console errors and page errors."""

    def __init__(self, browser: Any, *, width: int = 1440, height: int = 900, dark: bool = False):
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme="dark" if dark else "light"
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def open(self, served: Served, *, token: str | None = TOKEN) -> Any:
        query = "" if token is None else f"?token={token}"
        answer = self.page.goto(f"{served.url}/dashboard{query}")
        return answer

    def wait_until(self, expression: str, *, timeout_s: float = 20.0) -> None:
        """Poll ``expression`` from here (``page.wait_for_function`` would evaluate it inside
        the page with ``eval``, which the page's Content-Security-Policy rightly refuses)."""
        deadline = time.monotonic() + timeout_s
        while not self.page.evaluate(expression):
            assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
            time.sleep(0.2)

    def charts(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = self.page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.chart')]"
            ".map(c => [c.dataset.symbol, {...c.dataset}]))"
        )
        return found

    def shot(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    page = Page(browser)
    yield page
    page.close()


def test_the_page_refuses_a_visit_without_the_token(served: Served, tab: Page, shots: Path) -> None:
    assert tab.open(served, token=None).status == 401
    assert "missing bearer token" in tab.page.content()
    assert tab.open(served, token="wrong").status == 401
    tab.shot(shots, "0-refused")


def test_every_chart_draws_the_lakes_candles_and_updates_live(
    served: Served, tab: Page, shots: Path, land_candles: Callable[..., Lake]
) -> None:
    assert tab.open(served).status == 200
    page = tab.page
    page.wait_for_selector("body[data-messages]")
    assert "token=" not in page.url  # the page took the token out of the address bar
    candles = read_table(served.lake.location(SILVER_CANDLES)).sort("ts")
    symbols = sorted(candles["symbol"].unique().to_list())
    tab.wait_until(f"document.querySelectorAll('.chart[data-last-time]').length == {len(symbols)}")
    charts = tab.charts()
    assert sorted(charts) == symbols
    for symbol in symbols:
        rows = candles.filter(pl.col("symbol") == symbol).tail(CHART_HOURS)
        chart = charts[symbol]
        assert int(chart["bars"]) == rows.height
        assert int(chart["lastTime"]) == int(rows["ts"][-1].timestamp())
        assert float(chart["lastClose"]) == rows["close"][-1]
        assert chart["predictionTime"] == chart["lastTime"]  # the prediction of the last hour
        assert int(chart["outcomes"]) > 0  # past predictions marked hit or miss
        canvases = page.locator(f'.chart[data-symbol="{symbol}"] canvas')
        assert canvases.count() >= 3  # three panes: price and volume, RSI, MACD
    assert page.locator("#market-table tbody tr").count() == len(symbols)
    assert page.locator("#posts li").count() == 4
    assert "no paper trades yet" in page.locator("#portfolio").inner_text()
    assert "marketlake-price v1" in page.locator("#quality").inner_text()
    assert page.locator("#status").inner_text().count("bronze/candles") == 1
    tab.shot(shots, "1-loaded")

    page.evaluate("window.__sameDocument = true")
    symbol = symbols[0]
    candle = next_candle(served.lake, symbol)
    new_time = int(candle["open_time"]) // 1000  # type: ignore[call-overload]
    land_candles(served.lake, [candle])
    chart_of = f"document.querySelector('.chart[data-symbol=\"{symbol}\"]').dataset"
    tab.wait_until(f"{chart_of}.lastTime == '{new_time}'")
    tab.wait_until(f"{chart_of}.predictionTime == '{new_time}'")
    assert page.evaluate("window.__sameDocument") is True  # no reload
    chart = tab.charts()[symbol]
    assert float(chart["lastClose"]) == candle["close"]
    assert int(chart["bars"]) == min(
        CHART_HOURS, candles.filter(pl.col("symbol") == symbol).height + 1
    )
    header = page.locator(f'.chart-card[data-symbol="{symbol}"] .predictions').inner_text()
    assert "1h" in header and "P(up)" in header
    tab.shot(shots, "2-new-candle")
    assert tab.errors == []


def test_dark_theme_at_phone_width(served: Served, browser: Any, shots: Path) -> None:
    phone = Page(browser, width=390, height=844, dark=True)
    try:
        assert phone.open(served).status == 200
        phone.page.wait_for_selector(".chart[data-last-time]")
        assert phone.page.evaluate("document.documentElement.dataset.theme") == "dark"
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone: tables scroll inside their card
        phone.page.screenshot(path=str(shots / "3-phone-dark.png"))
        print(f"screenshot: {shots / '3-phone-dark.png'}")
        phone.page.click("#theme-toggle")
        assert phone.page.evaluate("document.documentElement.dataset.theme") == "light"
        assert phone.errors == []
    finally:
        phone.close()
