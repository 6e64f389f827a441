"""The dashboard's side of ``benchmarks/live.py``: WebSocket clients and a real browser.

- :class:`WsFanout`: ``N`` clients connected to ``/ws`` at once (one asyncio loop in a thread);
  each notes when a ``price_update`` or ``snapshot`` first carries a candle of (symbol, hour).
  The fan-out of a candle is the spread between the first and the last client to get it.
- :class:`BrowserWatcher`: headless Chromium (Debian's ``chromium`` driven by Playwright) with
  ``/dashboard`` open; it notes when each symbol's chart first draws an hour (the page exposes
  the time of the last bar drawn as ``data-last-time`` on ``.chart[data-symbol=...]``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, datetime

Key = tuple[str, datetime]


def _hour(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class WsFanout:
    """``clients`` WebSocket clients on ``url``; ``seen[key]`` lists when each one got ``key``."""

    def __init__(self, url: str, clients: int, first_hour: datetime) -> None:
        self.url = url
        self.clients = clients
        self.first_hour = first_hour
        self.seen: dict[Key, list[float]] = {}
        self.connected = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def _note(self, message: dict[str, object], seen_here: set[Key]) -> None:
        payload = message.get("payload") or {}
        assert isinstance(payload, dict)
        prices = payload.get("prices", payload) if message.get("type") == "snapshot" else payload
        if message.get("type") not in ("snapshot", "price_update") or not isinstance(prices, dict):
            return
        now = time.time()
        for entry in prices.get("symbols") or []:
            for bar in entry.get("candles") or []:
                key = (str(entry["symbol"]), _hour(int(bar["time"])))
                if key[1] >= self.first_hour and key not in seen_here:
                    seen_here.add(key)
                    with self.lock:
                        self.seen.setdefault(key, []).append(now)

    async def _client(self) -> None:
        import websockets

        seen_here: set[Key] = set()
        try:
            async with websockets.connect(self.url, max_size=64 << 20, open_timeout=60) as socket:
                with self.lock:
                    self.connected += 1
                while not self.stop.is_set():
                    try:
                        text = await asyncio.wait_for(socket.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    self._note(json.loads(text), seen_here)
        except Exception as exc:  # counted and reported: a client that could not stay connected
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _main(self) -> None:
        tasks = []
        for _ in range(self.clients):
            tasks.append(asyncio.create_task(self._client()))
            await asyncio.sleep(0.01)  # connect gradually: no thundering herd on one worker
        await asyncio.gather(*tasks)

    def fanout_s(self, keys: list[Key]) -> list[float]:
        """Per key that every connected client got: last receive minus first receive."""
        with self.lock:
            return [
                max(self.seen[k]) - min(self.seen[k])
                for k in keys
                if k in self.seen and len(self.seen[k]) >= self.connected
            ]


class BrowserWatcher:
    """A headless Chromium with the dashboard open; ``seen[key]`` is when ``key`` was drawn."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        self.url = url
        self.symbols = symbols
        self.seen: dict[Key, float] = {}
        self.error: str | None = None
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def available() -> str | None:
        """Why the browser cannot run here (``None``: it can)."""
        if shutil.which("chromium") is None:
            return "no chromium: apt-get install -y chromium"
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "no playwright: make install"
        return None

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=shutil.which("chromium"))
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(self.url, wait_until="load")
                page.wait_for_selector(".chart[data-last-time]", timeout=60_000)
                self.ready.set()
                while not self.stop.is_set():
                    drawn = page.evaluate(
                        "Object.fromEntries([...document.querySelectorAll('.chart[data-symbol]')]"
                        ".map(c => [c.dataset.symbol, Number(c.dataset.lastTime || 0)]))"
                    )
                    now = time.time()
                    for symbol, last in drawn.items():
                        if last:
                            self.seen.setdefault((symbol, _hour(int(last))), now)
                    self.stop.wait(0.1)
                browser.close()
        except Exception as exc:  # reported in the benchmark's output
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def drawn_at(self, key: Key) -> float | None:
        """When ``key`` or a later hour of the same symbol was first drawn."""
        times = [t for (s, h), t in self.seen.items() if s == key[0] and h >= key[1]]
        return min(times) if times else None
