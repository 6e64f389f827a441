"""Fixtures of the source-connector tests: the recorded API answers, and a loopback HTTP server.

The server stands in for the remote host only: it answers with the recorded real responses in
``../shared/data/api_samples`` (or scripted failures), and the real clients talk to it over TCP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest


@pytest.fixture(scope="session")
def api_samples(shared_data: Callable[[str], Path]) -> Path:
    """The recorded real API responses; skip (or fail) as the ``shared_data`` fixture does."""
    return shared_data("api_samples")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body, headers, and a delay before answering."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_s: float = 0.0


Handler = Callable[[dict[str, str]], Reply]


class LoopbackApi:
    """A threaded HTTP server on 127.0.0.1:<free port> answering per path.

    Tests build answers with ``api.reply(...)`` / ``api.recorded(file)`` (test modules cannot
    import this conftest by name).
    """

    reply = staticmethod(Reply)

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str], float]] = []
        self._lock = threading.Lock()
        api = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with api._lock:
                    api.requests.append((parts.path, query, time.monotonic()))
                    handler = api._handlers.get(parts.path)
                reply = handler(query) if handler else Reply(404, b'{"error":"no route"}')
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away: that is the point of the test

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, handler: Handler) -> None:
        """Answer GET ``path`` with ``handler(query)``."""
        self._handlers[path] = handler

    def script(self, path: str, *replies: Reply) -> None:
        """Answer GET ``path`` with ``replies`` in turn; the last one repeats."""
        queue = list(replies)

        def next_reply(query: dict[str, str]) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route(path, next_reply)

    def calls(self, path: str) -> list[dict[str, str]]:
        """The query of every request to ``path`` so far."""
        return [query for p, query, _ in self.requests if p == path]

    @staticmethod
    def recorded(path: Path) -> Reply:
        """A 200 reply carrying a recorded response file."""
        return Reply(200, path.read_bytes())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def loopback_api() -> Iterator[LoopbackApi]:
    """A fresh loopback server for one test."""
    api = LoopbackApi()
    yield api
    api.close()
