"""The trader's live dashboard: one page, its static files, its snapshot and its WebSocket.

Routes of the small Starlette app that ``serving/service.py`` mounts at ``/``:

* ``GET /dashboard``: the page (``serving/static/dashboard.html``), plain ES modules and the
  vendored TradingView lightweight-charts (nothing from a CDN: it works offline). The page opens
  ``/ws`` and renders only what the server sends (see :mod:`serving.board_model`);
* ``GET /dashboard/static/...``: the page's scripts, styles and the vendored library (public:
  they hold no data);
* ``GET /dashboard/snapshot.json``: the same ``snapshot`` payload the socket sends first;
* ``/ws``: the WebSocket (:mod:`serving.live_feed`).

The bearer token (``MARKETLAKE_API_TOKEN``) guards the page, the snapshot and the socket. A
browser cannot send a header when it opens a page or a socket, so ``/dashboard`` and ``/ws`` also
take ``?token=<token>`` (the page passes it on to ``/ws`` and removes it from the address bar;
the service removes it from the request before anything logs it, see :mod:`serving.auth`).
The Content-Security-Policy lets the page load scripts and styles only from this origin and
connect only back to it (``connect-src 'self'``, which covers ``ws:``/``wss:`` to the same host).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from serving.board_model import message
from serving.live_feed import LiveFeed

DASHBOARD_PATH = "/dashboard"
SNAPSHOT_PATH = "/dashboard/snapshot.json"
STATIC_PATH = "/dashboard/static"
WS_PATH = "/ws"
STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_FILE = STATIC_DIR / "dashboard.html"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Sent with the page and the snapshot: nothing cached, only this origin's scripts and styles,
only this origin to connect to, the address (with a ``?token=``) never sent as a referrer."""


def dashboard_app(feed: LiveFeed) -> Starlette:
    """The Starlette app of the dashboard routes (mount it at ``/``; it claims no other path).

    Args:
        feed: the worker's WebSocket feed (its board also answers the snapshot route).
    """
    page = PAGE_FILE.read_text(encoding="utf-8")

    def dashboard(_: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    async def snapshot(_: Request) -> Response:
        payload = await feed.snapshot()
        return Response(
            message("snapshot", payload), media_type="application/json", headers=SECURITY_HEADERS
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await feed.close()

    return Starlette(
        routes=[
            Route(DASHBOARD_PATH, dashboard, methods=["GET"]),
            Route(SNAPSHOT_PATH, snapshot, methods=["GET"]),
            WebSocketRoute(WS_PATH, feed.endpoint),
            Mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static"),
        ],
        lifespan=lifespan,
    )
